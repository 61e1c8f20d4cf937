// The ChatServer web client: sign-in, the chat list, and the conversation with its reply
// streaming in. It uses only the public HTTP API, as a separate frontend would.
import { ApiError, Session, signIn } from "./api.js";
import { renderMarkdown } from "./markdown.js";
import { ChatStream } from "./stream.js";

const $ = (id) => document.getElementById(id);
const session = new Session();
const state = {
  chats: [], chatId: null, chat: null, models: [], defaultModel: null,
  messages: new Map(), stream: null, follow: true, registering: false, renderQueued: new Set(),
};

// ---- start -------------------------------------------------------------------------------------

async function boot() {
  session.onSignedOut = () => showAuth("Your session has ended; please sign in again.");
  const google = await finishGoogleSignIn();
  if (google.error) return showAuth(google.error);
  if (!session.refreshToken) return showAuth(google.notice || "");
  if (google.notice) { $("notice").textContent = google.notice; $("notice").hidden = false; }
  try {
    if (!session.access) await session.refresh();
    session.user = await session.request("GET", "/auth/me/");
    await showApp();
  } catch (error) {
    showAuth(error instanceof ApiError && error.status === 401 ? "" : error.message);
  }
}

// ---- signing in --------------------------------------------------------------------------------

// Google sign-in comes back with a one-time code in the URL fragment. This tab redeems it only if
// it started that sign-in itself: it kept a random value in sessionStorage and sent it along in
// `next`, and the value must come back. A link carrying someone else's code is ignored, so nobody
// can sign this browser into their account.
const GOOGLE_KEY = "chatserver.google-signin";
const NOTICES = {
  password_removed: "Signed in with Google. This account had a password that someone set without proving they own "
    + "this email; it has been removed and every other session signed out. Sign in with Google from now on.",
};

function startGoogleSignIn(event) {
  event.preventDefault();
  const nonce = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  sessionStorage.setItem(GOOGLE_KEY, nonce);
  location.assign("/auth/google/login/?next=" + encodeURIComponent("/?signin=" + nonce));
}

async function finishGoogleSignIn() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  if (!fragment.has("code") && !fragment.has("error") && !query.has("signin")) return {};
  const expected = sessionStorage.getItem(GOOGLE_KEY);
  const ours = expected !== null && query.get("signin") === expected;
  sessionStorage.removeItem(GOOGLE_KEY);
  query.delete("signin");
  history.replaceState(null, "", location.pathname + (query.toString() ? "?" + query : ""));
  if (!ours) return fragment.has("code") ? { error: "A Google sign-in that this tab did not start was ignored." } : {};
  if (fragment.has("error")) return { error: fragment.get("error_description") || "Google sign-in failed." };
  try {
    const result = await signIn("/auth/google/exchange/", { code: fragment.get("code") });
    session.start(result);
    return { notice: (result.notices || []).map((code) => NOTICES[code] || code).join(" ") };
  } catch (error) {
    return { error: error.message };
  }
}

$("google-link").addEventListener("click", startGoogleSignIn);

async function showAuth(message = "") {
  closeStream();
  $("loading").hidden = true;
  $("app-view").hidden = true;
  $("auth-view").hidden = false;
  $("auth-error").textContent = message;
  setRegistering(false);
  $("auth-email").focus();
  try {
    const providers = await (await fetch("/auth/providers/")).json();
    $("google").hidden = !providers.google;
  } catch { $("google").hidden = true; }
}

function setRegistering(on) {
  state.registering = on;
  $("auth-heading").textContent = on ? "Create an account" : "Sign in";
  $("auth-submit").textContent = on ? "Create account" : "Sign in";
  $("auth-name-field").hidden = !on;
  $("auth-password").autocomplete = on ? "new-password" : "current-password";
  $("auth-switch-text").textContent = on ? "Have an account?" : "No account yet?";
  $("auth-switch").textContent = on ? "Sign in" : "Create one";
}

$("auth-switch").addEventListener("click", () => { setRegistering(!state.registering); $("auth-error").textContent = ""; });

