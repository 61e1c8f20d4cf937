// The composer's tray of files to send: picked, dropped or pasted, each uploaded at once to
// POST /api/files/ with its progress shown; refused ones explained and never sent.
import { ApiError } from "./api.js";
import { displayURL, fileIcon, formatSize, isImage } from "./files.js";
import { $, session, showError, state } from "./state.js";

const MAX_FILES = 20;

// Set by connectAttachments: the conversation's updateComposer (importing it would be a cycle).
let updateComposer = () => {};

export function connectAttachments(views) {
  ({ updateComposer } = views);
}

// ---- the tray: files being uploaded, and uploaded, for the next message ------------------------------

const tray = [];
let nextKey = 0;

/** Whether an upload is still running (sending waits for it). */
export function uploadsInProgress() {
  return tray.some((item) => item.state === "uploading");
}

/** The uploaded files that go with the next message (refused ones never do). */
export function readyAttachments() {
  return tray.filter((item) => item.state === "ready").map((item) => item.uploaded);
}

/** After a message went with `files`: they leave the tray (kept on the server), and so do refused ones. */
export function attachmentsSent(files) {
  const sent = new Set(files.map((file) => file.id));
  for (const item of [...tray]) {
    if (item.state === "error" || (item.state === "ready" && sent.has(item.uploaded.id))) drop(item);
  }
  changed();
}

/** Forgets the tray without asking the server (signing out: files attached to nothing expire there). */
export function discardTray() {
  for (const item of [...tray]) {
    if (item.xhr) item.xhr.abort();
    drop(item);
  }
  changed();
}

export function addFiles(fileList) {
  const files = [...(fileList || [])];
  if (files.length === 0) return;
  const room = Math.max(0, MAX_FILES - tray.filter((item) => item.state !== "error").length);
  for (const file of files.slice(0, room)) {
    const name = file.name || `pasted-${new Date().toISOString().replace(/[:.]/g, "-")}.${(file.type.split("/")[1] || "bin").replace(/[^a-z0-9]/gi, "")}`;
    const item = { key: ++nextKey, file, name, state: "uploading", progress: 0, uploaded: null, error: "", status: 0, xhr: null, preview: null };
    item.element = chip(item);
    tray.push(item);
    $("attachment-tray").append(item.element);
    if (isImage(file.type)) showPreview(item);
    upload(item);
  }
  if (files.length > room) {
    showError(`At most ${MAX_FILES} files go with one message; ${files.length - room === 1 ? "one was" : `${files.length - room} were`} left out.`);
  }
  changed();
}

function changed() {
  $("attachment-tray").hidden = tray.length === 0;
  updateComposer();
}

/** Takes `item` out of the tray and lets its preview go (nothing asked of the server). */
function drop(item) {
  const index = tray.indexOf(item);
  if (index >= 0) tray.splice(index, 1);
  item.removed = true;
  item.element.remove();
  if (item.preview) item.preview.release();
  item.preview = null;
}

/** The × of a file: stops its upload, or deletes it from the server once uploaded. */
function remove(item) {
  const wasFocused = item.element.contains(document.activeElement);
  const index = tray.indexOf(item);
  if (item.xhr) item.xhr.abort();
  const uploaded = item.state === "ready" ? item.uploaded : null;
  drop(item);
  changed();
  if (uploaded) session.request("DELETE", `/api/files/${encodeURIComponent(uploaded.id)}/`).catch(() => {});
  if (wasFocused) {
    // Focus goes to the next file's ×, else the previous one's, else the message box.
    const neighbour = tray[Math.min(index, tray.length - 1)];
    (neighbour ? neighbour.element.querySelector(".attachment-remove") : $("input")).focus();
  }
}

async function showPreview(item) {
  try {
    const preview = await displayURL(item.file);
    if (item.removed) { preview.release(); return; }
    item.preview = preview;
    item.element.querySelector(".attachment-preview").src = preview.url;
  } catch { /* the name and size are shown all the same */ }
}

function chip(item) {
  const element = document.createElement("li");
  element.className = "attachment";
  element.dataset.state = item.state;
  const thumb = isImage(item.file.type) ? document.createElement("img") : fileIcon(item.name, item.file.type);
  if (thumb.tagName === "IMG") {
    thumb.className = "attachment-preview";
    thumb.alt = item.name;
  }
  const info = document.createElement("span");
  info.className = "attachment-info";
  const name = document.createElement("span");
  name.className = "attachment-name";
  name.textContent = item.name;
  name.title = item.name;
  const size = document.createElement("span");
  size.className = "attachment-size";
  size.textContent = formatSize(item.file.size);
  const progress = document.createElement("progress");
  progress.max = 1;
  progress.value = 0;
  progress.setAttribute("aria-label", `Uploading ${item.name}`);
  info.append(name, size, progress);
  const remover = document.createElement("button");
  remover.type = "button";
  remover.className = "attachment-remove";
  remover.textContent = "×";
  remover.setAttribute("aria-label", `Remove ${item.name}`);
  remover.title = "Remove";
  remover.addEventListener("click", () => remove(item));
  element.append(thumb, info, remover);
  return element;
}

