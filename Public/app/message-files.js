// The files on messages: images as thumbnails (loaded when they come into view) that open full
// size in a dialog, other files as downloads.
import { displayURL, fetchContent, fileIcon, formatSize, isImage } from "./files.js";
import { $, showError } from "./state.js";

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

/** A message file's button, of `className`, naming the file it stands for. */
function fileButton(file, className) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.dataset.fileId = file.id;
  return button;
}

function thumbnail(file) {
  const button = fileButton(file, "attachment-thumb");
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
  const button = fileButton(file, "attachment-file");
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
