// The operations-room page: session, the live websocket, the render loop, the header and
// the action menus. Alerts from the websocket go into the incident book (incidents.js) as
// they arrive; the screen is rendered at most once per animation frame, touching only the
// incidents that changed (list.js, map.js, detail.js). Plain JS and vendored libraries, all
// from this origin (the CSP allows nothing else).
"use strict";

const state = {
  token: sessionStorage.getItem("ioc.token"),
  me: null,
  ws: null,
  lastSeq: null,
  retries: 0,
  timers: [],
  districts: new Map(), // id -> name
  cameras: new Map(), // id -> camera (registry + live state)
  selected: null, // incident id
  features: { incidents: false, operators: null, clips: false },
  sound: localStorage.getItem("ioc.sound") === "on",
  known: new Set(), // incident ids already announced
  blobs: new Map(), // img -> object URL, revoked when replaced
};
const book = new IncidentBook();

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("data-") || name.startsWith("aria-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function setText(node, text) { if (node.textContent !== text) node.textContent = text; }

function showBlob(img, blob) {
  hideBlob(img);
  const url = URL.createObjectURL(blob);
  state.blobs.set(img, url);
  img.src = url;
  img.hidden = false;
}

// Never an old picture beside a "no picture" note: the image goes with its URL.
function hideBlob(img) {
  const old = state.blobs.get(img);
  if (old) URL.revokeObjectURL(old);
  state.blobs.delete(img);
  img.removeAttribute("src");
  img.hidden = true;
}

const canAct = () => state.me && (state.me.role === "operator" || state.me.role === "admin");
const seesLive = () => state.me && state.me.role !== "planner";
const seesPictures = canAct;
const districtName = (id) => state.districts.get(id) ?? id;

function cameraName(id) {
  const camera = state.cameras.get(id);
  return camera ? camera.name : (typeof apName === "function" && apName(id)) || id;
}

function sourceLabel(incident) {
  // A citizen's report: its Open311 number (its service is in the title).
  const report = /^open311-(\d+)$/.exec(incident.source_id);
  if (report) return `${t("report")} #${report[1]}`;
  const zone = incident.zone_id ? ` · ${tid("zone", incident.zone_id)}` : "";
  return `${cameraName(incident.source_id)}${zone}`;
}

const titleOf = (incident) => (i18n.lang === "vi" ? incident.title_vi : incident.title_en) || tid("kind", incident.kind);

// --- HTTP ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) { super(`${status}: ${detail}`); this.status = status; }
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401 && state.token) {
    endSession(t("expired"));
    throw new ApiError(401, "session ended");
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new ApiError(response.status, JSON.stringify(body.detail ?? body));
  }
  return response;
}

const getJson = async (path) => (await api(path)).json();
const postJson = (path, body) => api(path, {
  method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
});

// --- Session ------------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  $("login-error").hidden = true;
  const form = new URLSearchParams({ username: $("username").value, password: $("password").value });
  const response = await fetch("/api/v1/auth/token", { method: "POST", body: form });
  if (!response.ok) {
    $("login-error").textContent = t("wrongLogin");
    $("login-error").hidden = false;
    return;
  }
  state.token = (await response.json()).access_token;
  sessionStorage.setItem("ioc.token", state.token);
  $("password").value = "";
  await enterRoom();
}

async function signOut() {
  try { await api("/api/v1/auth/token", { method: "DELETE" }); } catch (error) { /* gone */ }
  endSession();
}

function endSession(message) {
  state.token = null;
  state.me = null;
  sessionStorage.removeItem("ioc.token");
  if (state.ws) { state.ws.onclose = null; state.ws.close(1000); state.ws = null; }
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
  state.lastSeq = null;
  book.reset([]);
  state.known.clear();
  closeDetail();
  closeHotline();
  $("hotline-open").hidden = true;
  stopWall();
  stopMap();
  clearList();
  setLink("offline");
  document.body.dataset.role = "";
  $("room").hidden = true;
  $("who").hidden = $("logout").hidden = $("sound").hidden = true;
  $("login").hidden = false;
  if (message) { $("login-error").textContent = message; $("login-error").hidden = false; }
}

