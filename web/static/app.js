// Parley's browser client: sign-up and login, the conversation list, and the
// conversation view, over the REST API and one WebSocket (docs/CLIENT.md).

import { API } from "./api.js";
import { Connection } from "./conn.js";
import { $, el, setAvatar, clock, dayLabel, shortWhen, lastSeenText } from "./dom.js";
import { Conv, cmpId, maxId, dmId, randomId } from "./model.js";
import { pushSupported, enablePush } from "./push.js";

const SESSION_KEY = "parley.session";
const HISTORY_PAGE = 30;
const PRIME_MAX = 40; // conversations whose newest page is read at start
const TYPING_EVERY = 3000; // the server passes one notice per 3 s
const TYPING_SHOWN = 6000;
const CONTACTS_EVERY = 30000;

const S = {
  api: new API(),
  conn: null,
  me: "",
  device: "",
  convs: new Map(),
  contacts: new Map(), // id -> {id, displayName, status, lastSeen}
  names: new Map(), // user -> display name
  current: null,
  maxSeq: "0",
  ackedSeq: "0",
  live: false,
  reqs: new Map(), // history request id -> {conv, kind}
  reqN: 0,
  lastTyping: 0,
  downSince: 0,
  retryAt: 0,
  failures: 0,
};

// ---- session storage -------------------------------------------------------------

// The session (token, user, device) lives in sessionStorage: it ends with the tab,
// so a shared computer is not left signed in for the token's 30 days. "Keep me
// signed in" puts it in localStorage instead. The device id is kept per user in
// localStorage either way, so that every login from this browser is the same
// device (the same sync cursor and push target).
function loadSession() {
  for (const store of [sessionStorage, localStorage]) {
    try {
      const s = JSON.parse(store.getItem(SESSION_KEY) || "null");
      if (s && s.token && s.userId) return s;
    } catch {
      store.removeItem(SESSION_KEY);
    }
  }
  return null;
}

function saveSession(s, remember) {
  (remember ? localStorage : sessionStorage).setItem(SESSION_KEY, JSON.stringify(s));
  localStorage.setItem("parley.device." + s.userId, s.deviceId);
}

function clearSession() {
  sessionStorage.removeItem(SESSION_KEY);
  localStorage.removeItem(SESSION_KEY);
}

const convCacheKey = () => "parley.convs." + S.me;

// The ids and names of the conversations (never their messages) are kept so that
// groups without new messages still show after a reload.
function saveConvCache() {
  const list = [...S.convs.values()].filter((c) => c.kind !== "dm" || c.msgs.size > 0)
    .map((c) => ({ id: c.id, name: c.kind === "dm" ? "" : c.name }));
  localStorage.setItem(convCacheKey(), JSON.stringify(list.slice(0, 500)));
}

// ---- auth screen -----------------------------------------------------------------

let signingUp = false;

function showAuth(message = "") {
  $("app").hidden = true;
  $("auth").hidden = false;
  $("auth-error").textContent = message;
  setSignup(signingUp);
  $("auth-username").focus();
}

function setSignup(on) {
  signingUp = on;
  $("auth-display-row").hidden = !on;
  $("auth-submit").textContent = on ? "Create account" : "Sign in";
  $("auth-lead").textContent = on ? "Create your account." : "Sign in to chat.";
  $("auth-switch-text").textContent = on ? "Already have an account?" : "New to Parley?";
  $("auth-switch").textContent = on ? "Sign in" : "Create an account";
  $("auth-password").autocomplete = on ? "new-password" : "current-password";
}

async function submitAuth(ev) {
  ev.preventDefault();
  const username = $("auth-username").value.trim().toLowerCase();
  const password = $("auth-password").value;
  const err = $("auth-error");
  err.textContent = "";
  if (!/^[a-z0-9][a-z0-9_.-]{0,31}$/.test(username)) {
    err.textContent = "A username is 1 to 32 lower-case letters, digits, '.', '_' or '-'.";
    $("auth-username").focus();
    return;
  }
  if (password.length < 8) {
    err.textContent = "The password needs at least 8 characters.";
    $("auth-password").focus();
    return;
  }
  const button = $("auth-submit");
  button.disabled = true;
  try {
    const api = new API();
    if (signingUp) await api.signup(username, password, $("auth-display").value.trim());
    const device = localStorage.getItem("parley.device." + username) || "";
    const s = await api.login(username, password, device);
    saveSession(s, $("auth-remember").checked);
    $("auth-password").value = "";
    startSession(s);
  } catch (e) {
    err.textContent = e.status === 409 ? "That username is taken." : e.message;
  } finally {
    button.disabled = false;
  }
}

