// What users typed, made into DOM nodes: always text nodes, never HTML. Links become <a> elements whose href is
// an http(s) URL checked by the URL parser, opened in a new tab with rel="noopener noreferrer".

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/; // "see https://x.org/a." : the full stop is not part of the link

export const NICK_RE = /^[A-Za-z_][A-Za-z0-9_-]{0,19}$/; // chat.protocol.names: the server checks it again
export const ROOM_RE = /^#?[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

/** Append `text` to `parent` as text nodes, with its web addresses as links. */
export function appendText(parent, text) {
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    let href = match[0];
    const trail = href.match(TRAILING);
    if (trail) href = href.slice(0, -trail[0].length);
    const start = match.index;
    if (start > last) parent.append(document.createTextNode(text.slice(last, start)));
    const url = safeUrl(href);
    if (url) {
      const a = document.createElement("a");
      a.href = url;
      a.textContent = href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      parent.append(a);
    } else {
      parent.append(document.createTextNode(href));
    }
    last = start + href.length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

function safeUrl(href) {
  try {
    const url = new URL(href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** Does `text` name `nick` as a word (case-insensitive)? */
export function mentions(text, nick) {
  if (!nick) return false;
  const lower = text.toLowerCase();
  const key = nick.toLowerCase();
  let i = lower.indexOf(key);
  while (i >= 0) {
    const before = i === 0 ? "" : lower[i - 1];
    const after = lower[i + key.length] ?? "";
    if (!/[a-z0-9_-]/.test(before) && !/[a-z0-9_-]/.test(after)) return true;
    i = lower.indexOf(key, i + 1);
  }
  return false;
}

/** One of eight colour classes, the same for a nick everywhere. */
export function nickClass(nick) {
  let h = 0;
  for (const ch of nick.toLowerCase()) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return `c${h % 8}`;
}

export function nickElement(nick, tag = "span") {
  const el = document.createElement(tag);
  el.className = `nick ${nickClass(nick)}`;
  el.textContent = nick;
  return el;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function shortTime(iso) {
  return timeFormat.format(new Date(iso));
}

export function longTime(iso) {
  return dayFormat.format(new Date(iso));
}

const encoder = new TextEncoder();

export function byteLength(text) {
  return encoder.encode(text).length;
}

/** Split `text` into pieces of at most `max` UTF-8 bytes, at spaces where possible, never inside a character. */
export function splitBytes(text, max) {
  const pieces = [];
  let rest = text;
  while (byteLength(rest) > max) {
    let end = 0;
    let bytes = 0;
    for (const ch of rest) {
      const size = byteLength(ch);
      if (bytes + size > max) break;
      bytes += size;
      end += ch.length;
    }
    const space = rest.lastIndexOf(" ", end);
    const cut = space > end / 2 ? space : end;
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(cut).replace(/^ /, "");
  }
  if (rest) pieces.push(rest);
  return pieces;
}
