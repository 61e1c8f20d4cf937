// Share links of the open chat: made (a snapshot of the conversation now), listed with their
// address to copy, revoked, in a dialog.
import { $, session, state } from "./state.js";

$("share").addEventListener("click", async () => {
  $("share-error").textContent = "";
  $("share-dialog").showModal();
  await loadShares();
});
$("share-close").addEventListener("click", () => $("share-dialog").close());

async function loadShares() {
  try {
    const all = (await session.request("GET", "/api/shares/")).results;
    renderShares(all.filter((share) => share.chat_id === state.chatId));
  } catch (error) { $("share-error").textContent = error.message; }
}

function renderShares(shares) {
  $("share-empty").hidden = shares.length > 0;
  $("share-list").replaceChildren(...shares.map((share) => {
    const item = document.createElement("li");
    item.dataset.shareId = share.id;
    const link = document.createElement("input");
    link.readOnly = true;
    link.value = share.url;
    link.setAttribute("aria-label", "Share link");
    const facts = document.createElement("span");
    facts.className = "muted";
    facts.textContent = ` made ${new Date(share.created_at).toLocaleString()} · `
      + (share.expires_at ? `expires ${new Date(share.expires_at).toLocaleString()}` : "never expires") + " ";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "secondary";
    copy.textContent = "Copy";
    copy.addEventListener("click", async () => {
      link.select();
      try { await navigator.clipboard.writeText(share.url); copy.textContent = "Copied"; } catch { /* selected for a manual copy */ }
    });
    const revoke = document.createElement("button");
    revoke.type = "button";
    revoke.className = "link danger";
    revoke.textContent = "Revoke";
    revoke.setAttribute("aria-label", `Revoke the link made ${new Date(share.created_at).toLocaleString()}`);
    revoke.addEventListener("click", async () => {
      try {
        await session.request("DELETE", `/api/shares/${share.id}/`);
        await loadShares();
      } catch (error) { $("share-error").textContent = error.message; }
    });
    item.append(link, copy, facts, revoke);
    return item;
  }));
}

$("share-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("share-error").textContent = "";
  const days = $("share-expiry").value;
  try {
    await session.request("POST", `/api/chat/${state.chatId}/share/`, days ? { expires_in_days: Number(days) } : {});
    await loadShares();
  } catch (error) { $("share-error").textContent = error.message; }
});
