// me.js -- the self-service page: sign in with organization, extension and
// web password; see where the extension is; return it to base; set the
// secret code; change the password; recent moves.  Everything shown is
// inserted as text (textContent), never as markup.
const $ = (id) => document.getElementById(id);
let csrf = "";

function say(text, error = false) {
  $("msg").textContent = text;
  $("msg").className = error ? "error" : "";
}

async function call(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let js = null;
  try { js = await r.json(); } catch (e) { js = null; }
  return { status: r.status, js };
}

function device(d) {
  if (!d) return "none";
  return d.model ? `${d.model} (${d.mac})` : d.mac;
}

function when(t) {
  return t ? new Date(t * 1000).toLocaleString() : "";
}

// a move event's name (docs/API.md, Events) as this page says it
const MOVES = { "extension.virtualized": "virtualized", "extension.returned": "returned" };

function show(state) {
  csrf = state.csrf;
  $("login").hidden = true;
  $("home").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${state.display_name || ""} — ${state.org} ${state.extension}`;
  $("ext").textContent = state.extension;
  $("status").textContent = state.status;
  $("home-device").textContent = device(state.home_device);
  if (state.virtual_on) {
    $("virtual-on").textContent = `${device(state.virtual_on.device)}` +
      (state.virtual_on.since ? `, since ${when(state.virtual_on.since)}` : "");
  } else {
    $("virtual-on").textContent = "not virtualized";
  }
  $("return").disabled = !state.virtual_on;
  $("code-state").textContent = state.has_secret_code
    ? "A secret code is set." : "No secret code yet: set one to use *30 on other phones.";
  const body = $("moves").tBodies[0];
  body.replaceChildren();
  for (const m of state.moves) {
    const tr = body.insertRow();
    for (const v of [when(m.at), MOVES[m.type] || m.type, m.device || "", m.cause || ""]) {
      tr.insertCell().textContent = v;
    }
  }
}

function signedOut() {
  csrf = "";
  $("login").hidden = false;
  $("home").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
}

async function refresh() {
  const r = await call("GET", "api/state");
  if (r.status === 200) show(r.js); else signedOut();
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const r = await call("POST", "api/login", {
    org: f.org.value, extension: f.extension.value, password: f.password.value,
  });
  f.password.value = "";
  if (r.status === 200) { say("Signed in."); show(r.js); }
  else say(r.js && r.js.error ? r.js.error : `sign-in failed (${r.status})`, true);
});

$("logout").addEventListener("click", async () => {
  await call("POST", "api/logout");
  say("Signed out.");
  signedOut();
});

$("return").addEventListener("click", async () => {
  const r = await call("POST", "api/return", {});
  if (r.status === 200) { say("Your extension is back on its home phone."); show(r.js); }
  else say(r.js ? r.js.error : "failed", true);
});

$("code").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const r = await call("POST", "api/code", { code: ev.target.code.value });
  ev.target.code.value = "";
  if (r.status === 200) { say("Secret code saved."); show(r.js); }
  else say(r.js ? r.js.error : "failed", true);
});

$("password").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const r = await call("POST", "api/password", {
    current: f.current.value, password: f.password.value,
  });
  f.current.value = ""; f.password.value = "";
  if (r.status === 200) { say("Password changed."); show(r.js); }
  else say(r.js ? r.js.error : "failed", true);
});

refresh();
