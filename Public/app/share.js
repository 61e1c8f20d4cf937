// A shared chat in `users` mode (SHARE_LINKS=users): the page shows the snapshot to a signed-in
// visitor. Their session is this tab's (the web chat keeps its refresh token per tab): without
// one, the page asks them to sign in and brings them back here.
import { ApiError, Session } from "./api.js";
import { renderMarkdown } from "./markdown.js";

const root = document.getElementById("shared");
const id = root.dataset.shareId;
const session = new Session();

function text(tag, value, className) {
  const element = document.createElement(tag);
  element.textContent = value;
  if (className) element.className = className;
  return element;
}

async function image(file) {
  try {
    const response = await session.fetch(`/api/shares/${encodeURIComponent(id)}/files/${encodeURIComponent(file.id)}/`, { accept: file.media_type });
    const img = document.createElement("img");
    img.alt = file.name;
    img.src = URL.createObjectURL(await response.blob());
    return img;
  } catch {
    // One image that cannot be had (its file deleted since) leaves the rest of the snapshot shown.
    return text("p", `${file.name} (no longer available)`, "file");
  }
}

async function show(shared) {
  document.title = `${shared.title} · ChatServer`;
  const list = document.createElement("ol");
  list.className = "shared-messages";
  for (const message of shared.messages) {
    const item = document.createElement("li");
    item.className = `shared-message ${message.role}`;
    item.appendChild(text("p", message.role === "user" ? "User" : `Assistant${message.model ? " · " + message.model : ""}`, "who"));
    for (const file of message.attachments) {
      item.appendChild(file.media_type.startsWith("image/") ? await image(file) : text("p", file.name, "file"));
    }
    if (message.reasoning) {
      const details = document.createElement("details");
      details.className = "reasoning";
      details.append(text("summary", "Reasoning"), text("div", message.reasoning, "text"));
      item.appendChild(details);
    }
    for (const call of message.tool_calls) {
      const details = document.createElement("details");
      details.className = "tool";
      details.append(text("summary", `Tool: ${call.name}`), text("div", call.result || "", "text"));
      item.appendChild(details);
    }
    const body = document.createElement("div");
    body.className = "text markdown";
    // Markdown as the web chat renders it: elements built one by one, no HTML from the message.
    if (message.role === "assistant") body.appendChild(renderMarkdown(message.content)); else body.textContent = message.content;
    item.appendChild(body);
    list.appendChild(item);
  }
  root.replaceChildren(text("h1", shared.title), list);
}

try {
  await show(await session.request("GET", `/api/shares/${encodeURIComponent(id)}/`));
} catch (error) {
  if (error instanceof ApiError && error.status === 401) {
    const link = document.createElement("a");
    link.href = "/?return=" + encodeURIComponent(location.pathname);
    link.textContent = "Sign in to see this shared chat";
    root.replaceChildren(text("h1", "Shared chat"), link);
  } else {
    root.replaceChildren(text("p", error instanceof ApiError && error.status === 404
      ? "This share link does not exist, or it was revoked or has expired." : error.message));
  }
}