function setProgress(item, fraction) {
  item.progress = fraction;
  const progress = item.element.querySelector("progress");
  if (!progress) return;
  // Every byte sent: the server is still checking the file, for an unknown while.
  if (fraction >= 1) progress.removeAttribute("value");
  else progress.value = fraction;
}

function settle(item, outcome) {
  item.xhr = null;
  item.state = outcome;
  const element = item.element;
  element.dataset.state = outcome;
  const progress = element.querySelector("progress");
  if (progress) progress.remove();
  if (outcome === "ready") {
    element.dataset.fileId = item.uploaded.id;
    const type = item.uploaded.media_type;
    // The server decides the type from the bytes: a file the browser took for an image may not be one.
    if (!isImage(type) && element.querySelector(".attachment-preview")) {
      element.querySelector(".attachment-preview").replaceWith(fileIcon(item.name, type));
      if (item.preview) item.preview.release();
      item.preview = null;
    }
  } else {
    if (item.status) element.dataset.status = String(item.status);
    const error = document.createElement("span");
    error.className = "attachment-error";
    error.setAttribute("role", "alert");
    error.textContent = item.error;
    element.querySelector(".attachment-info").append(error);
    element.querySelector(".attachment-remove").setAttribute("aria-label", `Dismiss ${item.name}`);
  }
  changed();
}

/** Uploads `item`'s file; a 401 refreshes the tokens and tries once more, as api.js does. */
async function upload(item) {
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      const token = await session.accessToken();
      if (item.removed) return;
      const { status, answer } = await post(item, token);
      if (status === 401 && attempt === 0) { session.access = null; continue; }
      if (status >= 200 && status < 300 && answer && answer.id) {
        item.uploaded = answer;
        return settle(item, "ready");
      }
      throw new ApiError(status, answer);
    }
    throw new ApiError(401, { title: "Not signed in" });
  } catch (error) {
    if (item.removed) return;
    item.status = error.status || 0;
    item.error = (error.problem && error.problem.detail) || error.message || "The upload failed.";
    settle(item, "error");
  }
}

/** One POST of the file, with its progress; the status and the decoded answer. */
function post(item, token) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    xhr.open("POST", "/api/files/");
    xhr.setRequestHeader("Authorization", "Bearer " + token);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => { if (event.lengthComputable && event.total > 0) setProgress(item, event.loaded / event.total); });
    xhr.addEventListener("load", () => {
      let answer = null;
      try { answer = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status === 413 && !(answer && answer.detail)) answer = { title: "Too large", detail: "This file is larger than the server takes." };
      resolve({ status: xhr.status, answer });
    });
    xhr.addEventListener("error", () => reject(new Error("The upload failed: the connection to the server was lost.")));
    xhr.addEventListener("abort", () => reject(new Error("The upload was cancelled.")));
    const form = new FormData();
    form.append("file", item.file, item.name);
    xhr.send(form);
  });
}

/** Says when the tray holds images and the chosen model does not take them (the server would refuse). */
export function updateAttachmentNote() {
  const note = $("attachment-note");
  const model = state.models.find((m) => m.id === $("model").value);
  const images = tray.some((item) => item.state !== "error" && isImage(item.uploaded ? item.uploaded.media_type : item.file.type));
  const blind = model && Array.isArray(model.capabilities) && !model.capabilities.includes("vision");
  note.hidden = !(images && blind);
  note.textContent = note.hidden ? "" : `${model.name} does not take images: choose a model that does under “Model and system prompt”, or remove the images.`;
}

$("model").addEventListener("change", updateAttachmentNote);

// ---- picking, dropping, pasting --------------------------------------------------------------------

$("attach").addEventListener("click", () => $("file-input").click());
$("file-input").addEventListener("change", () => {
  addFiles($("file-input").files);
  $("file-input").value = "";
});

const carriesFiles = (event) => Boolean(event.dataTransfer) && [...event.dataTransfer.types].includes("Files");
const zone = $("conversation");
let dragDepth = 0;

function endDrag() {
  dragDepth = 0;
  zone.classList.remove("drop-active");
}

zone.addEventListener("dragenter", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  dragDepth++;
  zone.classList.add("drop-active");
});
zone.addEventListener("dragover", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  event.stopPropagation();
  event.dataTransfer.dropEffect = "copy";
  zone.classList.add("drop-active");
});
zone.addEventListener("dragleave", (event) => {
  if (!carriesFiles(event)) return;
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) zone.classList.remove("drop-active");
});
zone.addEventListener("drop", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  event.stopPropagation();
  endDrag();
  addFiles(event.dataTransfer.files);
  $("input").focus();
});
// A file dropped anywhere else must not replace the page with itself.
window.addEventListener("dragover", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = "none";
});
window.addEventListener("drop", (event) => { if (carriesFiles(event)) { event.preventDefault(); endDrag(); } });
window.addEventListener("dragend", endDrag);

// A pasted image (a screenshot, an image copied in a browser) is attached. When the clipboard also
// has plain text (a spreadsheet's or a word processor's cells come with a picture of themselves),
// the text is what is pasted.
$("composer").addEventListener("paste", (event) => {
  const data = event.clipboardData;
  if (!data) return;
  const images = [...data.files].filter((file) => file.type.startsWith("image/"));
  if (images.length === 0 || data.types.includes("text/plain")) return;
  event.preventDefault();
  addFiles(images);
});
