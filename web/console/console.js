// console.js -- the hotdeskd web console: one page, six views and the user
// settings editor, on top of the admin API (/api/v1/) with the session
// cookie the sign-in set.
//
// The token typed at sign-in goes to /console/api/login once and is not
// kept anywhere in the page; the session cookie is HttpOnly, and the CSRF
// token that every change must carry lives in a variable of this module.
// Everything the server sends is shown with textContent: a name holding
// markup is shown as text, never run.
const $ = (id) => document.getElementById(id);
let csrf = "";
let session = null;

function say(text, error = false) {
  $("msg").textContent = text;
  $("msg").className = error ? "error" : "";
}

async function call(method, path, body, type = "application/json") {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = type;
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined
      : type === "application/json" ? JSON.stringify(body) : body,
  });
  const text = await r.text();
  let js = null;
  try { js = JSON.parse(text); } catch (e) { js = null; }
  if (r.status === 401 && !path.startsWith("/console/api/login")) signedOut();
  return { status: r.status, js, text };
}

const enc = encodeURIComponent;

function when(t) {
  return t ? new Date(t * 1000).toLocaleString() : "";
}

// a table row from cell values (strings or nodes)
function row(tbody, cells) {
  const tr = tbody.insertRow();
  for (const c of cells) {
    const td = tr.insertCell();
    if (c instanceof Node) td.append(c); else td.textContent = c == null ? "" : String(c);
  }
  return tr;
}

function button(label, onclick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", onclick);
  return b;
}

function errorText(r) {
  return r.js && r.js.error ? r.js.error : `HTTP ${r.status}`;
}

// ---- views -----------------------------------------------------------------

const views = {};

let current = null;

function showView(name) {
  current = name;
  closeSettings();
  hideSecret();
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== "view-" + name;
  window.addEventListener("hashchange", () => {
  const v = location.hash.slice(1);
  if (session && views[v] && v !== current) showView(v);
});
for (const b of document.querySelectorAll("#tabs button")) {
    b.classList.toggle("active", b.dataset.view === name);
  }
  location.hash = name;
  if (views[name]) views[name]();
}

async function orgNames() {
  const r = await call("GET", "/api/v1/orgs");
  return r.status === 200 ? r.js.orgs.map((o) => o.name) : [];
}

// who is where
views.where = async () => {
  const tbody = $("where-table").tBodies[0];
  const rows = [];
  for (const org of await orgNames()) {
    const r = await call("GET", `/api/v1/orgs/${enc(org)}/extensions`);
    if (r.status !== 200) continue;
    for (const e of r.js.extensions) rows.push(e);
  }
  rows.sort((a, b) => a.org.localeCompare(b.org) || a.number.length - b.number.length ||
                      a.number.localeCompare(b.number));
  const f = $("where-filter").value.toLowerCase();
  tbody.replaceChildren();
  for (const e of rows) {
    const hay = [e.org, e.number, e.display_name, e.status, e.virtual_on, e.home_device]
      .join(" ").toLowerCase();
    if (f && !hay.includes(f)) continue;
    const ret = e.status === "virtualized"
      ? button("Return to base", async () => {
        const r = await call("POST",
          `/api/v1/orgs/${enc(e.org)}/extensions/${enc(e.number)}/return`, {});
        if (r.status === 200) say(`${e.number} returned to base.`);
        else say(errorText(r), true);
        views.where();
      })
      : "";
    const acts = document.createElement("span");
    if (ret) acts.append(ret);
    acts.append(button("Settings", () => openSettings(e.org, e.number, "")));
    const tr = row(tbody, [e.org, e.number, e.display_name, e.status,
      e.home_device || "", e.virtual_on || "", acts]);
    tr.dataset.ext = `${e.org}/${e.number}`;
  }
};

// devices
function syncCell(s) {
  const span = document.createElement("span");
  if (!s) { span.textContent = "unknown"; return span; }
  span.textContent = s.state + (s.last_result ? ` (${s.last_result})` : "");
  span.className = "state-" + s.state;
  return span;
}

