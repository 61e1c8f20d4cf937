// The composer and the chat's own controls: sending and stopping, rename, delete, export, model and system prompt.
import { attachmentsSent, readyAttachments, uploadsInProgress } from "./attachments.js";
import { loadChats, newChat } from "./chatlist.js";
import { closeStream, openChat, updateComposer, upsertMessage } from "./conversation.js";
import { $, session, showError, state } from "./state.js";
import { chosenTools, fillToolChoices } from "./mcp.js";

// ---- sending, stopping ---------------------------------------------------------------------------

$("composer").addEventListener("submit", (event) => { event.preventDefault(); send($("input").value); });

$("input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    if (!$("send").disabled) send($("input").value);
  }
});

// A message is its text, its uploaded files, or both; it waits for the uploads still running.
async function send(text) {
  const content = text.trim();
  const files = readyAttachments();
  if ((!content && files.length === 0) || uploadsInProgress()) return;
  $("composer-error").textContent = "";
  $("send").disabled = true;
  const attachments = files.length ? { attachments: files.map((file) => file.id) } : {};
  try {
    if (!state.chatId) {
      const body = { content, model: $("model").value || undefined, ...attachments };
      if ($("system").value.trim()) body.system = $("system").value;
      const tools = chosenTools();
      if (tools.length) body.tools = tools;
      const chat = await session.request("POST", "/api/chat/", body);
      $("input").value = "";
      attachmentsSent(files);
      await loadChats();
      await openChat(chat.id);
    } else {
      const sent = await session.request("POST", `/api/chat/${state.chatId}/send/`, { content, ...attachments });
      $("input").value = "";
      attachmentsSent(files);
      state.follow = true;
      upsertMessage(sent.user_message);
      upsertMessage(sent.assistant_message);
    }
  } catch (error) {
    showError(error);
  } finally {
    updateComposer();
    $("input").focus();
  }
}

$("stop").addEventListener("click", async () => {
  try {
    const stopped = await session.request("POST", `/api/chat/${state.chatId}/stop/`);
    upsertMessage(stopped);
  } catch (error) {
    if (error.status !== 409) showError(error);
  }
});

// ---- rename, delete ------------------------------------------------------------------------------

$("rename").addEventListener("click", () => {
  $("rename-input").value = state.chat ? state.chat.title : "";
  $("rename-form").hidden = false;
  $("chat-title").hidden = true;
  $("rename-input").focus();
  $("rename-input").select();
});

$("rename-cancel").addEventListener("click", endRename);

function endRename() {
  $("rename-form").hidden = true;
  $("chat-title").hidden = false;
}

$("rename-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    state.chat = await session.request("PATCH", `/api/chat/${state.chatId}/`, { title: $("rename-input").value });
    $("chat-title").textContent = state.chat.title;
    endRename();
    await loadChats();
  } catch (error) { showError(error); }
});

$("delete").addEventListener("click", () => { $("delete-confirm").hidden = false; $("delete").hidden = true; $("delete-no").focus(); });
$("delete-no").addEventListener("click", () => { $("delete-confirm").hidden = true; $("delete").hidden = false; });
$("delete-yes").addEventListener("click", async () => {
  $("delete-confirm").hidden = true;
  try {
    await session.request("DELETE", `/api/chat/${state.chatId}/`);
    closeStream();
    await loadChats();
    newChat();
  } catch (error) { showError(error); }
});

// ---- export -------------------------------------------------------------------------------------

$("export").addEventListener("click", () => {
  const open = $("export-menu").hidden;
  $("export-menu").hidden = !open;
  $("export").setAttribute("aria-expanded", String(open));
  if (open) $("export-markdown").focus();
});
$("export-markdown").addEventListener("click", () => exportChat("markdown"));
$("export-json").addEventListener("click", () => exportChat("json"));

// The export needs the access token, so it is fetched, then handed to the browser as a download.
async function exportChat(format) {
  $("export-menu").hidden = true;
  $("export").setAttribute("aria-expanded", "false");
  try {
    const response = await session.fetch(`/api/chat/${state.chatId}/export/?format=${format}`);
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = /filename\*=UTF-8''([^;]+)/.exec(disposition);
    const name = match ? decodeURIComponent(match[1]) : `chat.${format === "json" ? "json" : "md"}`;
    const url = URL.createObjectURL(await response.blob());
    const link = document.createElement("a");
    link.href = url;
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) { showError(error); }
}

// ---- model and system prompt ---------------------------------------------------------------------

export function fillSettings(model, system, tools) {
  const select = $("model");
  // One group per provider, in the order listed; a provider that does not answer now shows its
  // models, unselectable. A chat's model no longer offered stays shown, so that saving keeps it.
  const groups = new Map();
  const known = new Set(state.models.map((m) => m.id));
  const listed = model && !known.has(model) ? [{ id: model, provider: "unavailable", name: model, available: false }, ...state.models] : state.models;
  for (const m of listed) {
    if (!groups.has(m.provider)) {
      const group = document.createElement("optgroup");
      group.label = m.provider;
      groups.set(m.provider, group);
    }
    const option = document.createElement("option");
    option.value = m.id;
    option.textContent = m.name + (m.id === state.defaultModel ? " (default)" : "") + (m.available === false ? " — not answering" : "");
    option.disabled = m.available === false && m.id !== model;
    option.selected = m.id === model;
    groups.get(m.provider).append(option);
  }
  select.replaceChildren(...groups.values());
  $("system").value = system;
  fillToolChoices(tools);
  $("settings-status").textContent = "";
  $("settings-save").hidden = !state.chatId;
}

$("settings-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!state.chatId) return;
  try {
    state.chat = await session.request("PATCH", `/api/chat/${state.chatId}/`,
                                       { model: $("model").value, system: $("system").value || null, tools: chosenTools() });
    $("settings-status").textContent = "Saved.";
  } catch (error) { showError(error); }
});
