// The WebSocket of one session: connects, reconnects with backoff, keeps the socket
// alive with `ping`, and tells its owner through callbacks.
//
// Browsers cannot set headers on a WebSocket, so the token goes in `?token=`, the
// one place the server reads it from a URL (docs/PROTOCOL.md, "Connecting").

const PING_EVERY = 15000; // the server closes a socket silent for 30 s
const PONG_WITHIN = 10000; // a ping unanswered this long means the socket is dead
const BACKOFF_MIN = 500;
const BACKOFF_MAX = 30000;

export class Connection {
  constructor(token, handlers) {
    this.token = token;
    this.h = handlers; // {open(), frame(f), down(willRetryAt), fatal(reason)}
    this.ws = null;
    this.attempt = 0;
    this.timer = 0;
    this.pingTimer = 0;
    this.pongTimer = 0;
    this.stopped = false;
    this.up = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.teardown(1000, "bye");
  }

  // retryNow reconnects at once (the browser came back online, or the user asked).
  retryNow() {
    if (this.stopped || (this.ws && this.ws.readyState <= WebSocket.OPEN)) return;
    clearTimeout(this.timer);
    this.attempt = 0;
    this.connect();
  }

  // drop closes the socket as if the network went (the browser went offline); the
  // next connect comes from retryNow or the backoff.
  drop() {
    if (this.ws) this.lost();
  }

  send(frame) {
    if (!this.up) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/v1/ws?encoding=json&token=${encodeURIComponent(this.token)}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.up = true;
      this.attempt = 0;
      this.schedulePing();
      this.h.open();
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      clearTimeout(this.pongTimer);
      this.schedulePing();
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.h.frame(f);
    };
    ws.onerror = () => {}; // onclose follows; the browser already says why in its network log
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      if (ev.code === 1000 && ev.reason === "logged out") {
        this.teardown();
        this.h.fatal("logged out");
        return;
      }
      this.lost();
    };
  }

  schedulePing() {
    clearTimeout(this.pingTimer);
    this.pingTimer = setTimeout(() => {
      if (!this.send({ type: "ping" })) return;
      this.pongTimer = setTimeout(() => this.lost(), PONG_WITHIN);
    }, PING_EVERY);
  }

  teardown(code, reason) {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    const ws = this.ws;
    this.ws = null;
    this.up = false;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close(code || 1000, reason || "");
    }
  }

  lost() {
    this.teardown(1000, "reconnecting");
    if (this.stopped) return;
    if (!navigator.onLine) { // no use trying: the "online" event calls retryNow
      this.h.down(0, this.attempt);
      return;
    }
    // A token that stopped working makes the upgrade fail again and again; the
    // owner checks it over REST (401 there ends the session) on every few tries.
    const delay = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** this.attempt);
    const wait = delay / 2 + Math.random() * delay / 2;
    this.attempt++;
    this.timer = setTimeout(() => this.connect(), wait);
    this.h.down(Date.now() + wait, this.attempt);
  }
}
