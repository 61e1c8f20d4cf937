// The web client's one small store: the shared state, the API session, and helpers every view uses.
import { Session } from "./api.js";

export const $ = (id) => document.getElementById(id);
export const session = new Session();
export const state = {
  chats: [], chatId: null, chat: null, models: [], defaultModel: null, tools: [],
  messages: new Map(), stream: null, follow: true, registering: false, renderQueued: new Set(), toolsBusy: false,
};

export function showError(error) {
  $("composer-error").textContent = error instanceof Error ? error.message : String(error);
}