// ---- session ---------------------------------------------------------------------

function startSession(s) {
  S.me = s.userId;
  S.device = s.deviceId;
  S.api = new API(s.token);
  S.api.onUnauthorized = () => endSession("Your session has ended. Please sign in again.");
  $("auth").hidden = true;
  $("app").hidden = false;
  $("me-name").textContent = S.me;
  setAvatar($("me-avatar"), S.me);
  try {
    for (const c of JSON.parse(localStorage.getItem(convCacheKey()) || "[]")) {
      const conv = ensureConv(c.id);
      if (conv && c.name) conv.name = c.name;
    }
  } catch {
    localStorage.removeItem(convCacheKey());
  }
  renderList();
  loadContacts();
  S.conn = new Connection(s.token, { open: onOpen, frame: onFrame, down: onDown, fatal: () => endSession("You were signed out.") });
  S.conn.start();
  setupPush();
  openFromHash();
}

function endSession(message) {
  clearSession();
  if (S.conn) S.conn.stop();
  S.conn = null;
  location.hash = "";
  // A fresh page drops every conversation of the old session from memory.
  sessionStorage.setItem("parley.notice", message || "");
  location.reload();
}

async function logout() {
  try {
    await S.api.logout();
  } catch {
    // the session ends here either way
  }
  endSession("");
}

async function loadContacts() {
  try {
    const { contacts } = await S.api.contacts();
    for (const c of contacts) {
      S.contacts.set(c.id, c);
      S.names.set(c.id, c.displayName || c.id);
      ensureConv(dmId(S.me, c.id));
    }
    renderList();
    renderHeader();
    if (S.live) primeAll();
  } catch (e) {
    toast(e.message);
  }
}

async function addContact(ev) {
  ev.preventDefault();
  const input = $("contact-input");
  const id = input.value.trim().toLowerCase();
  $("contact-error").textContent = "";
  if (!id) return;
  if (id === S.me) {
    $("contact-error").textContent = "That is you.";
    return;
  }
  try {
    await S.api.addContact(id);
    input.value = "";
    await loadContacts();
    openConv(dmId(S.me, id));
  } catch (e) {
    $("contact-error").textContent = e.status === 404 ? `No user called "${id}".` : e.message;
  }
}

// ---- the socket ------------------------------------------------------------------

function onOpen() {
  S.live = false;
  S.failures = 0;
  S.downSince = 0;
  renderBanner();
  send({ type: "sync" });
  send({ type: "channels" });
  for (const c of S.convs.values()) for (const p of c.pending) if (p.state !== "failed") transmit(c, p);
  loadContacts(); // presence changes while we were away are not replayed
}

function onDown(retryAt, attempt) {
  S.live = false;
  for (const c of S.convs.values()) c.typing.clear(); // no notice can end them now
  renderTyping();
  S.retryAt = retryAt;
  if (!S.downSince) S.downSince = Date.now();
  S.failures = attempt;
  // A token that stopped working fails every upgrade: ask REST, whose 401 ends
  // the session.
  if (attempt > 0 && attempt % 3 === 0 && navigator.onLine) S.api.contacts().catch(() => {});
  renderBanner();
  setTimeout(renderBanner, 1600);
}

function send(frame) {
  return S.conn ? S.conn.send(frame) : false;
}

function onFrame(f) {
  switch (f.type) {
    case "message": onMessage(f); break;
    case "synced": onSynced(f); break;
    case "sent": onSent(f); break;
    case "receipt": onReceipt(f); break;
    case "history": onHistory(f); break;
    case "typing": onTyping(f); break;
    case "presence": onPresence(f); break;
    case "channels": onChannels(f); break;
    case "error": onError(f); break;
    default: break; // pong, and frames of later versions
  }
}

function onSynced(f) {
  S.maxSeq = maxId(S.maxSeq, f.upTo);
  ackSoon();
  if (f.more) {
    send({ type: "sync" });
    return;
  }
  S.live = true;
  renderBanner();
  primeAll();
  renderList();
  renderMessages();
  markReadSoon();
  saveConvCache();
}

let ackTimer = 0;
function ackSoon() {
  clearTimeout(ackTimer);
  ackTimer = setTimeout(() => {
    if (cmpId(S.maxSeq, S.ackedSeq) > 0 && send({ type: "received", upTo: S.maxSeq })) S.ackedSeq = S.maxSeq;
  }, 200);
}