// Which optional endpoints this API has (the incident backend), from its OpenAPI paths:
// asking them directly would leave 404s in the browser's console.
async function apiPaths() {
  try { return new Set(Object.keys((await (await fetch("/openapi.json")).json()).paths)); } catch (error) { return new Set(); }
}

async function enterRoom() {
  state.me = await getJson("/api/v1/me");
  const role = state.me.role;
  document.body.dataset.role = role;
  $("login").hidden = true;
  $("room").hidden = false;
  $("who").hidden = $("logout").hidden = false;
  $("sound").hidden = !seesLive();
  $("hotline-open").hidden = !canAct();
  $("link").hidden = !seesLive(); // planners have no websocket: no badge to say "offline"
  $("incidents-panel").hidden = $("detail-panel").hidden = !seesLive();
  $("wall-panel").hidden = !seesPictures();
  $("history-panel").hidden = role !== "planner";
  const [districts, cameras] = await Promise.all([getJson("/api/v1/districts"), getJson("/api/v1/cameras")]);
  state.districts = new Map(districts.map((d) => [d.id, d.name]));
  state.cameras = new Map(cameras.map((c) => [c.id, c]));
  if (seesLive()) {
    // Features of the incident backend, where this API has them.
    const paths = await apiPaths();
    state.features.incidents = paths.has("/api/v1/incidents");
    state.features.clips = paths.has("/api/v1/alerts/{alert_id}/clips");
    if ([...paths].some((p) => p.startsWith("/open311/"))) await loadServices();
    state.features.operators = canAct() && paths.has("/api/v1/operators") ? await getJson("/api/v1/operators") : null;
  }
  renderHeader();
  fillFilters();
  await startMap();
  if (seesLive()) connect();
  if (seesPictures()) startWall();
  if (!$("history-panel").hidden) startHistory();
  state.timers.push(setInterval(refreshCameras, 15000));
  if (canAct()) { loadSummary(); state.timers.push(setInterval(loadSummary, 15000)); }
}

// Per district: cameras online, APs up, Wi-Fi clients, open alerts (beside "select one").
async function loadSummary() {
  if (!state.me) return;
  const summaries = await getJson("/api/v1/summary/districts");
  $("summary").hidden = false;
  $("summary-rows").replaceChildren(...summaries.map((d) => el("tr", {},
    el("td", {}, d.name), el("td", {}, `${d.cameras_online}/${d.cameras}`),
    el("td", {}, `${d.access_points_up}/${d.access_points}`), el("td", {}, String(d.wifi_clients)),
    el("td", {}, String(d.open_alerts)))));
}

async function refreshCameras() {
  if (!state.me) return;
  const cameras = await getJson("/api/v1/cameras");
  state.cameras = new Map(cameras.map((c) => [c.id, c]));
  refreshMapSources();
  refreshWallStates();
}

function renderHeader() {
  applyStaticLabels();
  document.documentElement.lang = i18n.lang;
  $("lang").textContent = i18n.lang === "vi" ? "EN" : "VI";
  setLink($("link").dataset.state);
  if (state.me) {
    setText($("who-name"), state.me.display_name || state.me.username);
    setText($("who-role"), tid("role", state.me.role));
  }
  $("sound").dataset.state = state.sound ? "on" : "off";
  $("sound").setAttribute("aria-pressed", String(state.sound));
  $("sound").textContent = `${t("sound")}: ${state.sound ? "♪" : "—"}`;
  $("sound").title = state.sound ? t("soundOff") : t("soundOn");
}

function switchLanguage() {
  i18n.lang = i18n.lang === "vi" ? "en" : "vi";
  localStorage.setItem("ioc.lang", i18n.lang);
  renderHeader();
  if (!state.me) return;
  fillFilters();
  relabelMap();
  relabelWall();
  relabelHistory();
  relabelDetail();
  relabelHotline();
  scheduleRender(null, true);
}

