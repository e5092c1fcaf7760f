// The admin console: it shows GET /admin/cluster every few seconds and looks up a
// user or conversation. The token stays in this tab (sessionStorage) and goes in
// the Authorization header, never in a URL.
const refreshEvery = 3000;
const $ = (sel) => document.querySelector(sel);

function token() { return sessionStorage.getItem("parley-admin-token") || ""; }

async function call(path) {
  const headers = {};
  if (token()) headers.Authorization = "Bearer " + token();
  const r = await fetch(path, { headers, cache: "no-store" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const e = body.error || {};
    throw new Error(`${r.status} ${e.code || ""}: ${e.message || r.statusText}`);
  }
  return body;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
}

function uptime(s) {
  if (!s) return "";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

async function refresh() {
  const status = $("#status");
  try {
    const c = await call("/admin/cluster");
    const body = $("#members tbody");
    body.replaceChildren();
    for (const m of c.members) {
      const tr = document.createElement("tr");
      cell(tr, m.nodeId ? m.nodeId + (m.self ? " (this)" : "") : "?");
      cell(tr, m.id);
      cell(tr, m.address);
      cell(tr, m.http);
      cell(tr, m.status, m.status);
      cell(tr, uptime(m.uptimeSeconds));
      cell(tr, m.grains ? m.grains.user : "");
      cell(tr, m.grains ? m.grains.conversation : "");
      cell(tr, m.connections);
      cell(tr, m.version);
      body.appendChild(tr);
    }
    status.textContent = `${c.members.length} member(s) in cluster ${c.cluster}`;
    status.className = "";
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    status.textContent = e.message;
    status.className = "error";
  }
}

$("#token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("parley-admin-token", $("#token").value);
  $("#token").value = "";
  refresh();
});

$("#lookup").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const out = $("#result");
  const id = $("#id").value.trim();
  try {
    const r = await call(`/admin/${$("#what").value}/${encodeURIComponent(id)}`);
    out.textContent = JSON.stringify(r, null, 2);
  } catch (e) {
    out.textContent = e.message;
  }
});

refresh();
setInterval(refresh, refreshEvery);
