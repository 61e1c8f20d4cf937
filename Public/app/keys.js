// Personal API keys, in the account dialog: made (the secret shown once, with a sample), listed, revoked.
import { $, session } from "./state.js";

/** Shows the keys afresh (the account dialog opens with them). */
export async function loadKeys() {
  try {
    renderKeys((await session.request("GET", "/api/keys/")).results);
  } catch (error) { $("keys-error").textContent = error.message; }
}

function renderKeys(keys) {
  $("keys-empty").hidden = keys.length > 0;
  $("key-list").replaceChildren(...keys.map((key) => {
    const item = document.createElement("li");
    item.dataset.keyId = key.id;
    const name = document.createElement("strong");
    name.textContent = key.name;
    const facts = document.createElement("span");
    facts.className = "muted";
    const when = (text) => (text ? new Date(text).toLocaleDateString() : null);
    facts.textContent = ` ${key.scope} · ${key.prefix}… · made ${when(key.created_at)} · `
      + (key.expires_at ? `expires ${when(key.expires_at)}` : "never expires") + " · "
      + (key.last_used_at ? `last used ${when(key.last_used_at)}` : "never used");
    const revoke = document.createElement("button");
    revoke.type = "button";
    revoke.className = "link danger";
    revoke.textContent = "Revoke";
    revoke.setAttribute("aria-label", `Revoke ${key.name}`);
    revoke.addEventListener("click", async () => {
      try {
        await session.request("DELETE", `/api/keys/${key.id}/`);
        await loadKeys();
      } catch (error) { $("keys-error").textContent = error.message; }
    });
    item.append(name, facts, " ", revoke);
    return item;
  }));
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("keys-error").textContent = "";
  const body = { name: $("key-name").value, scope: $("key-scope").value };
  if ($("key-expiry").value) body.expires_in_days = Number($("key-expiry").value);
  try {
    const made = await session.request("POST", "/api/keys/", body);
    $("key-secret").value = made.key;
    $("key-sample").textContent = sample(made);
    $("key-made").hidden = false;
    $("key-name").value = "";
    $("key-secret").select();
    await loadKeys();
  } catch (error) { $("keys-error").textContent = error.message; }
});

$("key-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("key-secret").value);
    $("key-copy").textContent = "Copied";
  } catch {
    $("key-secret").select();
  }
});

// How to use it: the OpenAI SDK for an inference key, curl on the chat API for a full one.
function sample(made) {
  const base = location.origin;
  if (made.scope === "full") {
    return `curl -H "Authorization: Bearer ${made.key}" ${base}/api/chat/`;
  }
  return `from openai import OpenAI\nclient = OpenAI(base_url="${base}/v1", api_key="${made.key}")\n`
    + `print(client.chat.completions.create(model="…", messages=[{"role": "user", "content": "Hello"}]))`;
}