// --- Live alerts over the websocket -------------------------------------------------------

function setLink(value) {
  const link = $("link");
  link.dataset.state = value;
  link.textContent = t(value);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  state.ws = ws;
  ws.onopen = () => {
    // The token goes in the first message, never in the URL (URLs end up in access logs).
    ws.send(JSON.stringify({ type: "auth", token: state.token }));
    ws.send(JSON.stringify({ type: "subscribe", districts: [], after_seq: state.lastSeq }));
  };
  ws.onmessage = (event) => onLiveMessage(JSON.parse(event.data));
  ws.onclose = (event) => {
    state.ws = null;
    if (event.code === 4401) { endSession(t("expired")); return; }
    setLink("reconnecting");
    // Capped, jittered backoff; the next connection resumes after the last change seen.
    const delay = Math.random() * Math.min(15000, 500 * 2 ** state.retries++);
    setTimeout(() => { if (state.token) connect(); }, delay);
  };
}

function onLiveMessage(message) {
  if (message.type === "authenticated" || message.type === "pong") return;
  if (message.type === "snapshot") {
    book.reset(message.alerts);
    state.lastSeq = message.seq;
    for (const id of book.views.keys()) state.known.add(id);
    scheduleRender(null, true);
    if (seesPictures()) defaultWall();
  } else if (message.type === "resumed") {
    state.lastSeq = message.after_seq;
  } else if (message.type === "change") {
    if (state.lastSeq !== null && message.seq <= state.lastSeq) return;
    state.lastSeq = message.seq;
    const touched = book.put(message.alert);
    for (const id of touched) {
      const incident = book.get(id);
      if (incident && !state.known.has(id)) {
        state.known.add(id);
        if (incident.severity === "critical") announce(incident);
      }
    }
    scheduleRender(touched, false);
  }
  if (state.retries || $("link").dataset.state !== "live") { state.retries = 0; setLink("live"); }
}

// --- Rendering, coalesced to one per animation frame ---------------------------------------

const frame = { id: 0, touched: new Set(), all: false };

function scheduleRender(touched, all = false) {
  if (touched) for (const id of touched) frame.touched.add(id);
  if (all) frame.all = true;
  if (!frame.id) frame.id = requestAnimationFrame(renderFrame);
}

function renderFrame() {
  const { touched, all } = frame;
  frame.id = 0;
  frame.touched = new Set();
  frame.all = false;
  if (!state.me) return;
  renderList(touched, all);
  renderMapIncidents(touched, all);
  if (!state.selected && state.me.role === "police" && list.items.length) select(list.items[0].id, { centre: false });
  if (state.selected && (all || touched.has(state.selected))) refreshDetail();
}

// --- A new critical incident: the title flashes, a beep if the operator wants one ----------

let flashTimer = 0;
function announce(incident) {
  const title = $("page-title");
  title.classList.add("flash");
  document.title = `${t("newCritical")}: ${titleOf(incident)}`;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => {
    title.classList.remove("flash");
    document.title = t("title");
  }, 10000);
  if (state.sound) beep();
}