function lastFetch(d) {
  const f = d.last_fetch || (d.sync && d.sync.last_fetch);
  if (!f) return "never";
  return [when(f.at), f.source || f.address || "", f.user_agent || ""]
    .filter((x) => x).join(" · ");
}

function carries(c) {
  if (!c) return "";
  if (c.kind === "extension") return c.extension + (c.virtual ? " (virtual)" : "");
  return "parked" + (c.parking_user ? ` (${c.parking_user})` : "");
}

views.devices = async () => {
  const r = await call("GET", "/api/v1/devices");
  const tbody = $("dev-table").tBodies[0];
  tbody.replaceChildren();
  if (r.status !== 200) { say(errorText(r), true); return; }
  const f = $("dev-filter").value.toLowerCase();
  for (const d of r.js.devices) {
    const hay = [d.mac, d.org, d.profile, d.model, d.home_extension, carries(d.carries)]
      .join(" ").toLowerCase();
    if (f && !hay.includes(f)) continue;
    const actions = document.createElement("span");
    actions.append(
      button("Resync", async () => {
        const x = await call("POST", `/api/v1/devices/${enc(d.mac)}/resync`, {});
        say(x.status === 202 ? `Resync of ${d.mac} queued.` : errorText(x), x.status !== 202);
        views.devices();
      }),
      button("Details", async () => {
        const x = await call("GET", `/api/v1/devices/${enc(d.mac)}`);
        $("dev-detail").hidden = false;
        $("dev-detail").textContent = JSON.stringify(x.js, null, 2);
      }));
    const c = d.carries;
    if (c && c.kind === "extension") {
      actions.append(button("Settings", () => openSettings(d.org, c.extension,
        `Phone ${d.mac} carries extension ${c.extension}` +
        (c.virtual ? " (a visitor)" : "") + ": these settings follow the user to any phone.")));
    } else if (d.home_extension) {
      actions.append(button("Settings", () => openSettings(d.org, d.home_extension,
        `Phone ${d.mac} is parked; its home extension is ${d.home_extension}.`)));
    }
    const tr = row(tbody, [d.mac, d.org, d.profile, d.model || "", d.home_extension || "",
      carries(d.carries), syncCell(d.sync), lastFetch(d), actions]);
    tr.dataset.mac = d.mac;
  }
};

// templates
function tmplPath() {
  return "/api/v1/templates/" + $("tmpl-select").value.split("/").map(enc).join("/");
}

