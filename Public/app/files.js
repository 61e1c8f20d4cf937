// Files as the web chat shows them: their kinds and sizes, and their content, which needs the
// access token: it is fetched and shown through a blob URL, let go of once nothing shows it. Where
// the page's policy does not allow blob: images, a data: URL is used instead (found out once, with
// a one-pixel probe).
import { session } from "./state.js";

export const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];

export const isImage = (type) => IMAGE_TYPES.includes(String(type || "").toLowerCase());

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

export function fileIcon(name, type) {
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
export async function displayURL(blob) {
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
export async function fetchContent(id) {
  const response = await session.fetch(`/api/files/${encodeURIComponent(id)}/content/`, { accept: "*/*" });
  return response.blob();
}
