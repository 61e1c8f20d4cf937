// The conversation: opening a chat, following its event stream, its messages and their tools (regenerate, edit, versions).
import { readyAttachments, updateAttachmentNote, uploadsInProgress } from "./attachments.js";
import { releaseUnusedImages, renderMessageFiles } from "./message-files.js";
import { renderMarkdown } from "./markdown.js";
import { applyToolEvent, renderToolCalls } from "./mcp.js";
import { ChatStream } from "./stream.js";
import { $, session, showError, state } from "./state.js";

// Set by connectConversation: what this view calls in the views above it (importing them would be a cycle).
let loadChats, renderChatList, newChat, fillSettings, showAuth;

export function connectConversation(views) {
  ({ loadChats, renderChatList, newChat, fillSettings, showAuth } = views);
}

export async function openChat(id) {
  closeStream();
  clearMessages();
  state.chatId = id;
  history.replaceState(null, "", "/?chat=" + id);
  renderChatList();
  try {
    state.chat = await session.request("GET", `/api/chat/${id}/`);
  } catch (error) {
    if (error.status === 404) { await loadChats(); return newChat(); }
    return showError(error);
  }
  $("chat-title").textContent = state.chat.title;
  $("rename").hidden = $("delete").hidden = $("export").hidden = $("share").hidden = false;
  fillSettings(state.chat.model, state.chat.system || "", state.chat.tools || []);
  // The stream replays the conversation, then follows it live.
  state.stream = new ChatStream(id, session, { onEvent: onStreamEvent, onStatus: onStreamStatus });
}

export function closeStream() {
  if (state.stream) state.stream.close();
  state.stream = null;
  $("connection").hidden = true;
}

// ---- the stream ----------------------------------------------------------------------------------

function onStreamEvent(event) {
  const data = JSON.parse(event.data);
  if (event.type === "conversation") {
    // The conversation changed (a reply regenerated, a question edited, a version chosen): the
    // whole of it follows.
    clearMessages();
  } else if (event.type === "chat") {
    if (state.chat) state.chat.title = data.title;
    if ($("rename-form").hidden) $("chat-title").textContent = data.title;
    const listed = state.chats.find((chat) => chat.id === data.id);
    if (listed) { listed.title = data.title; renderChatList(); }
    // A list being read now may predate the new title: read it again, and show only that.
    loadChats().catch(() => {});
  } else if (event.type === "message" || event.type === "done") {
    upsertMessage(data);
    if (event.type === "done") loadChats().catch(() => {});
  } else if (event.type === "delta" || event.type === "reasoning") {
    const entry = state.messages.get(data.message_id);
    if (!entry) return;
    if (event.type === "delta") entry.message.content += data.text;
    else entry.message.reasoning = (entry.message.reasoning || "") + data.text;
    queueRender(entry);
  } else if (event.type === "tool_call" || event.type === "tool_result") {
    const entry = state.messages.get(data.message_id);
    if (!entry) return;
    applyToolEvent(entry.message, event.type, data);
    queueRender(entry);
  }
}

function onStreamStatus(status) {
  const banner = $("connection");
  if (status === "live") { banner.hidden = true; return; }
  if (status === "reconnecting") { banner.textContent = "Connection lost; reconnecting…"; banner.hidden = false; return; }
  if (status === "gone") { banner.hidden = true; loadChats().then(newChat).catch(showError); return; }
  if (status === "signed-out") showAuth("Your session has ended; please sign in again.");
}

// ---- messages ----------------------------------------------------------------------------------

export function clearMessages() {
  state.messages.clear();
  $("messages").replaceChildren();
  releaseUnusedImages();
  state.follow = true;
  updateComposer();
}