function showTemplateError(js) {
  const text = $("tmpl-text").value;
  const ol = $("tmpl-lines");
  $("tmpl-error").textContent = js && js.error ? js.error : "";
  ol.replaceChildren();
  ol.hidden = true;
  if (!js || !js.line) return;
  // the template text with the line at fault marked (a rendered-output
  // position is in the XML the template produced: named, not marked)
  if (js.in && js.in !== "template") return;
  const lines = text.split("\n");
  lines.forEach((l, i) => {
    const li = document.createElement("li");
    li.textContent = l;
    if (i + 1 === js.line) { li.className = "error-line"; li.id = "tmpl-error-line"; }
    ol.append(li);
  });
  ol.hidden = false;
  const mark = $("tmpl-error-line");
  if (mark) mark.scrollIntoView({ block: "nearest" });
  // put the caret on the place in the editor
  let pos = 0;
  for (let i = 0; i < js.line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
  pos += Math.max(0, (js.column || 1) - 1);
  $("tmpl-text").setSelectionRange(pos, pos);
}

function listResult(title, items) {
  const div = $("tmpl-result");
  const h = document.createElement("h3");
  h.textContent = title;
  const ul = document.createElement("ul");
  for (const i of items) {
    const li = document.createElement("li");
    if (i instanceof Node) li.append(i); else li.textContent = i;
    ul.append(li);
  }
  div.replaceChildren(h, ul);
}

views.templates = async () => {
  const sel = $("tmpl-select");
  if (sel.options.length) return;
  const r = await call("GET", "/api/v1/templates");
  if (r.status !== 200) { say(errorText(r), true); return; }
  for (const t of r.js.templates) {
    const o = document.createElement("option");
    o.value = `${t.profile}/${t.name}`;
    o.textContent = `${t.profile} / ${t.name} (${t.kind}, version ${t.version})`;
    sel.append(o);
  }
};

async function loadTemplate(version) {
  const q = version === undefined ? "" : `?version=${enc(version)}`;
  const r = await call("GET", tmplPath() + q);
  if (r.status !== 200) { say(errorText(r), true); return; }
  $("tmpl-text").value = r.js.content;
  showTemplateError(null);
  $("tmpl-result").replaceChildren();
  say(`Loaded ${$("tmpl-select").value}, version ${r.js.version}.`);
}

async function sendTemplate(dry) {
  const body = { content: $("tmpl-text").value };
  if ($("tmpl-comment").value) body.comment = $("tmpl-comment").value;
  const r = await call(dry ? "POST" : "PUT", tmplPath() + (dry ? "/dry-run" : ""), body);
  showTemplateError(r.status === 200 ? null : r.js);
  if (r.status !== 200) { say(errorText(r), true); return; }
  const changed = r.js.changed || [];
  if (dry) {
    listResult(`Dry run: ${changed.length} device(s) would change, ` +
      `${r.js.unchanged} unchanged`, changed.concat((r.js.failed || [])
      .map((f) => `${f.mac}: fails: ${f.error}`)));
    say("Dry run done: nothing changed.");
  } else {
    listResult(`Saved as version ${r.js.version}: ${changed.length} device(s) re-rendered`,
      changed);
    say(`Saved version ${r.js.version}.`);
  }
}

async function history() {
  const r = await call("GET", tmplPath() + "/history");
  if (r.status !== 200) { say(errorText(r), true); return; }
  const items = r.js.versions.slice().reverse().map((v) => {
    const span = document.createElement("span");
    span.textContent = `version ${v.version}${v.active ? " (active)" : ""}, ` +
      `${when(v.created_at)}${v.comment ? ": " + v.comment : ""} `;
    span.append(button("Show", () => loadTemplate(v.version)));
    if (!v.active) {
      span.append(button("Roll back to this", async () => {
        const x = await call("POST", tmplPath() + "/rollback", { version: v.version });
        if (x.status === 200) say(`Version ${v.version} is active again.`);
        else say(errorText(x), true);
        history();
      }));
    }
    return span;
  });
  listResult(`History (active: ${r.js.active})`, items);
}

async function preview() {
  const mac = $("tmpl-mac").value.trim();
  const r = await call("GET", `/api/v1/devices/${enc(mac)}/preview`);
  if (r.status !== 200) { say(errorText(r), true); return; }
  const div = $("tmpl-result");
  div.replaceChildren();
  for (const f of r.js.files) {
    const h = document.createElement("h3");
    h.textContent = f.name + (f.shared ? " (shared)" : "");
    const pre = document.createElement("pre");
    pre.textContent = f.content;
    div.append(h, pre);
  }
  say(`Preview of ${r.js.mac} (passwords hidden).`);
}

// events
let evNext = null;
// the latest loadEvents: the tab opened, then a filter submitted at once,
// are two requests; an answer that comes after a later one's is dropped,
// so the table always shows what the filter now says
let evLoad = 0;

async function loadEvents(after) {
  const seq = ++evLoad;
  const f = $("ev-filter");
  const q = new URLSearchParams();
  for (const k of ["org", "type", "extension", "device", "limit"]) {
    if (f[k].value) q.set(k, f[k].value);
  }
  if (after) q.set("after", after);
  const r = await call("GET", "/api/v1/events?" + q.toString());
  if (seq !== evLoad) return;
  const tbody = $("ev-table").tBodies[0];
  tbody.replaceChildren();
  if (r.status !== 200) { say(errorText(r), true); return; }
  for (const e of r.js.events) {
    row(tbody, [e.id, when(e.at), e.type, e.org || "", e.extension || "", e.device || "",
      e.detail ? JSON.stringify(e.detail) : ""]);
  }
  evNext = r.js.next;
  $("ev-next").disabled = evNext == null;
}

views.events = () => loadEvents();

// CSV import
views.import = async () => {
  const sel = $("imp-org");
  const names = await orgNames();
  sel.replaceChildren();
  for (const n of names) {
    const o = document.createElement("option");
    o.value = o.textContent = n;
    sel.append(o);
  }
};

async function importCsv(dry) {
  const org = $("imp-org").value;
  const r = await call("POST", `/api/v1/orgs/${enc(org)}/import${dry ? "?dry_run=1" : ""}`,
    $("imp-text").value, "text/csv");
  const rep = $("imp-report");
  rep.replaceChildren();
  $("imp-error").textContent = "";
  if (r.status !== 200 && r.status !== 201) {
    $("imp-error").textContent = errorText(r);
    say(dry ? "Dry run found a problem: nothing would change." :
      "Import refused: nothing changed.", true);
    return;
  }
  const t = document.createElement("table");
  t.id = "imp-table";
  const head = t.createTHead().insertRow();
  for (const h of ["", "created", "changed", "unchanged"]) head.insertCell().textContent = h;
  const body = t.createTBody();
  for (const k of ["extensions", "devices"]) {
    const x = r.js[k];
    row(body, [k, x.created.join(", ") || "—", x.changed.join(", ") || "—", x.unchanged]);
  }
  const p = document.createElement("p");
  p.textContent = (dry ? "Dry run of " : "Imported ") + `${r.js.rows} row(s)` +
    (r.js.returned ? `; ${r.js.returned} virtualization(s) returned to base` : "") +
    (dry ? ": nothing changed yet." : ".");
  rep.append(p, t);
  say(p.textContent);
}

// per-extension user settings (voicemail, language, line keys): they travel
// with the extension onto whichever phone carries it
let setTarget = null;   // { org, number } being edited

function fieldError() {
  const span = document.createElement("span");
  span.className = "field-error";
  return span;
}

function renumberKeys() {
  const rows = $("set-keys").tBodies[0].rows;
  for (let i = 0; i < rows.length; i++) rows[i].cells[0].textContent = String(i + 1);
  $("set-add-key").disabled = rows.length >= 10;
}

function keyRow(k) {
  const tr = $("set-keys").tBodies[0].insertRow();
  tr.insertCell();
  const type = document.createElement("select");
  type.name = "type";
  for (const [v, l] of [["blf", "BLF"], ["speed_dial", "speed dial"]]) {
    const o = document.createElement("option");
    o.value = v;
    o.textContent = l;
    type.append(o);
  }
  type.value = k.type || "blf";
  const value = document.createElement("input");
  value.name = "value";
  value.value = k.value || "";
  const label = document.createElement("input");
  label.name = "label";
  label.value = k.label || "";
  tr.insertCell().append(type);
  tr.insertCell().append(value);
  tr.insertCell().append(label);
  const last = tr.insertCell();
  last.append(button("Remove", () => { tr.remove(); renumberKeys(); }), fieldError());
  renumberKeys();
}

function clearFieldErrors() {
  const f = $("settings");
  for (const el of f.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of f.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

// an API validation error {"error", "field", "item"?} shown at its field
function showFieldError(js) {
  const f = $("settings");
  const msg = js && js.error ? js.error : "refused";
  const field = js ? js.field : null;
  const keyRowAt = js && js.item ? $("set-keys").tBodies[0].rows[js.item - 1] : null;
  if (field === "voicemail" || field === "language") {
    f.elements[field].setAttribute("aria-invalid", "true");
    f.querySelector(`.field-error[data-for="${field}"]`).textContent = msg;
    f.elements[field].focus();
  } else if (field && field.startsWith("keys") && keyRowAt) {
    const sub = field.split(".")[1];
    const ctl = keyRowAt.querySelectorAll(sub ? `[name="${sub}"]` : "select, input");
    for (const el of ctl) el.setAttribute("aria-invalid", "true");
    keyRowAt.querySelector(".field-error").textContent = msg;
    ctl[0].focus();
  } else if (field && field.startsWith("keys")) {
    f.querySelector('.field-error[data-for="keys"]').textContent = msg;
  } else {
    say(msg, true);
    return;
  }
  say("Not saved: see the field marked.", true);
}

async function openSettings(org, number, note) {
  const r = await call("GET", `/api/v1/orgs/${enc(org)}/extensions/${enc(number)}`);
  if (r.status !== 200) { say(errorText(r), true); return; }
  const e = r.js;
  const f = $("settings");
  setTarget = { org, number };
  clearFieldErrors();
  $("set-title").textContent = `${e.org}/${e.number}` +
    (e.display_name ? ` (${e.display_name})` : "");
  $("set-note").textContent = note;
  f.elements.voicemail.value = e.voicemail || "";
  f.elements.language.value = e.language || "";
  $("set-keys").tBodies[0].replaceChildren();
  for (const k of e.keys || []) keyRow(k);
  renumberKeys();
  f.hidden = false;
  f.scrollIntoView({ block: "nearest" });
}

function closeSettings() {
  setTarget = null;
  $("settings").hidden = true;
}

$("settings").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!setTarget) return;
  const f = $("settings");
  const keys = [];
  for (const tr of $("set-keys").tBodies[0].rows) {
    const k = { type: tr.querySelector('[name="type"]').value,
      value: tr.querySelector('[name="value"]').value.trim() };
    const label = tr.querySelector('[name="label"]').value;
    if (label !== "") k.label = label;
    keys.push(k);
  }
  const body = { voicemail: f.elements.voicemail.value.trim() || null,
    language: f.elements.language.value || null, keys };
  clearFieldErrors();
  const { org, number } = setTarget;
  const r = await call("PATCH", `/api/v1/orgs/${enc(org)}/extensions/${enc(number)}`, body);
  if (r.status !== 200) { showFieldError(r.js); return; }
  say(`Settings of ${org}/${number} saved: the phones carrying it are updated.`);
});
$("set-add-key").addEventListener("click", () => keyRow({}));
$("set-close").addEventListener("click", closeSettings);

