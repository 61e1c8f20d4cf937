// A small Markdown renderer for chat messages: paragraphs, headings, lists, quotes, fenced and
// inline code, bold, italics and links. It builds DOM nodes and puts every piece of text in with
// textContent, so nothing in a message is ever parsed as HTML; links are kept only for http(s)
// and mailto addresses.

const FENCE = /^\s*(```|~~~)\s*([\w+-]*)\s*$/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*\d{1,9}[.)]\s+(.*)$/;
const QUOTE = /^\s*>\s?(.*)$/;
const INLINE = /(`+)([\s\S]+?)\1|\*\*(?=\S)([\s\S]+?)\*\*|__(?=\S)([\s\S]+?)__|\*(?=[^\s*])([^*]+?)\*|_(?=[^\s_])([^_]+?)_(?![\w])|\[([^\]\n]+)\]\(([^)\s]+)\)|(https?:\/\/[^\s<>()]+[^\s<>().,:;!?"'])/g;

/** The DOM for `source`, as a fragment. */
export function renderMarkdown(source, doc = document) {
  const fragment = doc.createDocumentFragment();
  const lines = String(source ?? "").replace(/\r\n?/g, "\n").split("\n");
  let paragraph = [];
  let list = null;

  const flushParagraph = () => {
    if (paragraph.length === 0) return;
    const p = doc.createElement("p");
    paragraph.forEach((line, index) => {
      if (index > 0) p.appendChild(doc.createElement("br"));
      appendInline(p, line, doc);
    });
    fragment.appendChild(p);
    paragraph = [];
  };
  const closeList = () => { list = null; };

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(FENCE);
    if (fence) {
      flushParagraph(); closeList();
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      const pre = doc.createElement("pre");
      const code = doc.createElement("code");
      if (fence[2]) code.className = "language-" + fence[2];
      code.textContent = body.join("\n");
      pre.appendChild(code);
      fragment.appendChild(pre);
      continue;
    }
    if (line.trim() === "") { flushParagraph(); closeList(); continue; }
    const heading = line.match(HEADING);
    if (heading) {
      flushParagraph(); closeList();
      const h = doc.createElement("h" + Math.min(6, heading[1].length + 2));
      appendInline(h, heading[2], doc);
      fragment.appendChild(h);
      continue;
    }
    const bullet = line.match(BULLET);
    const numbered = bullet ? null : line.match(NUMBERED);
    if (bullet || numbered) {
      flushParagraph();
      const tag = bullet ? "ul" : "ol";
      if (!list || list.tagName.toLowerCase() !== tag) {
        list = doc.createElement(tag);
        fragment.appendChild(list);
      }
      const item = doc.createElement("li");
      appendInline(item, (bullet || numbered)[1], doc);
      list.appendChild(item);
      continue;
    }
    const quote = line.match(QUOTE);
    if (quote) {
      flushParagraph(); closeList();
      const last = fragment.lastChild;
      const block = last && last.tagName === "BLOCKQUOTE" ? last : fragment.appendChild(doc.createElement("blockquote"));
      if (block.childNodes.length > 0) block.appendChild(doc.createElement("br"));
      appendInline(block, quote[1], doc);
      continue;
    }
    closeList();
    paragraph.push(line);
  }
  flushParagraph();
  return fragment;
}

/** Appends `text` to `parent`, with inline code, emphasis and links as elements. */
function appendInline(parent, text, doc) {
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    if (match.index > last) parent.appendChild(doc.createTextNode(text.slice(last, match.index)));
    last = match.index + match[0].length;
    const [whole, , code, strong1, strong2, em1, em2, label, href, bare] = match;
    if (code !== undefined) {
      const element = doc.createElement("code");
      element.textContent = code.trim() === "" ? code : code.replace(/^ (.*) $/, "$1");
      parent.appendChild(element);
    } else if (strong1 !== undefined || strong2 !== undefined) {
      const element = doc.createElement("strong");
      appendInline(element, strong1 ?? strong2, doc);
      parent.appendChild(element);
    } else if (em1 !== undefined || em2 !== undefined) {
      const element = doc.createElement("em");
      appendInline(element, em1 ?? em2, doc);
      parent.appendChild(element);
    } else if (label !== undefined) {
      const url = safeURL(href);
      if (url) parent.appendChild(link(url, label, doc));
      else parent.appendChild(doc.createTextNode(whole));
    } else if (bare !== undefined) {
      const url = safeURL(bare);
      parent.appendChild(url ? link(url, bare, doc) : doc.createTextNode(bare));
    }
  }
  if (last < text.length) parent.appendChild(doc.createTextNode(text.slice(last)));
}

function link(url, label, doc) {
  const a = doc.createElement("a");
  a.href = url;
  a.rel = "noopener noreferrer nofollow";
  a.target = "_blank";
  a.textContent = label;
  return a;
}

/** The address when it is http, https or mailto; null for anything else (javascript:, data:, …). */
export function safeURL(raw) {
  try {
    const url = new URL(raw, "https://invalid.example/");
    if (url.origin === "https://invalid.example") return null; // relative: not from a message
    return ["http:", "https:", "mailto:"].includes(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}