export function upsertMessage(message) {
  let entry = state.messages.get(message.id);
  if (entry) {
    // A snapshot older than what the stream already showed (the answer to POST …/send/ can arrive
    // after the whole reply has streamed) must not take it back: a reply that ended stays ended,
    // and a streaming one keeps the text it has.
    if (isOlder(message, entry.message)) return;
    entry.message = message;
  } else {
    const element = document.createElement("li");
    element.dataset.messageId = message.id;
    const role = document.createElement("div");
    role.className = "role";
    // The model's reasoning, when it has any: collapsed above the answer (the reader opens it), live.
    const reasoning = document.createElement("details");
    reasoning.className = "reasoning";
    reasoning.hidden = true;
    const summary = document.createElement("summary");
    const thoughts = document.createElement("div");
    thoughts.className = "thoughts";
    reasoning.append(summary, thoughts);
    // Its files (a question's): images as thumbnails, other files as downloads.
    const files = document.createElement("ul");
    files.className = "attachments";
    files.setAttribute("aria-label", "Attached files");
    files.hidden = true;
    // The tools it called: each collapsed, its arguments and result inside, live.
    const calls = document.createElement("div");
    calls.className = "tool-calls";
    calls.hidden = true;
    const body = document.createElement("div");
    body.className = "body";
    const status = document.createElement("div");
    status.className = "status";
    const tools = document.createElement("div");
    tools.className = "tools";
    element.append(role, reasoning, files, calls, body, status, tools);
    entry = { message, element, role, reasoning, files, calls, body, status, tools };
    state.messages.set(message.id, entry);
    insertInOrder(entry);
    refreshTools();
  }
  render(entry);
  updateComposer();
}

function insertInOrder(entry) {
  const list = $("messages");
  const later = [...state.messages.values()]
    .filter((other) => other !== entry && other.element.parentNode === list && other.message.sequence > entry.message.sequence)
    .sort((a, b) => a.message.sequence - b.message.sequence);
  list.insertBefore(entry.element, later.length ? later[0].element : null);
}

/** Whether `incoming` is an earlier state of the message than `shown`. */
function isOlder(incoming, shown) {
  if (incoming.status !== "streaming") return false;
  if (shown.status !== "streaming") return true;
  return (incoming.content || "").length < (shown.content || "").length
    || (incoming.reasoning || "").length < (shown.reasoning || "").length
    || (incoming.tool_calls || []).length < (shown.tool_calls || []).length;
}

function queueRender(entry) {
  state.renderQueued.add(entry);
  if (state.renderQueued.size === 1) requestAnimationFrame(() => {
    for (const queued of state.renderQueued) render(queued);
    state.renderQueued.clear();
  });
}

function render(entry) {
  const { message, element, role, files, body, status } = entry;
  element.className = `message ${message.role} ${message.status}`;
  role.textContent = message.role === "user" ? "You" : `Assistant · ${message.model}`;
  renderMessageFiles(files, message.attachments);
  if (message.role === "user") {
    body.replaceChildren(...message.content.split("\n").flatMap((line, i) => i ? [document.createElement("br"), document.createTextNode(line)] : [document.createTextNode(line)]));
  } else {
    body.replaceChildren(renderMarkdown(message.content));
  }
  renderReasoning(entry);
  renderToolCalls(entry.calls, message);
  status.replaceChildren();
  if (message.status === "failed" || message.status === "cancelled") {
    const text = document.createElement("span");
    text.textContent = message.status === "failed" ? `The reply failed: ${message.error || "unknown error"}` : "Stopped.";
    text.className = message.status === "failed" ? "error" : "";
    status.append(text);
  }
  renderTools(entry);
  $("empty-chat").hidden = state.messages.size > 0;
  followScroll();
}

function renderReasoning({ message, reasoning }) {
  const text = message.reasoning || "";
  reasoning.hidden = !text;
  if (!text) return;
  const thinking = message.status === "streaming" && !message.content;
  reasoning.firstChild.textContent = thinking ? "Thinking…" : "Reasoning";
  reasoning.classList.toggle("live", thinking);
  reasoning.lastChild.textContent = text;
}