function ensureConv(id) {
  if (!/^(dm:[a-z0-9_.-]+:[a-z0-9_.-]+|group:[a-z2-7]{16}|channel:[a-z2-7]{16})$/.test(id)) return null;
  let c = S.convs.get(id);
  if (!c) {
    c = new Conv(id, S.me);
    S.convs.set(id, c);
    if (c.kind === "group") loadGroup(c);
    if (c.kind === "channel" && S.live) channelsSoon(); // joined just now: learn its name and role
  }
  return c;
}

let channelsTimer = 0;
function channelsSoon() {
  clearTimeout(channelsTimer);
  channelsTimer = setTimeout(() => send({ type: "channels" }), 100);
}

async function loadGroup(c) {
  try {
    const { group } = await S.api.group(c.ref);
    c.name = group.name;
    c.owner = group.owner;
    c.members = group.members;
    renderList();
    if (S.current === c.id) renderHeader();
    saveConvCache();
  } catch (e) {
    if (e.status === 403 || e.status === 404) dropConv(c); // left or removed
  }
}

function dropConv(c) {
  S.convs.delete(c.id);
  if (S.current === c.id) closeConv();
  renderList();
  saveConvCache();
}

function onMessage(f) {
  if (f.seq) { // acknowledged even when it is not shown, or it would come back at every sync
    S.maxSeq = maxId(S.maxSeq, f.seq);
    if (S.live) ackSoon();
  }
  const c = ensureConv(f.conversation);
  if (!c) return;
  const gap = c.kind === "channel" && c.loaded && f.prev !== undefined && cmpId(f.prev, c.newestId()) > 0;
  const before = c.newestId();
  const isNew = c.add(f);
  if (gap) pullAfter(c, before);
  if (!isNew) return;
  if (c.kind === "channel" && f.from !== S.me && cmpId(f.messageId, c.myRead) > 0) c.unreadCount++;
  if (f.from !== S.me) c.typing.delete(f.from);
  if (!S.live) return; // the replay renders once at its end
  if (S.current === c.id) {
    renderMessages();
    renderTyping();
    markRead();
  }
  renderList();
}

function onSent(f) {
  for (const c of S.convs.values()) {
    const p = c.pending.find((x) => x.clientId === f.id);
    if (!p) continue;
    c.add({ messageId: f.messageId, from: S.me, text: p.text, ts: f.ts, clientId: f.id });
    if (S.current === c.id) renderMessages();
    renderList();
    return;
  }
}

function onReceipt(f) {
  const c = S.convs.get(f.conversation);
  if (!c) return;
  if (f.user === S.me) { // my other device read it
    if (f.status === "read") c.myRead = maxId(c.myRead, f.upTo);
  } else {
    c.receipt(f.user, f.status, f.upTo);
  }
  if (S.current === c.id) renderMessages();
  renderList();
}

function onHistory(f) {
  const req = S.reqs.get(f.id);
  S.reqs.delete(f.id);
  const c = S.convs.get(f.conversation);
  if (!c) return;
  c.loading = false;
  for (const m of f.messages || []) c.add(m);
  for (const r of f.receipts || []) {
    if (r.all) c.all[r.status] = maxId(c.all[r.status], r.upTo);
    else if (r.user) c.receipt(r.user, r.status, r.upTo);
  }
  if (req && req.kind === "after") {
    if (f.more && f.messages && f.messages.length) pullAfter(c, f.messages[f.messages.length - 1].messageId);
  } else {
    c.more = !!f.more;
    c.loaded = true;
  }
  if (S.current === c.id) {
    renderMessages(req && req.kind === "before" ? "keep" : "");
    markReadSoon();
    fillView();
  }
  renderList();
}

function onTyping(f) {
  const c = S.convs.get(f.conversation);
  if (!c || f.from === S.me) return;
  c.typing.set(f.from, Date.now() + TYPING_SHOWN);
  renderTyping();
  renderList();
  setTimeout(() => { renderTyping(); renderList(); }, TYPING_SHOWN + 50);
}

function onPresence(f) {
  const c = S.contacts.get(f.user) || { id: f.user, displayName: S.names.get(f.user) || f.user };
  c.status = f.status;
  if (f.lastSeen) c.lastSeen = f.lastSeen;
  S.contacts.set(f.user, c);
  renderList();
  renderHeader();
}