// tokens (admin sessions; the API answers 403 to an organization's)
function showSecret(id, token) {
  $("tok-secret-id").textContent = String(id);
  $("tok-secret-value").value = token;
  $("tok-secret").hidden = false;
  $("tok-secret-value").select();
}

function hideSecret() {
  $("tok-secret-value").value = "";
  $("tok-secret").hidden = true;
}

views.tokens = async () => {
  const sel = $("tok-new").elements.org;
  const names = await orgNames();
  const keep = sel.value;
  sel.replaceChildren();
  for (const n of names) {
    const o = document.createElement("option");
    o.value = o.textContent = n;
    sel.append(o);
  }
  if (names.includes(keep)) sel.value = keep;
  const r = await call("GET", "/api/v1/tokens");
  const tbody = $("tok-table").tBodies[0];
  tbody.replaceChildren();
  if (r.status !== 200) { say(errorText(r), true); return; }
  for (const t of r.js.tokens) {
    const acts = document.createElement("span");
    if (t.config) {
      acts.textContent = "configuration file";
    } else {
      acts.append(
        button("Rotate", async () => {
          const x = await call("POST", `/api/v1/tokens/${enc(t.id)}/rotate`, {});
          if (x.status !== 200) { say(errorText(x), true); return; }
          showSecret(x.js.id, x.js.token);
          say(`Token ${t.id} rotated: its old secret no longer works.`);
          views.tokens();
        }),
        button("Revoke", async () => {
          if (!confirm(`Revoke token ${t.id} (${t.name || t.role})? It stops working at once.`)) {
            return;
          }
          const x = await call("DELETE", `/api/v1/tokens/${enc(t.id)}`);
          if (x.status !== 200) { say(errorText(x), true); return; }
          say(`Token ${t.id} revoked.`);
          views.tokens();
        }));
    }
    const tr = row(tbody, [t.id, t.role, t.org || "", t.name || "", when(t.created_at),
      t.rotated_at ? when(t.rotated_at) : "never", acts]);
    tr.dataset.token = String(t.id);
  }
};

