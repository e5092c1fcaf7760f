// Parley's service worker: shows Web Push notifications and opens the
// conversation when one is clicked. It caches nothing.

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (ev) => ev.waitUntil(self.clients.claim()));

self.addEventListener("push", (ev) => {
  let n = {};
  try {
    n = ev.data ? ev.data.json() : {};
  } catch {
    n = {};
  }
  const count = Number(n.count || 1);
  const title = n.from ? (count > 1 ? `${n.from} (${count} new)` : n.from) : "Parley";
  ev.waitUntil(self.registration.showNotification(title, {
    body: n.preview || "New message",
    tag: n.conversation || "parley",
    renotify: true,
    icon: "/icon.svg",
    badge: "/icon.svg",
    data: { conversation: n.conversation || "" },
  }));
});

self.addEventListener("notificationclick", (ev) => {
  ev.notification.close();
  const conv = (ev.notification.data && ev.notification.data.conversation) || "";
  const target = "/" + (conv ? "#" + conv : "");
  ev.waitUntil((async () => {
    const wins = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const w of wins) {
      if (new URL(w.url).origin === self.location.origin) {
        await w.focus();
        w.postMessage({ type: "open", conversation: conv });
        return;
      }
    }
    await self.clients.openWindow(target);
  })());
});