let audio = null;
function beep() {
  try {
    audio ??= new AudioContext();
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.frequency.value = 880;
    gain.gain.setValueAtTime(0.2, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start();
    oscillator.stop(audio.currentTime + 0.4);
  } catch (error) { /* no audio device: the flashing title still tells */ }
}

function toggleSound() {
  state.sound = !state.sound;
  localStorage.setItem("ioc.sound", state.sound ? "on" : "off");
  renderHeader();
  if (state.sound) beep(); // also unlocks audio, which needs a click
}

// --- Acting on an incident ----------------------------------------------------------------

// With the incident backend, one call acts on the incident; without it, on each of its
// alerts that the action applies to.
async function act(incidentId, action, body = {}) {
  try {
    if (state.features.incidents && book.alertsOf(incidentId).some((a) => a.incident_id)) {
      await postJson(`/api/v1/incidents/${encodeURIComponent(incidentId)}/${action}`, body);
    } else {
      const from = { acknowledge: ["open"], assign: ["open", "acknowledged", "assigned"],
        resolve: ["open", "acknowledged", "assigned"], note: ["open", "acknowledged", "assigned"] }[action];
      for (const alert of book.alertsOf(incidentId).filter((a) => from.includes(a.state))) {
        await postJson(`/api/v1/alerts/${encodeURIComponent(alert.id)}/${action}`, body);
      }
    }
    // The new state arrives on the websocket like every other change.
  } catch (error) {
    if (error.status !== 401) window.alert(`${t("failed")}: ${error.message}`);
  }
}

const menu = { onSave: null };

function openMenu(anchor, title, body, onSave) {
  $("menu-title").textContent = title;
  $("menu-body").replaceChildren(body);
  menu.onSave = onSave;
  const box = anchor.getBoundingClientRect();
  const node = $("menu");
  node.hidden = false;
  node.style.left = `${Math.min(window.innerWidth - node.offsetWidth - 8, box.left)}px`;
  node.style.top = `${Math.min(window.innerHeight - node.offsetHeight - 8, box.bottom + 4)}px`;
  body.querySelector("select, textarea, input")?.focus();
}

function closeMenu() { $("menu").hidden = true; menu.onSave = null; }

function assignMenu(anchor, incidentId) {
  const operators = state.features.operators;
  let field;
  if (operators && operators.length) {
    field = el("select", { id: "assignee" }, ...operators.map((o) => el("option", { value: o.username },
      `${o.display_name || o.username} (${tid("role", o.role)})`)));
  } else {
    field = el("input", { id: "assignee", maxLength: 64, value: state.me.username });
  }
  openMenu(anchor, t("chooseOperator"), el("label", {}, field), () => {
    if (field.value) act(incidentId, "assign", { assignee: field.value });
  });
}

function noteMenu(anchor, incidentId) {
  const field = el("textarea", { id: "note-text", maxLength: 2000, rows: 3 });
  openMenu(anchor, t("writeNote"), el("label", {}, field), () => {
    if (field.value.trim()) act(incidentId, "note", { note: field.value.trim() });
  });
}

// The buttons an incident offers, for a list row or the detail.
function actionButtons(incident) {
  if (!canAct()) return [];
  const buttons = [];
  const button = (cls, label, onclick) => el("button", { class: cls, type: "button", onclick: (e) => { e.stopPropagation(); onclick(e.currentTarget); } }, t(label));
  if (incident.unacknowledged) buttons.push(button("ack", "acknowledge", () => act(incident.id, "acknowledge")));
  buttons.push(button("assign ghost", "assign", (b) => assignMenu(b, incident.id)));
  if (state.features.incidents) buttons.push(button("note ghost", "note", (b) => noteMenu(b, incident.id)));
  buttons.push(button("resolve", "resolve", () => act(incident.id, "resolve")));
  return buttons;
}

// --- Selection ----------------------------------------------------------------------------

function select(incidentId, { centre = true } = {}) {
  const previous = state.selected;
  state.selected = incidentId;
  scheduleRender([incidentId, previous].filter(Boolean));
  showDetail(incidentId);
  if (centre) focusIncident(incidentId);
  if (seesPictures()) wallForIncident(incidentId);
  revealInList(incidentId);
}

// --- Start --------------------------------------------------------------------------------

function tick() { $("clock").textContent = formatClock(); }

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", signIn);
  $("logout").addEventListener("click", signOut);
  $("lang").addEventListener("click", switchLanguage);
  $("sound").addEventListener("click", toggleSound);
  $("detail-close").addEventListener("click", closeDetail);
  $("clip-export").addEventListener("click", exportClip);
  startHotline();
  $("menu-cancel").addEventListener("click", closeMenu);
  $("menu-save").addEventListener("click", () => { const save = menu.onSave; closeMenu(); if (save) save(); });
  startList();
  tick();
  setInterval(tick, 1000);
  renderHeader();
  if (state.token) enterRoom().catch(() => endSession());
});