$("auth-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { email: $("auth-email").value.trim(), password: $("auth-password").value };
  if (state.registering && $("auth-name").value.trim()) body.name = $("auth-name").value.trim();
  $("auth-submit").disabled = true;
  try {
    const result = await signIn(state.registering ? "/auth/register/" : "/auth/login/", body);
    session.start(result);
    $("auth-password").value = "";
    await showApp();
  } catch (error) {
    $("auth-error").textContent = error.message;
  } finally {
    $("auth-submit").disabled = false;
  }
});

$("sign-out").addEventListener("click", async () => {
  const refresh = session.refreshToken;
  closeStream();
  session.clear();
  if (refresh) fetch("/auth/logout/", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refresh }) }).catch(() => {});
  history.replaceState(null, "", "/");
  showAuth();
});

// ---- the app -----------------------------------------------------------------------------------

async function showApp() {
  $("loading").hidden = true;
  $("auth-view").hidden = true;
  $("app-view").hidden = false;
  $("me").textContent = session.user ? session.user.email : "";
  const models = await session.request("GET", "/api/models/");
  state.models = models.results;
  state.defaultModel = (models.results.find((m) => m.default) || models.results[0] || {}).id;
  await loadChats();
  const wanted = new URLSearchParams(location.search).get("chat");
  if (wanted) await openChat(wanted); else newChat();
}

async function loadChats() {
  const page = await session.request("GET", "/api/chat/?limit=100");
  state.chats = page.results;
  renderChatList();
}

function renderChatList() {
  const list = $("chat-list");
  list.replaceChildren(...state.chats.map((chat) => {
    const item = document.createElement("li");
    const a = document.createElement("a");
    a.href = "/?chat=" + chat.id;
    a.textContent = chat.title;
    a.dataset.chatId = chat.id;
    if (chat.id === state.chatId) a.setAttribute("aria-current", "page");
    a.addEventListener("click", (event) => { event.preventDefault(); openChat(chat.id); });
    item.appendChild(a);
    return item;
  }));
  $("chat-list-empty").hidden = state.chats.length > 0 || $("chat-list").hidden;
}

// ---- search: every word, in messages and titles --------------------------------------------------

let searchTimer;
$("chat-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => search($("chat-search").value.trim()).catch(showError), 250);
});

async function search(query) {
  const searching = query.length > 0;
  $("chat-list").hidden = searching;
  $("chat-list-empty").hidden = searching || state.chats.length > 0;
  $("search-results").hidden = !searching;
  $("search-empty").hidden = true;
  if (!searching) return;
  const page = await session.request("GET", "/api/search/?limit=30&q=" + encodeURIComponent(query));
  if ($("chat-search").value.trim() !== query) return;
  $("search-results").replaceChildren(...page.results.map((hit) => {
    const item = document.createElement("li");
    const a = document.createElement("a");
    a.href = "/?chat=" + hit.chat_id;
    const title = document.createElement("span");
    title.className = "hit-title";
    title.textContent = hit.chat_title;
    const snippet = document.createElement("span");
    snippet.className = "hit-snippet";
    snippet.textContent = hit.message_id ? (hit.role === "user" ? "You: " : "Assistant: ") + hit.snippet : "Title";
    a.append(title, snippet);
    a.addEventListener("click", (event) => { event.preventDefault(); openChat(hit.chat_id); });
    item.appendChild(a);
    return item;
  }));
  $("search-empty").hidden = page.results.length > 0;
}

$("new-chat").addEventListener("click", () => newChat());

function newChat() {
  closeStream();
  state.chatId = null;
  state.chat = null;
  clearMessages();
  history.replaceState(null, "", "/");
  $("chat-title").textContent = "New chat";
  $("rename").hidden = $("delete").hidden = $("export").hidden = true;
  $("export-menu").hidden = true;
  fillSettings(state.defaultModel, "");
  renderChatList();
  updateComposer();
  $("input").focus();
}

