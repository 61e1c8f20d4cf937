// The chat list in the sidebar: the user's chats, searching them, and starting a new chat.
import { clearMessages, closeStream, openChat, updateComposer } from "./conversation.js";
import { $, session, showError, state } from "./state.js";

// Set by connectChatList: the composer's fillSettings (importing it would be a cycle).
let fillSettings;

export function connectChatList(views) {
  ({ fillSettings } = views);
}

// Loads overlap (a reply ends, a title arrives): only the latest one started is shown, so that a
// list read before a rename never overwrites the renamed one.
let listGeneration = 0;

export async function loadChats() {
  const generation = ++listGeneration;
  const page = await session.request("GET", "/api/chat/?limit=100");
  if (generation !== listGeneration) return;
  // Unchanged (the usual answer to a reload after an event already applied): the list stays as
  // it is, so that a link being clicked is not replaced under the pointer.
  const shown = (chats) => chats.map((chat) => `${chat.id}\u0000${chat.title}`).join("\u0001");
  if (shown(page.results) === shown(state.chats) && $("chat-list").children.length === page.results.length) {
    state.chats = page.results;
    return;
  }
  state.chats = page.results;
  renderChatList();
}

export function renderChatList() {
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

export function newChat() {
  closeStream();
  state.chatId = null;
  state.chat = null;
  clearMessages();
  history.replaceState(null, "", "/");
  $("chat-title").textContent = "New chat";
  $("rename").hidden = $("delete").hidden = $("export").hidden = $("share").hidden = true;
  $("export-menu").hidden = true;
  fillSettings(state.defaultModel, "", []);
  renderChatList();
  updateComposer();
  $("input").focus();
}
