// Attachments: the composer's tray of files to send (picked, dropped or pasted, each uploaded at
// once to POST /api/files/ with its progress shown), and the files on messages (images as
// thumbnails that open full size, other files as downloads).
//
// A file's content needs the access token, so it is fetched and shown through a blob URL, let go
// of once nothing shows it. Where the page's policy does not allow blob: images, a data: URL is
// used instead (found out once, with a one-pixel probe).
import { ApiError } from "./api.js";
import { $, session, showError, state } from "./state.js";

export const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const MAX_FILES = 20;

// Set by connectAttachments: the conversation's updateComposer (importing it would be a cycle).
let updateComposer = () => {};

export function connectAttachments(views) {
  ({ updateComposer } = views);
}

const isImage = (type) => IMAGE_TYPES.includes(String(type || "").toLowerCase());

export function formatSize(bytes) {
  if (!(bytes >= 0)) return "";
  if (bytes < 1000) return `${bytes} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit++; }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** A short label for a file's icon: its extension, else its kind. */
function iconLabel(name, type) {
  const extension = /\.([a-z0-9]{1,4})$/i.exec(name || "");
  if (extension) return extension[1].toUpperCase();
  if (type === "application/pdf") return "PDF";
  return String(type || "").startsWith("text/") ? "TXT" : "FILE";
}

function fileIcon(name, type) {
  const icon = document.createElement("span");
  icon.className = "file-icon";
  icon.setAttribute("aria-hidden", "true");
  icon.textContent = iconLabel(name, type);
  return icon;
}

// ---- showing images: blob URLs where allowed, else data: URLs -------------------------------------

const PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
let blobImages = null;

function blobImagesAllowed() {
  blobImages ??= new Promise((resolve) => {
    const bytes = Uint8Array.from(atob(PIXEL), (c) => c.charCodeAt(0));
    const url = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
    const probe = new Image();
    probe.addEventListener("load", () => { URL.revokeObjectURL(url); resolve(true); });
    probe.addEventListener("error", () => { URL.revokeObjectURL(url); resolve(false); });
    probe.src = url;
  });
  return blobImages;
}

/** A URL an <img> of this page may show `blob` from, and how to let it go. */
async function displayURL(blob) {
  if (await blobImagesAllowed()) {
    const url = URL.createObjectURL(blob);
    return { url, release: () => URL.revokeObjectURL(url) };
  }
  const url = await new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.addEventListener("load", () => resolve(reader.result));
    reader.addEventListener("error", () => reject(reader.error));
    reader.readAsDataURL(blob);
  });
  return { url, release() {} };
}

/** A file's content, fetched with the access token. */
async function fetchContent(id) {
  const response = await session.fetch(`/api/files/${encodeURIComponent(id)}/content/`, { accept: "*/*" });
  return response.blob();
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

// ---- on messages: thumbnails, downloads, the full-size view ------------------------------------------

// file id → { promise of { url, release } }: one fetch per image, however often it is shown.
const images = new Map();
const waiting = new WeakMap();
const observed = new Set();
let observer = null;

function loadImage(id) {
  let entry = images.get(id);
  if (!entry) {
    entry = { promise: fetchContent(id).then(displayURL) };
    images.set(id, entry);
    entry.promise.catch(() => { if (images.get(id) === entry) images.delete(id); });
  }
  return entry.promise;
}

/** Runs `load` once `element` comes near the visible part of the conversation. */
function whenVisible(element, load) {
  observer ??= new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      observer.unobserve(entry.target);
      observed.delete(entry.target);
      const run = waiting.get(entry.target);
      waiting.delete(entry.target);
      if (run) run();
    }
  }, { root: $("messages"), rootMargin: "400px 0px" });
  waiting.set(element, load);
  observed.add(element);
  observer.observe(element);
}

/** Lets go of the images no message shows any more (after the conversation was cleared). */
export function releaseUnusedImages() {
  const shown = new Set([...document.querySelectorAll("img[data-file-id]")].filter((img) => img.isConnected).map((img) => img.dataset.fileId));
  for (const [id, entry] of images) {
    if (shown.has(id)) continue;
    images.delete(id);
    entry.promise.then(({ release }) => release(), () => {});
  }
  for (const element of observed) {
    if (element.isConnected) continue;
    observer.unobserve(element);
    observed.delete(element);
  }
}

/** Shows a message's files in `container`; nothing is redone while they stay the same. */
export function renderMessageFiles(container, files) {
  const list = files || [];
  const key = list.map((file) => file.id).join(",");
  if (container.dataset.key === key) return;
  container.dataset.key = key;
  container.hidden = list.length === 0;
  container.replaceChildren(...list.map((file) => {
    const item = document.createElement("li");
    item.append(isImage(file.media_type) ? thumbnail(file) : download(file));
    return item;
  }));
}

function thumbnail(file) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "attachment-thumb";
  button.dataset.fileId = file.id;
  button.setAttribute("aria-label", `${file.name}: open full size`);
  button.title = file.name;
  const img = document.createElement("img");
  img.alt = file.name;
  img.dataset.fileId = file.id;
  img.decoding = "async";
  button.append(img);
  button.addEventListener("click", () => openViewer(file));
  whenVisible(button, () => loadImage(file.id).then(
    ({ url }) => { img.src = url; },
    () => { button.classList.add("failed"); button.title = `${file.name} could not be loaded`; },
  ));
  return button;
}

function download(file) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "attachment-file";
  button.dataset.fileId = file.id;
  const name = document.createElement("span");
  name.className = "attachment-name";
  name.textContent = file.name;
  const size = document.createElement("span");
  size.className = "attachment-size";
  size.textContent = formatSize(file.size);
  button.append(fileIcon(file.name, file.media_type), name, size);
  button.setAttribute("aria-label", `Download ${file.name} (${formatSize(file.size)})`);
  button.title = `Download ${file.name}`;
  button.addEventListener("click", () => save(file));
  return button;
}

/** Downloads a file: fetched with the token, then handed to the browser under its name. */
async function save(file) {
  try {
    const url = URL.createObjectURL(await fetchContent(file.id));
    const link = document.createElement("a");
    link.href = url;
    link.download = file.name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) { showError(error); }
}

// The full-size view: a modal dialog (Escape, the Close button or a click beside the image close it).
let viewing = null;
const viewer = $("image-viewer");

async function openViewer(file) {
  viewing = file;
  const img = $("image-viewer-image");
  img.removeAttribute("src");
  img.alt = file.name;
  img.dataset.fileId = file.id;
  $("image-viewer-title").textContent = file.name;
  $("image-viewer-error").textContent = "";
  if (!viewer.open) viewer.showModal();
  try {
    const { url } = await loadImage(file.id);
    if (viewing === file) img.src = url;
  } catch (error) {
    if (viewing === file) $("image-viewer-error").textContent = error.message;
  }
}

viewer.addEventListener("close", () => {
  viewing = null;
  const img = $("image-viewer-image");
  img.removeAttribute("src");
  delete img.dataset.fileId;
});
viewer.addEventListener("click", (event) => { if (event.target === viewer) viewer.close(); });
$("image-viewer-close").addEventListener("click", () => viewer.close());
$("image-viewer-download").addEventListener("click", () => { if (viewing) save(viewing); });
