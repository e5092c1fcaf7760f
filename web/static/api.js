// REST calls of the Parley protocol (docs/PROTOCOL.md). Every call but sign-up and
// login carries the session's token in the Authorization header, never in the URL.

// seg escapes one path segment. Conversation ids keep their colons: the server
// refuses %3A in them.
const seg = (s) => encodeURIComponent(s).replace(/%3A/gi, ":");

export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class API {
  constructor(token = "") {
    this.token = token;
    this.onUnauthorized = null; // called when a call with a token gets 401
  }

  async call(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.token) headers.Authorization = "Bearer " + this.token;
    let res;
    try {
      res = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store", credentials: "omit",
      });
    } catch {
      throw new APIError(0, "unavailable", "The server cannot be reached. Check your connection.");
    }
    if (res.status === 204) return null;
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    if (!res.ok) {
      const err = (data && data.error) || {};
      if (res.status === 401 && this.token && this.onUnauthorized) this.onUnauthorized();
      throw new APIError(res.status, err.code || "internal", err.message || `request failed (${res.status})`);
    }
    return data;
  }

  signup(username, password, displayName) {
    const body = { username, password };
    if (displayName) body.displayName = displayName;
    return this.call("POST", "/v1/users", body);
  }
  login(username, password, device) {
    const body = { username, password };
    if (device) body.device = device;
    return this.call("POST", "/v1/sessions", body);
  }
  logout() { return this.call("DELETE", "/v1/sessions/current"); }
  contacts() { return this.call("GET", "/v1/contacts"); }
  addContact(id) { return this.call("PUT", "/v1/contacts/" + seg(id)); }
  user(id) { return this.call("GET", "/v1/users/" + seg(id)); }
  createGroup(name, members) { return this.call("POST", "/v1/groups", { name, members }); }
  group(id) { return this.call("GET", "/v1/groups/" + seg(id)); }
  addMember(group, user) {
    return this.call("POST", `/v1/groups/${seg(group)}/members`, { user });
  }
  removeMember(group, user) {
    return this.call("DELETE", `/v1/groups/${seg(group)}/members/${seg(user)}`);
  }
  createChannel(name, mode, isPublic) {
    return this.call("POST", "/v1/channels", { name, mode, public: isPublic });
  }
  addChannelMembers(channel, users) {
    return this.call("POST", `/v1/channels/${seg(channel)}/members`, { users });
  }
  leaveChannel(channel, user) {
    return this.call("DELETE", `/v1/channels/${seg(channel)}/members/${seg(user)}`);
  }
  receipts(conv) { return this.call("GET", `/v1/conversations/${seg(conv)}/receipts`); }
  webPush() { return this.call("GET", "/v1/push/webpush"); }
  registerPush(device, token) {
    return this.call("PUT", `/v1/devices/${seg(device)}/push`, { provider: "webpush", token });
  }
}