$("tok-new").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const body = { role: f.elements.role.value, name: f.elements.name.value };
  if (body.role === "org") body.org = f.elements.org.value;
  const r = await call("POST", "/api/v1/tokens", body);
  if (r.status !== 201) { say(errorText(r), true); return; }
  f.elements.name.value = "";
  showSecret(r.js.id, r.js.token);
  say(`Token ${r.js.id} created.`);
  views.tokens();
});
$("tok-new").elements.role.addEventListener("change", (ev) => {
  $("tok-new").elements.org.disabled = ev.target.value !== "org";
});
$("tok-secret-done").addEventListener("click", hideSecret);

// ---- session -----------------------------------------------------------------

function signedIn(js) {
  session = js;
  csrf = js.csrf;
  $("login").hidden = true;
  $("tabs").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = js.role === "admin" ? "administrator" : `organization ${js.org}`;
  $("tab-tokens").hidden = js.role !== "admin";
  const v = location.hash.slice(1);
  showView(views[v] ? v : "where");
}

function signedOut() {
  session = null;
  current = null;
  csrf = "";
  $("login").hidden = false;
  $("tabs").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("tab-tokens").hidden = true;
  closeSettings();
  hideSecret();
  for (const s of document.querySelectorAll(".view")) s.hidden = true;
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const r = await call("POST", "/console/api/login", { token: f.token.value });
  f.token.value = "";
  if (r.status === 200) { say("Signed in."); signedIn(r.js); }
  else say(errorText(r), true);
});