function onChannels(f) {
  const seen = new Set();
  for (const st of f.channels || []) {
    const c = ensureConv(st.channel);
    if (!c) continue;
    seen.add(c.id);
    c.name = st.name;
    c.role = st.role;
    c.mode = st.mode;
    c.myRead = maxId(c.myRead, st.readUpTo);
    c.unreadCount = st.unread;
    if (c.loaded && cmpId(st.lastMessageId, c.newestId()) > 0) pullAfter(c, c.newestId());
  }
  for (const c of [...S.convs.values()]) if (c.kind === "channel" && !seen.has(c.id)) dropConv(c);
  renderList();
  renderHeader();
  saveConvCache();
}

function onError(f) {
  if (f.id && S.reqs.has(f.id)) {
    const req = S.reqs.get(f.id);
    S.reqs.delete(f.id);
    req.conv.loading = false;
    if (f.code === "forbidden" || f.code === "not_found") {
      if (req.conv.kind !== "dm") dropConv(req.conv);
      return;
    }
    setHistoryStatus(req.conv, "Could not load messages: " + f.message);
    return;
  }
  for (const c of S.convs.values()) {
    const p = f.id && c.pending.find((x) => x.clientId === f.id);
    if (!p) continue;
    if (f.code === "unavailable") { // outcome unknown: the same id again is safe
      setTimeout(() => transmit(c, p), 2000);
      return;
    }
    p.state = "failed";
    p.error = f.message;
    if (S.current === c.id) renderMessages();
    return;
  }
  if (f.code === "rate_limited") toast("Slow down a little: " + f.message);
}

// ---- reading ---------------------------------------------------------------------

function requestHistory(c, extra, kind) {
  const id = "h" + ++S.reqN;
  S.reqs.set(id, { conv: c, kind });
  if (!send({ type: "history", id, conversation: c.id, limit: HISTORY_PAGE, ...extra })) {
    S.reqs.delete(id);
    return false;
  }
  c.loading = true;
  return true;
}

function pullAfter(c, after) {
  requestHistory(c, { after, limit: 100 }, "after");
}

// primeAll reads the newest page and the watermarks of the conversations that
// have not been read yet, so that the list shows previews, unread counts and ticks.
function primeAll() {
  let n = 0;
  for (const c of S.convs.values()) {
    if (c.primed) continue;
    if (n++ >= PRIME_MAX) break;
    prime(c);
  }
}

function prime(c) {
  if (!S.live || c.primed) return;
  c.primed = true;
  if (!c.loaded && !c.loading) requestHistory(c, {}, "newest");
  if (c.kind !== "channel") loadReceipts(c);
  if (c.kind === "dm" && !S.contacts.has(c.peer)) loadUser(c.peer);
}

async function loadReceipts(c) {
  try {
    const r = await S.api.receipts(c.id);
    for (const w of r.receipts || []) {
      if (w.user === S.me) c.myRead = maxId(c.myRead, w.read);
      else {
        c.receipt(w.user, "delivered", w.delivered);
        c.receipt(w.user, "read", w.read);
      }
    }
    if (c.kind === "group") c.members = (r.receipts || []).map((w) => w.user);
    renderList();
    if (S.current === c.id) renderMessages();
  } catch (e) {
    if (c.kind === "group" && (e.status === 403 || e.status === 404)) dropConv(c);
  }
}

async function loadUser(id) {
  try {
    const { user } = await S.api.user(id);
    S.names.set(id, user.displayName || id);
    if (!S.contacts.has(id)) S.contacts.set(id, { ...user, stranger: true });
    renderList();
    renderHeader();
  } catch {
    // an unknown user keeps its id as its name
  }
}

let readTimer = 0;
function markReadSoon() {
  clearTimeout(readTimer);
  readTimer = setTimeout(markRead, 150);
}

function markRead() {
  const c = S.convs.get(S.current);
  if (!c || document.visibilityState !== "visible" || !c.last) return;
  const upTo = c.newestId();
  if (cmpId(upTo, c.myRead) <= 0) return;
  if (send({ type: "read", conversation: c.id, upTo })) {
    c.myRead = upTo;
    c.unreadCount = 0;
    renderList();
  }
}

// ---- sending ---------------------------------------------------------------------

function transmit(c, p) {
  const frame = { type: "send", id: p.clientId, text: p.text };
  if (c.kind === "dm") frame.to = c.peer;
  else if (c.kind === "group") frame.group = c.ref;
  else frame.channel = c.ref;
  p.state = send(frame) ? "sending" : "queued";
}

function submitMessage(ev) {
  ev.preventDefault();
  const c = S.convs.get(S.current);
  const input = $("composer-input");
  const text = input.value.trim();
  if (!c || !text) return;
  if (new TextEncoder().encode(text).length > 4096) {
    toast("That message is too long (4096 bytes at most).");
    return;
  }
  const p = { clientId: randomId(), text, ts: Date.now(), state: "queued" };
  c.pending.push(p);
  transmit(c, p);
  input.value = "";
  autosize();
  renderMessages("bottom");
  renderList();
}

