// Tools through MCP: the tools a chat may offer the model, chosen in the chat's settings; and the calls a
// reply made, shown collapsed in its message — the arguments and the result as text, never as HTML.
import { $, session, state } from "./state.js";

/** Reads what the server's MCP servers offer now (GET /api/tools/). */
export async function loadTools() {
  try {
    state.tools = (await session.request("GET", "/api/tools/")).results;
  } catch {
    state.tools = [];
  }
}

/** Shows the tools as checkboxes, server by server, `selected` checked ("server.*": all of a server's). */
export function fillToolChoices(selected) {
  const chosen = new Set(selected || []);
  const servers = new Map();
  for (const tool of state.tools) {
    if (!servers.has(tool.server)) servers.set(tool.server, []);
    if (!tool.name.endsWith(".*")) servers.get(tool.server).push(tool);
  }
  // A chosen tool no longer listed stays shown, so that saving keeps it.
  for (const name of chosen) {
    const server = name.slice(0, name.indexOf("."));
    if (!servers.has(server)) servers.set(server, []);
    if (!name.endsWith(".*") && !servers.get(server).some((tool) => tool.name === name)) {
      servers.get(server).push({ name, server, description: "not listed now", available: false });
    }
  }
  const groups = [];
  for (const [server, tools] of servers) {
    const group = document.createElement("fieldset");
    group.className = "tool-server";
    const legend = document.createElement("legend");
    const down = state.tools.some((tool) => tool.server === server && tool.available === false);
    legend.textContent = server + (down ? " — not answering" : "");
    group.append(legend, choice(server + ".*", `All of ${server}'s tools`, "", chosen));
    for (const tool of tools) group.append(choice(tool.name, tool.name, tool.description || "", chosen));
    groups.push(group);
  }
  $("tool-list").replaceChildren(...groups);
  $("tool-choices").hidden = servers.size === 0;
}

function choice(value, text, description, chosen) {
  const label = document.createElement("label");
  label.className = "tool-choice";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.value = value;
  box.checked = chosen.has(value);
  const name = document.createElement(value.endsWith(".*") ? "span" : "code");
  name.textContent = text;
  const words = document.createElement("span");
  words.append(name);
  label.append(box, words);
  if (description) {
    const about = document.createElement("span");
    about.className = "muted";
    about.textContent = " — " + description;
    words.append(about);
  }
  return label;
}

/** The tools checked now. */
export function chosenTools() {
  return [...$("tool-list").querySelectorAll("input[type=checkbox]:checked")].map((box) => box.value);
}

/** A `tool_call` or `tool_result` event, applied to the message it belongs to. */
export function applyToolEvent(message, type, data) {
  message.tool_calls = message.tool_calls || [];
  let call = message.tool_calls.find((known) => known.call_id === data.call_id);
  if (type === "tool_call" && !call) {
    message.tool_calls.push({ call_id: data.call_id, name: data.name, arguments: data.arguments, result: null, is_error: false, duration_ms: null });
  } else if (type === "tool_result" && call) {
    call.result = data.content;
    call.is_error = data.is_error;
  }
}

/** The calls of a reply, each a collapsed <details>: its name and state, then its arguments and result. */
export function renderToolCalls(container, message) {
  const calls = message.tool_calls || [];
  const open = new Set([...container.querySelectorAll("details[open]")].map((details) => details.dataset.callId));
  container.hidden = calls.length === 0;
  container.replaceChildren(...calls.map((call) => {
    const details = document.createElement("details");
    details.className = "tool-call " + (call.result === null ? "running" : call.is_error ? "failed" : "done");
    details.dataset.callId = call.call_id;
    details.open = open.has(call.call_id);
    const summary = document.createElement("summary");
    const name = document.createElement("code");
    name.textContent = call.name;
    const outcome = document.createElement("span");
    outcome.className = "outcome";
    outcome.textContent = call.result === null ? (message.status === "streaming" ? " running…" : " no result")
      : call.is_error ? " failed" : call.duration_ms !== null && call.duration_ms !== undefined ? ` done in ${call.duration_ms} ms` : " done";
    summary.append("Tool ", name, outcome);
    details.append(summary, section("Arguments", JSON.stringify(call.arguments, null, 2)), section("Result", call.result ?? "…"));
    return details;
  }));
}

function section(title, text) {
  const part = document.createElement("div");
  part.className = "tool-part";
  const heading = document.createElement("div");
  heading.className = "tool-part-title";
  heading.textContent = title;
  const body = document.createElement("pre");
  body.textContent = text;
  part.append(heading, body);
  return part;
}