async function openChat(id) {
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
  $("rename").hidden = $("delete").hidden = $("export").hidden = false;
  fillSettings(state.chat.model, state.chat.system || "");
  // The stream replays the conversation, then follows it live.
  state.stream = new ChatStream(id, session, { onEvent: onStreamEvent, onStatus: onStreamStatus });
}

function closeStream() {
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
  } else if (event.type === "message" || event.type === "done") {
    upsertMessage(data);
    if (event.type === "done") loadChats().catch(() => {});
  } else if (event.type === "delta") {
    const entry = state.messages.get(data.message_id);
    if (!entry) return;
    entry.message.content += data.text;
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

function clearMessages() {
  state.messages.clear();
  $("messages").replaceChildren();
  state.follow = true;
  updateComposer();
}

function upsertMessage(message) {
  let entry = state.messages.get(message.id);
  if (entry) {
    entry.message = message;
  } else {
    const element = document.createElement("li");
    element.dataset.messageId = message.id;
    const role = document.createElement("div");
    role.className = "role";
    const body = document.createElement("div");
    body.className = "body";
    const status = document.createElement("div");
    status.className = "status";
    const tools = document.createElement("div");
    tools.className = "tools";
    element.append(role, body, status, tools);
    entry = { message, element, role, body, status, tools };
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

function queueRender(entry) {
  state.renderQueued.add(entry);
  if (state.renderQueued.size === 1) requestAnimationFrame(() => {
    for (const queued of state.renderQueued) render(queued);
    state.renderQueued.clear();
  });
}

function render(entry) {
  const { message, element, role, body, status } = entry;
  element.className = `message ${message.role} ${message.status}`;
  role.textContent = message.role === "user" ? "You" : `Assistant · ${message.model}`;
  if (message.role === "user") {
    body.replaceChildren(...message.content.split("\n").flatMap((line, i) => i ? [document.createElement("br"), document.createTextNode(line)] : [document.createTextNode(line)]));
  } else {
    body.replaceChildren(renderMarkdown(message.content));
  }
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

function updateComposer() {
  const streaming = Boolean(streamingMessage());
  $("stop").hidden = !streaming;
  $("send").disabled = streaming;
  $("empty-chat").hidden = state.messages.size > 0;
  if (state.toolsBusy !== streaming) { state.toolsBusy = streaming; refreshTools(); }
}

// ---- sending, stopping, retrying ------------------------------------------------------------------

$("composer").addEventListener("submit", (event) => { event.preventDefault(); send($("input").value); });

$("input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    if (!$("send").disabled) send($("input").value);
  }
});

async function send(text) {
  const content = text.trim();
  if (!content) return;
  $("composer-error").textContent = "";
  $("send").disabled = true;
  try {
    if (!state.chatId) {
      const body = { content, model: $("model").value || undefined };
      if ($("system").value.trim()) body.system = $("system").value;
      const chat = await session.request("POST", "/api/chat/", body);
      $("input").value = "";
      await loadChats();
      await openChat(chat.id);
    } else {
      const sent = await session.request("POST", `/api/chat/${state.chatId}/send/`, { content });
      $("input").value = "";
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
    if (!content) return;
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

// ---- rename, delete, settings ---------------------------------------------------------------------

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

function fillSettings(model, system) {
  const select = $("model");
  const ids = state.models.map((m) => m.id);
  if (model && !ids.includes(model)) ids.unshift(model);
  select.replaceChildren(...ids.map((id) => {
    const option = document.createElement("option");
    option.value = id;
    option.textContent = id + (id === state.defaultModel ? " (default)" : "");
    option.selected = id === model;
    return option;
  }));
  $("system").value = system;
  $("settings-status").textContent = "";
  $("settings-save").hidden = !state.chatId;
}

$("settings-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!state.chatId) return;
  try {
    state.chat = await session.request("PATCH", `/api/chat/${state.chatId}/`, { model: $("model").value, system: $("system").value || null });
    $("settings-status").textContent = "Saved.";
  } catch (error) { showError(error); }
});

function showError(error) {
  $("composer-error").textContent = error instanceof Error ? error.message : String(error);
}

boot();