function onComposerKey(ev) {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    $("composer").requestSubmit();
  }
}

function onComposerInput() {
  const t = $("composer-input");
  if (t.value !== "" && t.value.trim() === "") t.value = ""; // nothing but line breaks
  autosize();
  const c = S.convs.get(S.current);
  if (!c || c.kind === "channel" || !$("composer-input").value) return;
  const now = Date.now();
  if (now - S.lastTyping < TYPING_EVERY) return;
  S.lastTyping = now;
  send(c.kind === "dm" ? { type: "typing", to: c.peer } : { type: "typing", group: c.ref });
}

// autosize grows the composer with its text, up to 160px (CSS sets one line).
function autosize() {
  const t = $("composer-input");
  t.style.height = "";
  if (t.scrollHeight > t.clientHeight) t.style.height = Math.min(t.scrollHeight + 2, 160) + "px";
}

// ---- opening conversations ---------------------------------------------------------

function openConv(id) {
  const c = ensureConv(id);
  if (!c) return;
  S.current = c.id;
  replaceHash("#" + c.id);
  $("app").classList.add("show-chat");
  $("chat-empty").hidden = true;
  $("chat-main").hidden = false;
  if (!c.loaded && !c.loading) requestHistory(c, {}, "newest");
  if (!c.primed) prime(c);
  renderHeader();
  renderMessages("bottom");
  renderTyping();
  renderList();
  markRead();
  const composer = $("composer-input");
  if (!composer.disabled) composer.focus();
}

function closeConv() {
  S.current = null;
  replaceHash(" ");
  $("app").classList.remove("show-chat");
  $("chat-main").hidden = true;
  $("chat-empty").hidden = false;
  renderList();
  const first = document.querySelector(".conv-item");
  if (first) first.focus();
}

function replaceHash(hash) {
  history.replaceState(null, "", hash === " " ? location.pathname : hash);
}

function openFromHash() {
  const id = decodeURIComponent(location.hash.slice(1));
  if (id && S.me) openConv(id);
}

// fillView loads older pages while the view is not full, and when scrolled near
// the top (infinite scroll back through history).
function fillView() {
  const c = S.convs.get(S.current);
  const box = $("messages");
  if (!c || !c.loaded || !c.more || c.loading) return;
  if (box.scrollTop < 120 || box.scrollHeight <= box.clientHeight) {
    requestHistory(c, { before: c.oldestId() }, "before");
    setHistoryStatus(c, "Loading earlier messages…");
  }
}

// ---- rendering -------------------------------------------------------------------

function displayName(id) {
  return S.names.get(id) || id;
}

function convTitle(c) {
  if (c.kind === "dm") return displayName(c.peer);
  return c.name || (c.kind === "group" ? "Group" : "Channel");
}

function presenceOf(c) {
  if (c.kind !== "dm") return "";
  const p = S.contacts.get(c.peer);
  return (p && p.status) || "offline";
}

function sortKey(c) {
  const p = c.pending.length ? c.pending[c.pending.length - 1] : null;
  return p ? "9".repeat(20) : c.newestId();
}

