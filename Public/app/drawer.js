// On a phone the chat list is a drawer: the Chats button opens it over the conversation; choosing
// a chat, starting one, the backdrop or Escape closes it. (Wider screens show it beside.)
import { $ } from "./state.js";

function setOpen(open) {
  $("app-view").classList.toggle("drawer-open", open);
  $("drawer-backdrop").hidden = !open;
  $("drawer-open").setAttribute("aria-expanded", String(open));
  if (open) $("new-chat").focus();
}

$("drawer-open").addEventListener("click", () => setOpen(!$("app-view").classList.contains("drawer-open")));
$("drawer-backdrop").addEventListener("click", () => setOpen(false));
for (const id of ["chat-list", "search-results"]) {
  $(id).addEventListener("click", (event) => { if (event.target.closest("a")) setOpen(false); });
}
$("new-chat").addEventListener("click", () => setOpen(false));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && $("app-view").classList.contains("drawer-open")) {
    setOpen(false);
    $("drawer-open").focus();
  }
});