// What a message offers: the versions at its turn (‹ 2/3 ›), Edit on a question, Regenerate on
// the last reply (Retry when it failed or was stopped).
function renderTools(entry) {
  const { message, tools } = entry;
  tools.replaceChildren();
  if (message.versions > 1) {
    const versions = document.createElement("span");
    versions.className = "versions";
    const previous = toolButton("‹", () => switchVersion(message, -1), "Previous version");
    previous.disabled = message.version <= 1;
    const next = toolButton("›", () => switchVersion(message, 1), "Next version");
    next.disabled = message.version >= message.versions;
    const position = document.createElement("span");
    position.className = "version-count";
    position.textContent = `${message.version}/${message.versions}`;
    position.setAttribute("aria-label", `version ${message.version} of ${message.versions}`);
    versions.append(previous, position, next);
    tools.append(versions);
  }
  const busy = Boolean(streamingMessage());
  if (message.role === "user" && !busy) tools.append(toolButton("Edit", () => startEdit(entry), "Edit this message"));
  if (message.role === "assistant" && message.status !== "streaming" && !busy && isLast(entry)) {
    const label = message.status === "complete" ? "Regenerate" : "Retry";
    tools.append(toolButton(label, () => regenerate(), label === "Retry" ? "Retry this reply" : "Regenerate this reply", "retry"));
  }
}

function toolButton(text, onClick, label, extraClass) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link tool" + (extraClass ? " " + extraClass : "");
  button.textContent = text;
  if (label && label !== text) button.setAttribute("aria-label", label);
  button.addEventListener("click", onClick);
  return button;
}

function isLast(entry) {
  return ![...state.messages.values()].some((other) => other.message.sequence > entry.message.sequence);
}

function refreshTools() {
  for (const entry of state.messages.values()) renderTools(entry);
}

function followScroll() {
  const list = $("messages");
  if (state.follow) list.scrollTop = list.scrollHeight;
}

$("messages").addEventListener("scroll", () => {
  const list = $("messages");
  state.follow = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
});

function streamingMessage() {
  return [...state.messages.values()].find((entry) => entry.message.status === "streaming");
}

export function updateComposer() {
  const streaming = Boolean(streamingMessage());
  $("stop").hidden = !streaming;
  // Sending waits for the files being uploaded; files alone (no text) may be sent.
  $("send").disabled = streaming || uploadsInProgress();
  $("input").required = readyAttachments().length === 0;
  updateAttachmentNote();
  $("empty-chat").hidden = state.messages.size > 0;
  if (state.toolsBusy !== streaming) { state.toolsBusy = streaming; refreshTools(); }
}

// ---- versions: regenerate, edit, switch -----------------------------------------------------------

// Each replaces part of the conversation; the stream then says so (`conversation`) and replays it.
async function regenerate() {
  $("composer-error").textContent = "";
  try {
    state.follow = true;
    await session.request("POST", `/api/chat/${state.chatId}/regenerate/`, {});
  } catch (error) { showError(error); }
}

function startEdit(entry) {
  const { message, body, tools } = entry;
  const form = document.createElement("form");
  form.className = "edit";
  const box = document.createElement("textarea");
  box.value = message.content;
  box.rows = Math.min(8, Math.max(2, message.content.split("\n").length));
  box.setAttribute("aria-label", "Edited message");
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = "Save and send";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "secondary";
  cancel.textContent = "Cancel";
  cancel.addEventListener("click", () => render(entry));
  form.append(box, save, cancel);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const content = box.value.trim();
    if (!content && !(message.attachments && message.attachments.length)) return;
    save.disabled = true;
    try {
      state.follow = true;
      await session.request("POST", `/api/chat/${state.chatId}/edit/`, { message_id: message.id, content });
    } catch (error) {
      save.disabled = false;
      showError(error);
    }
  });
  body.replaceChildren(form);
  tools.replaceChildren();
  box.focus();
}

async function switchVersion(message, step) {
  try {
    const versions = (await session.request("GET", `/api/chat/${state.chatId}/messages/${message.id}/versions/`)).results;
    const index = versions.findIndex((version) => version.id === message.id);
    const target = versions[index + step];
    if (target) await session.request("POST", `/api/chat/${state.chatId}/messages/${target.id}/select/`, {});
  } catch (error) { showError(error); }
}
