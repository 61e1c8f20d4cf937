// The web client's entry point: it boots the client and wires its views together.
//
// The ChatServer web client: sign-in, the chat list, and the conversation with its reply
// streaming in. It uses only the public HTTP API, as a separate frontend would. Each view imports
// only the views below it (attachments < conversation < chatlist < composer < auth), so there is
// no import cycle; what a view calls in one above it is passed in here, before boot.
import { ApiError } from "./api.js";
import { connectAttachments } from "./attachments.js";
import { connectAuth, finishProviderSignIn, showAuth } from "./auth.js";
import { connectChatList, loadChats, newChat, renderChatList } from "./chatlist.js";
import { fillSettings } from "./composer.js";
import { connectConversation, openChat, updateComposer } from "./conversation.js";
import { $, session, state } from "./state.js";
import { loadTools } from "./mcp.js";
import "./account.js";
import "./drawer.js";
import "./share-links.js";

async function boot() {
  session.onSignedOut = () => showAuth("Your session has ended; please sign in again.");
  const provider = await finishProviderSignIn();
  if (provider.error) return showAuth(provider.error);
  if (!session.refreshToken) return showAuth(provider.notice || "");
  if (provider.notice) { $("notice").textContent = provider.notice; $("notice").hidden = false; }
  try {
    if (!session.access) await session.refresh();
    session.user = await session.request("GET", "/auth/me/");
    await showApp();
  } catch (error) {
    showAuth(error instanceof ApiError && error.status === 401 ? "" : error.message);
  }
}

async function showApp() {
  // Signed in from a shared chat's page (`?return=/s/<id>`): back to it, in this tab, which holds the session.
  const back = new URLSearchParams(location.search).get("return");
  if (back && /^\/s\/[A-Za-z0-9_-]{22,64}$/.test(back)) { location.assign(back); return; }
  $("loading").hidden = true;
  $("auth-view").hidden = true;
  $("app-view").hidden = false;
  $("me").textContent = session.user ? session.user.email : "";
  const models = await session.request("GET", "/api/models/");
  state.models = models.results;
  state.defaultModel = (models.results.find((m) => m.default) || models.results[0] || {}).id;
  await loadTools();
  await loadChats();
  const wanted = new URLSearchParams(location.search).get("chat");
  if (wanted) await openChat(wanted); else newChat();
}

connectAttachments({ updateComposer });
connectConversation({ loadChats, renderChatList, newChat, fillSettings, showAuth });
connectChatList({ fillSettings });
connectAuth({ showApp });
boot();
