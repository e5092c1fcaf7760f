// Web Push: when the node sends Web Push (GET /v1/push/webpush names its VAPID
// public key), the service worker subscribes with that key and the subscription is
// registered as this device's push target (PUT /v1/devices/{device}/push,
// provider "webpush"). The server pushes a device only while none of the user's
// devices is connected.

export function pushSupported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window &&
    window.isSecureContext;
}

// The page enforces Trusted Types (web.go's CSP): a service worker's script URL
// must come from a policy, and "parley-sw" is the one the CSP allows. It lets
// through the client's own worker only.
let swPolicy = null;
function workerURL() {
  if (!window.trustedTypes) return "/sw.js";
  if (!swPolicy) {
    swPolicy = window.trustedTypes.createPolicy("parley-sw", {
      createScriptURL: (u) => {
        if (u !== "/sw.js") throw new TypeError("parley-sw: only /sw.js");
        return u;
      },
    });
  }
  return swPolicy.createScriptURL("/sw.js");
}

// registerWorker registers the service worker that shows pushes.
export function registerWorker() {
  return navigator.serviceWorker.register(workerURL(), { scope: "/" });
}

function keyBytes(b64url) {
  const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (b64url.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function sameKey(sub, key) {
  const k = sub.options && sub.options.applicationServerKey;
  if (!k) return false;
  const a = new Uint8Array(k);
  return a.length === key.length && a.every((v, i) => v === key[i]);
}

// enablePush subscribes (asking for permission when ask is true and it was not
// given yet) and registers the subscription. It answers "on", "denied", "off"
// (not asked) or throws.
export async function enablePush(api, device, publicKey, ask) {
  let perm = Notification.permission;
  if (perm === "default" && ask) perm = await Notification.requestPermission();
  if (perm === "denied") return "denied";
  if (perm !== "granted") return "off";
  const reg = await registerWorker();
  await navigator.serviceWorker.ready;
  const key = keyBytes(publicKey);
  let sub = await reg.pushManager.getSubscription();
  if (sub && !sameKey(sub, key)) {
    await sub.unsubscribe(); // made with another server key: it would be refused
    sub = null;
  }
  if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  await api.registerPush(device, JSON.stringify(sub));
  return "on";
}
