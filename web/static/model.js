// The client's model: conversations, their messages, watermarks and unread counts.
// It knows nothing of the DOM or the socket.

// cmpId compares two decimal id strings (message ids, seqs) without BigInt.
export function cmpId(a, b) {
  a = String(a || "0");
  b = String(b || "0");
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
export const maxId = (a, b) => (cmpId(a, b) >= 0 ? a : b);

export function dmId(a, b) {
  return a < b ? `dm:${a}:${b}` : `dm:${b}:${a}`;
}

// randomId is a client message id (the page may be no secure context, so no
// crypto.randomUUID).
export function randomId() {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export class Conv {
  constructor(id, me) {
    this.id = id;
    const [kind, ...rest] = id.split(":");
    this.kind = kind; // "dm" | "group" | "channel"
    if (kind === "dm") this.peer = rest[0] === me ? rest[1] : rest[0];
    else this.ref = rest[0]; // the group or channel id
    this.name = kind === "dm" ? this.peer : "";
    this.msgs = new Map(); // messageId -> {messageId, from, text, ts, clientId}
    this.pending = []; // sends without their `sent` yet: {clientId, text, ts, state, error}
    this.loaded = false; // the newest page is in msgs
    this.more = true; // older pages exist
    this.loading = false;
    this.primed = false;
    this.myRead = "0";
    this.unreadCount = 0; // channels: the server's count plus live arrivals
    this.wm = new Map(); // member -> {delivered, read} (dm and group)
    this.all = { delivered: "0", read: "0" }; // a group's "by all" floors from history
    this.members = []; // group members, from the receipts call
    this.owner = "";
    this.role = ""; // channels: owner | admin | member
    this.mode = ""; // channels: broadcast | open
    this.typing = new Map(); // user -> until (ms)
    this.last = null; // the newest message
  }

  sorted() {
    return [...this.msgs.values()].sort((a, b) => cmpId(a.messageId, b.messageId));
  }

  oldestId() {
    let o = "";
    for (const id of this.msgs.keys()) if (!o || cmpId(id, o) < 0) o = id;
    return o;
  }

  newestId() {
    return this.last ? this.last.messageId : "0";
  }

  // add keeps a message once (messages come live, in sync replays and in history
  // pages alike); it answers whether it was new.
  add(m) {
    if (this.msgs.has(m.messageId)) return false;
    const msg = { messageId: m.messageId, from: m.from, text: m.text, ts: m.ts, clientId: m.clientId || "" };
    this.msgs.set(msg.messageId, msg);
    if (!this.last || cmpId(msg.messageId, this.last.messageId) > 0) this.last = msg;
    if (msg.clientId) this.pending = this.pending.filter((p) => p.clientId !== msg.clientId);
    return true;
  }

  unread(me) {
    if (this.kind === "channel") return this.unreadCount;
    let n = 0;
    for (const m of this.msgs.values()) if (m.from !== me && cmpId(m.messageId, this.myRead) > 0) n++;
    return n;
  }

  watermark(user) {
    let w = this.wm.get(user);
    if (!w) {
      w = { delivered: "0", read: "0" };
      this.wm.set(user, w);
    }
    return w;
  }

  // receipt applies a receipt (live or from a history page).
  receipt(user, status, upTo) {
    const w = this.watermark(user);
    w.delivered = maxId(w.delivered, upTo);
    if (status === "read") w.read = maxId(w.read, upTo);
  }

  // tick is the state of one of my messages: "sent", "delivered" or "read".
  tick(me, id) {
    if (this.kind === "channel") return "sent";
    const others = this.kind === "dm" ? [this.peer] : this.members.filter((u) => u !== me);
    if (others.length === 0) return "sent";
    const every = (key) => others.every((u) => {
      const w = this.wm.get(u);
      return cmpId(maxId(w ? w[key] : "0", this.all[key]), id) >= 0;
    });
    if (every("read")) return "read";
    if (every("delivered")) return "delivered";
    return "sent";
  }

  typers(now) {
    const out = [];
    for (const [u, until] of this.typing) if (until > now) out.push(u);
    return out;
  }
}
