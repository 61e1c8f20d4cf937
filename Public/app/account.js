// The account dialog: the name, the password, signing out everywhere, taking one's data away,
// deleting the account, and the API keys (keys.js).
import { showAuth } from "./auth.js";
import { loadKeys } from "./keys.js";
import { $, session } from "./state.js";

const ERRORS = ["profile-error", "password-error", "data-error", "delete-error", "keys-error"];

function status(text) {
  $("account-status").textContent = text;
  $("account-status").hidden = !text;
}

$("account-open").addEventListener("click", async () => {
  for (const id of ERRORS) $(id).textContent = "";
  status("");
  $("key-made").hidden = true;
  $("delete-account-section").open = false;
  $("profile-email").value = session.user ? session.user.email : "";
  $("profile-name").value = session.user ? session.user.name : "";
  $("account-dialog").showModal();
  await loadKeys();
});
$("account-close").addEventListener("click", () => $("account-dialog").close());
// Nothing secret stays in the page once the dialog closes.
$("account-dialog").addEventListener("close", () => {
  for (const id of ["key-secret", "password-current", "password-new", "delete-password"]) $(id).value = "";
  $("key-sample").textContent = "";
  $("key-made").hidden = true;
});

// Signed out here (everywhere, or the account gone): back to the sign-in form, saying why.
function leave(message) {
  $("account-dialog").close();
  for (const id of ["profile-email", "profile-name"]) $(id).value = "";
  $("key-list").replaceChildren();
  $("chat-list").replaceChildren();
  session.clear();
  history.replaceState(null, "", "/");
  showAuth(message);
}

$("profile-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("profile-error").textContent = "";
  try {
    session.user = await session.request("PATCH", "/auth/me/", { name: $("profile-name").value });
    $("profile-name").value = session.user.name;
    status("Name saved.");
  } catch (error) { $("profile-error").textContent = error.message; }
});

$("password-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("password-error").textContent = "";
  try {
    const result = await session.request("POST", "/auth/password/", {
      current_password: $("password-current").value, new_password: $("password-new").value,
    });
    // Every older token of this account is dead, this tab's too: the answer is the session that lives.
    session.start(result);
    $("password-current").value = "";
    $("password-new").value = "";
    status("Password changed. Every other session has been signed out.");
  } catch (error) { $("password-error").textContent = error.message; }
});

$("sign-out-everywhere").addEventListener("click", async () => {
  try {
    await session.request("POST", "/auth/sessions/revoke/");
    leave("Signed out everywhere.");
  } catch (error) { status(error.message); }
});

$("export-account").addEventListener("click", async () => {
  $("data-error").textContent = "";
  $("export-account").disabled = true;
  try {
    const response = await session.fetch("/auth/me/export/", { accept: "application/zip" });
    const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = name ? name[1] : "chatserver-export.zip";
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    status("Your data is downloading.");
  } catch (error) {
    $("data-error").textContent = error.message;
  } finally {
    $("export-account").disabled = false;
  }
});

$("delete-account-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("delete-error").textContent = "";
  const password = $("delete-password").value;
  try {
    await session.request("DELETE", "/auth/me/", password ? { password } : undefined);
    leave("Your account has been deleted.");
  } catch (error) { $("delete-error").textContent = error.message; }
});