$("logout").addEventListener("click", async () => {
  await call("POST", "/console/api/logout", {});
  say("Signed out.");
  signedOut();
});

window.addEventListener("hashchange", () => {
  const v = location.hash.slice(1);
  if (session && views[v] && v !== current) showView(v);
});
for (const b of document.querySelectorAll("#tabs button")) {
  b.addEventListener("click", () => showView(b.dataset.view));
}
$("where-refresh").addEventListener("click", () => views.where());
$("where-filter").addEventListener("input", () => views.where());
$("dev-refresh").addEventListener("click", () => views.devices());
$("dev-filter").addEventListener("input", () => views.devices());
$("tmpl-load").addEventListener("click", () => loadTemplate());
$("tmpl-dry").addEventListener("click", () => sendTemplate(true));
$("tmpl-save").addEventListener("click", () => sendTemplate(false));
$("tmpl-history").addEventListener("click", () => history());
$("tmpl-preview").addEventListener("click", () => preview());
$("ev-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadEvents(); });
$("ev-next").addEventListener("click", () => loadEvents(evNext));
$("imp-dry").addEventListener("click", () => importCsv(true));
$("imp-go").addEventListener("click", () => importCsv(false));
$("imp-file").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  if (file) $("imp-text").value = await file.text();
});
$("imp-export").addEventListener("click", async () => {
  const r = await call("GET", `/api/v1/orgs/${enc($("imp-org").value)}/export`);
  if (r.status === 200) $("imp-text").value = r.text; else say(errorText(r), true);
});

(async () => {
  const r = await call("GET", "/console/api/session");
  if (r.status === 200) signedIn(r.js); else signedOut();
})();