function renderList() {
  const list = $("conv-list");
  const convs = [...S.convs.values()].sort((a, b) => cmpId(sortKey(b), sortKey(a)) ||
    convTitle(a).localeCompare(convTitle(b)));
  const now = Date.now();
  const items = convs.map((c) => {
    const unread = c.unread(S.me);
    const typers = c.typers(now);
    const last = c.last;
    let preview = "";
    if (typers.length) preview = c.kind === "dm" ? "typing…" : `${displayName(typers[0])} is typing…`;
    else if (c.pending.length) preview = "You: " + c.pending[c.pending.length - 1].text;
    else if (last) preview = (last.from === S.me ? "You: " : c.kind === "group" ? displayName(last.from) + ": " : "") + last.text;
    else preview = c.kind === "dm" ? "Say hello" : c.kind === "group" ? "Group" : "Channel";
    const status = presenceOf(c);
    const avatar = el("span", { class: "avatar", "aria-hidden": "true" });
    setAvatar(avatar, convTitle(c));
    if (c.kind !== "dm") avatar.classList.add(c.kind);
    const dot = status ? el("span", { class: "dot " + status, title: status }) : null;
    const label = [convTitle(c), status, unread ? `${unread} unread` : ""].filter(Boolean).join(", ");
    const button = el("button", {
      type: "button", class: "conv-item" + (unread ? " has-unread" : ""), "aria-label": label,
      "aria-current": S.current === c.id ? "true" : false, dataset: { conv: c.id },
      onclick: () => openConv(c.id),
    },
    el("span", { class: "avatar-wrap" }, avatar, dot),
    el("span", { class: "conv-body" },
      el("span", { class: "conv-row" },
        el("span", { class: "conv-name" }, convTitle(c)),
        el("span", { class: "conv-time" }, last ? shortWhen(last.ts) : "")),
      el("span", { class: "conv-row" },
        el("span", { class: "conv-preview" + (typers.length ? " typing-text" : "") }, preview),
        unread ? el("span", { class: "badge", "aria-hidden": "true" }, unread > 99 ? "99+" : String(unread)) : null)));
    return el("li", {}, button);
  });
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.conv : null;
  list.replaceChildren(...items);
  if (focused) {
    const again = list.querySelector(`[data-conv="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
  $("conv-empty").hidden = items.length > 0;
  const total = convs.reduce((n, c) => n + c.unread(S.me), 0);
  document.title = total ? `(${total}) Parley` : "Parley";
}

function renderHeader() {
  const c = S.convs.get(S.current);
  if (!c) return;
  $("chat-name").textContent = convTitle(c);
  setAvatar($("chat-avatar"), convTitle(c));
  $("chat-avatar").className = "avatar" + (c.kind !== "dm" ? " " + c.kind : "");
  let sub = "";
  if (c.kind === "dm") {
    const p = S.contacts.get(c.peer);
    const st = presenceOf(c);
    sub = st === "online" ? "online" : st === "away" ? "away" : lastSeenText(p && p.lastSeen);
    if (c.peer !== displayName(c.peer)) sub = `@${c.peer} · ${sub}`;
    $("chat-sub").className = "muted small presence-" + st;
  } else if (c.kind === "group") {
    sub = c.members.length ? `${c.members.length} members` : "group";
    $("chat-sub").className = "muted small";
  } else {
    sub = `${c.mode === "open" ? "open" : "broadcast"} channel · you are ${c.role || "a member"}`;
    $("chat-sub").className = "muted small";
  }
  $("chat-sub").textContent = sub;
  const manage = (c.kind === "group" && c.owner === S.me) || (c.kind === "channel" && (c.role === "owner" || c.role === "admin"));
  $("btn-add-member").hidden = !manage;
  $("btn-leave").hidden = c.kind === "dm" || c.owner === S.me || c.role === "owner";
  const canPost = c.kind !== "channel" || c.mode === "open" || c.role === "owner" || c.role === "admin";
  $("composer").hidden = !canPost;
  $("composer-note").hidden = canPost;
  $("composer-note").textContent = canPost ? "" : "Only the owner and admins post in this channel.";
}

function setHistoryStatus(c, text) {
  if (S.current === c.id) $("history-status").textContent = text;
}

const TICKS = {
  queued: ["…", "waiting for the connection"], sending: ["…", "sending"], failed: ["!", "not sent"],
  sent: ["✓", "sent"], delivered: ["✓✓", "delivered"], read: ["✓✓", "read"],
};

function bubble(c, m, state, prevFrom) {
  const mine = m.from === S.me;
  const meta = el("span", { class: "meta" }, el("time", { datetime: new Date(m.ts).toISOString() }, clock(m.ts)));
  if (mine) {
    const [glyph, label] = TICKS[state];
    meta.append(el("span", { class: "tick " + state, title: label, "aria-label": label, role: "img" }, glyph));
  }
  const body = el("div", { class: "bubble" });
  if (!mine && c.kind !== "dm" && prevFrom !== m.from) body.append(el("span", { class: "sender" }, displayName(m.from)));
  body.append(el("p", { class: "text" }, m.text), meta);
  const li = el("li", { class: "msg " + (mine ? "mine" : "theirs") + (prevFrom === m.from ? " cont" : ""), dataset: { id: m.messageId || "" } }, body);
  if (state === "failed") {
    li.append(el("button", { type: "button", class: "link retry", onclick: () => { transmit(c, findPending(c, m.clientId)); renderMessages(); } },
      "Not sent. Retry"));
  }
  return li;
}

function findPending(c, clientId) {
  return c.pending.find((p) => p.clientId === clientId);
}

// renderMessages redraws the open conversation. scroll: "bottom" scrolls down,
// "keep" keeps what is on screen (older messages came in above), "" follows the
// bottom only if the view was there.
function renderMessages(scroll = "") {
  const c = S.convs.get(S.current);
  if (!c) return;
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  const oldHeight = box.scrollHeight;
  const oldTop = box.scrollTop;
  const items = [];
  let day = "";
  let prevFrom = "";
  const add = (m, state) => {
    const d = dayLabel(m.ts);
    if (d !== day) {
      items.push(el("li", { class: "day" }, el("span", {}, d)));
      day = d;
      prevFrom = "";
    }
    items.push(bubble(c, m, state, prevFrom));
    prevFrom = m.from;
  };
  for (const m of c.sorted()) add(m, m.from === S.me ? c.tick(S.me, m.messageId) : "");
  for (const p of c.pending) add({ from: S.me, text: p.text, ts: p.ts, clientId: p.clientId }, p.state);
  $("message-list").replaceChildren(...items);
  let status = "";
  if (!c.loaded) status = "Loading messages…";
  else if (c.loading) status = "Loading earlier messages…";
  else if (!c.more) status = c.msgs.size ? "This is the beginning of the conversation." : "No messages yet. Say hello!";
  $("history-status").textContent = status;
  if (scroll === "keep") box.scrollTop = oldTop + (box.scrollHeight - oldHeight);
  else if (scroll === "bottom" || atBottom) box.scrollTop = box.scrollHeight;
}

function renderTyping() {
  const c = S.convs.get(S.current);
  const typers = c ? c.typers(Date.now()) : [];
  let text = "";
  if (typers.length === 1) text = `${displayName(typers[0])} is typing…`;
  else if (typers.length > 1) text = `${typers.length} people are typing…`;
  $("typing").textContent = text;
}

function renderBanner() {
  const up = S.conn && S.conn.up;
  const banner = $("banner");
  const offline = !navigator.onLine;
  // A short reconnect is not worth a banner.
  const show = !up && S.me && (offline || (S.downSince && Date.now() - S.downSince > 1500));
  banner.hidden = !show;
  if (show) {
    const secs = Math.max(0, Math.ceil((S.retryAt - Date.now()) / 1000));
    $("banner-text").textContent = offline
      ? "You are offline. Messages you write are sent when you are back."
      : `Connection lost. Reconnecting${secs > 1 ? ` in ${secs} s` : ""}…`;
    $("banner-retry").hidden = offline;
  }
  $("me-status").textContent = up ? (S.live ? "online" : "syncing…") : offline ? "offline" : "connecting…";
  $("me-status").className = "muted small presence-" + (up ? "online" : "offline");
}

let toastTimer = 0;
function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 5000);
}

// ---- groups and channels -------------------------------------------------------------

function usernames(text) {
  return text.split(/[\s,]+/).map((s) => s.trim().toLowerCase()).filter(Boolean);
}

function openGroupDialog() {
  const pick = $("group-contacts");
  const boxes = [...S.contacts.values()].filter((u) => !u.stranger).map((u) =>
    el("label", { class: "check" }, el("input", { type: "checkbox", value: u.id }), ` ${u.displayName || u.id} (@${u.id})`));
  pick.replaceChildren(...(boxes.length ? boxes : [el("p", { class: "muted small" }, "Add contacts to pick them here.")]));
  $("group-error").textContent = "";
  $("group-name").value = "";
  $("group-more").value = "";
  $("dlg-group").showModal();
}

async function createGroup(ev) {
  ev.preventDefault();
  const name = $("group-name").value.trim();
  const members = [...$("group-contacts").querySelectorAll("input:checked")].map((i) => i.value)
    .concat(usernames($("group-more").value));
  if (!name) {
    $("group-error").textContent = "Give the group a name.";
    return;
  }
  try {
    const { group } = await S.api.createGroup(name, members);
    $("dlg-group").close();
    const c = ensureConv("group:" + group.id);
    c.name = group.name;
    c.owner = group.owner;
    c.members = group.members;
    saveConvCache();
    openConv(c.id);
  } catch (e) {
    $("group-error").textContent = e.message;
  }
}

function openMemberDialog() {
  $("member-error").textContent = "";
  $("member-name").value = "";
  $("dlg-member").showModal();
}

async function addMember(ev) {
  ev.preventDefault();
  const c = S.convs.get(S.current);
  const users = usernames($("member-name").value);
  if (!c || !users.length) return;
  try {
    if (c.kind === "group") for (const u of users) await S.api.addMember(c.ref, u);
    else await S.api.addChannelMembers(c.ref, users);
    $("dlg-member").close();
    toast(`Added ${users.join(", ")}.`);
    if (c.kind === "group") {
      loadGroup(c);
      loadReceipts(c);
    }
  } catch (e) {
    $("member-error").textContent = e.message;
  }
}

async function leave() {
  const c = S.convs.get(S.current);
  if (!c || !confirm(`Leave "${convTitle(c)}"?`)) return;
  try {
    if (c.kind === "group") await S.api.removeMember(c.ref, S.me);
    else await S.api.leaveChannel(c.ref, S.me);
    dropConv(c);
  } catch (e) {
    toast(e.message);
  }
}

function openChannelDialog() {
  $("channel-error").textContent = "";
  $("channel-name").value = "";
  $("channel-members").value = "";
  $("dlg-channel").showModal();
}

async function createChannel(ev) {
  ev.preventDefault();
  const name = $("channel-name").value.trim();
  if (!name) {
    $("channel-error").textContent = "Give the channel a name.";
    return;
  }
  try {
    const { channel } = await S.api.createChannel(name, $("channel-mode").value, $("channel-public").checked);
    const users = usernames($("channel-members").value);
    if (users.length) await S.api.addChannelMembers(channel.id, users);
    $("dlg-channel").close();
    const c = ensureConv("channel:" + channel.id);
    c.name = channel.name;
    c.role = "owner";
    c.mode = channel.mode;
    saveConvCache();
    openConv(c.id);
  } catch (e) {
    $("channel-error").textContent = e.message;
  }
}

// ---- push ------------------------------------------------------------------------

async function setupPush() {
  const btn = $("btn-push");
  if (!pushSupported()) return;
  let info;
  try {
    info = await S.api.webPush();
  } catch {
    return;
  }
  if (!info || !info.available) return;
  const run = async (ask) => {
    try {
      const state = await enablePush(S.api, S.device, info.publicKey, ask);
      btn.hidden = state === "on";
      if (state === "denied") {
        btn.disabled = true;
        btn.textContent = "Notifications blocked";
      }
    } catch (e) {
      toast("Notifications could not be turned on: " + e.message);
    }
  };
  btn.hidden = Notification.permission === "granted";
  btn.onclick = () => run(true);
  if (Notification.permission === "granted") run(false); // keep the subscription registered
}

// ---- wiring ----------------------------------------------------------------------

function wire() {
  $("auth-form").addEventListener("submit", submitAuth);
  $("auth-switch").addEventListener("click", () => {
    setSignup(!signingUp);
    $("auth-error").textContent = "";
    $("auth-username").focus();
  });
  $("contact-form").addEventListener("submit", addContact);
  $("composer").addEventListener("submit", submitMessage);
  $("composer-input").addEventListener("keydown", onComposerKey);
  $("composer-input").addEventListener("input", onComposerInput);
  $("btn-back").addEventListener("click", closeConv);
  $("btn-logout").addEventListener("click", logout);
  $("btn-new-group").addEventListener("click", openGroupDialog);
  $("btn-new-channel").addEventListener("click", openChannelDialog);
  $("btn-add-member").addEventListener("click", openMemberDialog);
  $("btn-leave").addEventListener("click", leave);
  $("group-form").addEventListener("submit", createGroup);
  $("member-form").addEventListener("submit", addMember);
  $("channel-form").addEventListener("submit", createChannel);
  $("banner-retry").addEventListener("click", () => S.conn && S.conn.retryNow());
  for (const b of document.querySelectorAll("dialog [data-close]")) {
    b.addEventListener("click", () => b.closest("dialog").close());
  }
  $("messages").addEventListener("scroll", fillView, { passive: true });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && S.current && !document.querySelector("dialog[open]")) closeConv();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") markReadSoon();
  });
  window.addEventListener("online", () => {
    renderBanner();
    if (S.conn) S.conn.retryNow();
  });
  window.addEventListener("offline", () => {
    if (S.conn) S.conn.drop();
    renderBanner();
  });
  window.addEventListener("hashchange", openFromHash);
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.addEventListener("message", (ev) => {
      if (ev.data && ev.data.type === "open" && ev.data.conversation) openConv(ev.data.conversation);
    });
  }
  setInterval(renderBanner, 1000);
  // Presence frames come only for contacts the server knew of when this user came
  // online: the list is read again now and then, so a contact added since shows
  // its status too.
  setInterval(() => {
    if (S.live && document.visibilityState === "visible") loadContacts();
  }, CONTACTS_EVERY);
}

function boot() {
  wire();
  const notice = sessionStorage.getItem("parley.notice") || "";
  sessionStorage.removeItem("parley.notice");
  const s = loadSession();
  if (s) startSession(s);
  else showAuth(notice);
}

boot();
