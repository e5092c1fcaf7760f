// DOM helpers. User text only ever goes through textContent, never an HTML sink;
// the page's CSP enforces Trusted Types, so an HTML sink given a string throws.

export const $ = (id) => document.getElementById(id);

// el builds an element: el("li", {class: "x", title: "t", onclick: f}, child...).
// Children are nodes or strings (set as text, never parsed).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    e.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return e;
}

// initials is what an avatar shows for a name.
export function initials(name) {
  const parts = String(name || "?").replace(/[^\p{L}\p{N} ]/gu, " ").trim().split(/\s+/);
  const s = parts.length > 1 ? parts[0][0] + parts[1][0] : (parts[0] || "?").slice(0, 2);
  return s.toUpperCase();
}

// hue is a stable colour for a name (avatars).
export function hue(name) {
  let h = 0;
  for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

export function setAvatar(node, name) {
  node.textContent = initials(name);
  node.style.setProperty("--h", String(hue(name)));
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });
const longDayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });

export const clock = (ts) => timeFmt.format(new Date(ts));

export function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86400000);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return longDayFmt.format(d);
}

// shortWhen is a list item's time: the clock today, else the day.
export function shortWhen(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  return d.toDateString() === new Date().toDateString() ? timeFmt.format(d) : dayFmt.format(d);
}

export function lastSeenText(ts) {
  if (!ts) return "offline";
  const mins = Math.round((Date.now() - ts) / 60000);
  if (mins < 1) return "last seen just now";
  if (mins < 60) return `last seen ${mins} min ago`;
  const d = new Date(ts);
  if (d.toDateString() === new Date().toDateString()) return "last seen today at " + clock(ts);
  return "last seen " + dayFmt.format(d);
}
