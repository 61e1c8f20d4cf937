// The sign-in view: signing in or up with a password, through Google or another OpenID provider, and signing out.
import { signIn } from "./api.js";
import { discardTray } from "./attachments.js";
import { clearMessages, closeStream } from "./conversation.js";
import { $, session, state } from "./state.js";

// Set by connectAuth: main.js's showApp, which opens the app once signed in (importing it would be a cycle).
let showApp;

export function connectAuth(views) {
  ({ showApp } = views);
}

// A sign-in through Google or another OpenID provider comes back with a one-time code in the URL
// fragment. This tab redeems it only if it started that sign-in itself: it kept a random value in
// sessionStorage and sent it along in `next`, and the value must come back. A link carrying
// someone else's code is ignored, so nobody can sign this browser into their account.
const SIGNIN_KEY = "chatserver.signin";
const NOTICES = {
  password_removed: "Signed in with Google. This account had a password that someone set without proving they own "
    + "this email; it has been removed and every other session signed out. Sign in with Google from now on.",
};

function startSignIn(event) {
  event.preventDefault();
  const nonce = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  sessionStorage.setItem(SIGNIN_KEY, nonce);
  location.assign(event.currentTarget.dataset.login + "?next=" + encodeURIComponent("/?signin=" + nonce));
}

export async function finishProviderSignIn() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  if (!fragment.has("code") && !fragment.has("error") && !query.has("signin")) return {};
  const expected = sessionStorage.getItem(SIGNIN_KEY);
  const ours = expected !== null && query.get("signin") === expected;
  sessionStorage.removeItem(SIGNIN_KEY);
  query.delete("signin");
  history.replaceState(null, "", location.pathname + (query.toString() ? "?" + query : ""));
  if (!ours) return fragment.has("code") ? { error: "A sign-in that this tab did not start was ignored." } : {};
  if (fragment.has("error")) return { error: fragment.get("error_description") || "The sign-in failed." };
  try {
    const result = await signIn("/auth/exchange/", { code: fragment.get("code") });
    session.start(result);
    return { notice: (result.notices || []).map((code) => NOTICES[code] || code).join(" ") };
  } catch (error) {
    return { error: error.message };
  }
}

$("google-link").addEventListener("click", startSignIn);

// One button per OpenID provider the server names, built from text (a display name is never HTML).
function showProviderButtons(providers) {
  $("google").hidden = !providers.google;
  for (const old of document.querySelectorAll(".oidc-provider")) old.remove();
  for (const provider of providers.oidc || []) {
    const line = document.createElement("p");
    line.className = "oidc-provider";
    const link = document.createElement("a");
    link.className = "button secondary";
    link.dataset.login = "/auth/oidc/" + encodeURIComponent(provider.name) + "/login/";
    link.href = link.dataset.login;
    link.dataset.provider = provider.name;
    link.textContent = "Sign in with " + provider.display_name;
    link.addEventListener("click", startSignIn);
    line.append(link);
    $("providers").append(line);
  }
  // Password sign-in off: the providers are the way in; sign-up closed: no "Create one".
  $("password-signin").hidden = !providers.password;
  $("auth-switch-line").hidden = !providers.signup;
  if (!providers.signup && state.registering) setRegistering(false);
}

export async function showAuth(message = "") {
  closeStream();
  // Nothing of the last session stays in the page: its conversation, its images, its files to send.
  clearMessages();
  discardTray();
  $("loading").hidden = true;
  $("app-view").hidden = true;
  $("auth-view").hidden = false;
  $("auth-error").textContent = message;
  setRegistering(false);
  $("auth-email").focus();
  try {
    showProviderButtons(await (await fetch("/auth/providers/")).json());
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
