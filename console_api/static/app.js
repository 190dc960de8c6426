// The operations-room page: log in, follow alerts live, act on them, see an alert's evidence,
// audit and CAP messages, counts per district. The camera grid is in grid.js, planners'
// charts in history.js. Plain JS, no framework, everything from this origin (the CSP allows
// nothing else).
"use strict";

const TZ = "Asia/Ho_Chi_Minh";
const LABELS = {
  vi: {
    title: "Trung tâm điều hành", signIn: "Đăng nhập", username: "Tên đăng nhập",
    password: "Mật khẩu", logout: "Đăng xuất", liveAlerts: "Cảnh báo trực tiếp",
    district: "Huyện/thị", all: "Tất cả", severity: "Mức độ", alert: "Cảnh báo",
    source: "Nguồn", opened: "Bắt đầu", state: "Trạng thái",
    noAlerts: "Không có cảnh báo nào đang mở.", byDistrict: "Theo huyện/thị",
    cameras: "Camera", accessPoints: "Điểm Wi-Fi", clients: "Người dùng Wi-Fi",
    openAlerts: "Cảnh báo mở", history: "Lịch sử", bucket: "Khoảng",
    hour: "Giờ", day: "Ngày", days: "Số ngày", show: "Xem",
    acknowledge: "Xác nhận", resolve: "Xử lý xong", live: "Trực tuyến",
    offline: "Ngoại tuyến", reconnecting: "Đang kết nối lại",
    wrongLogin: "Sai tên đăng nhập hoặc mật khẩu.", expired: "Phiên đã hết hạn, hãy đăng nhập lại.",
    open: "Mới", acknowledged: "Đã xác nhận", assigned: "Đã giao", resolved: "Đã xử lý",
    critical: "Khẩn cấp", major: "Cao", minor: "Trung bình", info: "Thông tin",
    online: "Hoạt động", degraded: "Suy giảm", stale: "Mất liên lạc", unknown: "Chưa rõ",
    fps: "khung/giây", lastFrame: "Khung cuối", failed: "Không thực hiện được",
    details: "Chi tiết", close: "Đóng", audit: "Nhật ký xử lý", capMessages: "Tin CAP gửi công an",
    noCap: "Chưa gửi công an.", noEvidence: "Không có ảnh hiện trường.",
    evidence: "Ảnh hiện trường", kind: "Loại", lastSeen: "Lần cuối", count: "Số lần",
    assignedTo: "Giao cho", noPicture: "Không có ảnh",
    snapshotsOff: "Không lấy được ảnh camera (chưa cấu hình MQTT)",
    compare: "So sánh", items: "Chọn (để trống: tất cả)",
    trafficDistrict: "Lưu lượng xe theo huyện/thị", trafficRoad: "Lưu lượng xe theo tuyến đường",
    trafficCamera: "Lưu lượng xe theo camera", congestionRoad: "Số phút ùn tắc theo tuyến đường",
    visitorsSite: "Lượt khách Wi-Fi theo điểm du lịch", clientsSite: "Người dùng Wi-Fi theo điểm du lịch",
    busiestCameras: "Camera đông xe nhất", busiestRoads: "Tuyến đường đông xe nhất",
    busiestSites: "Điểm du lịch đông khách nhất",
  },
  en: {
    title: "Operations centre", signIn: "Sign in", username: "Username",
    password: "Password", logout: "Sign out", liveAlerts: "Live alerts",
    district: "District", all: "All", severity: "Severity", alert: "Alert",
    source: "Source", opened: "Opened", state: "State",
    noAlerts: "No open alerts.", byDistrict: "By district",
    cameras: "Cameras", accessPoints: "Wi-Fi APs", clients: "Wi-Fi clients",
    openAlerts: "Open alerts", history: "History", bucket: "Bucket",
    hour: "Hour", day: "Day", days: "Days", show: "Show",
    acknowledge: "Acknowledge", resolve: "Resolve", live: "Live",
    offline: "Offline", reconnecting: "Reconnecting",
    wrongLogin: "Wrong username or password.", expired: "Session expired; sign in again.",
    open: "Open", acknowledged: "Acknowledged", assigned: "Assigned", resolved: "Resolved",
    critical: "Critical", major: "Major", minor: "Minor", info: "Info",
    online: "Online", degraded: "Degraded", stale: "No contact", unknown: "Unknown",
    fps: "fps", lastFrame: "Last frame", failed: "Could not do that",
    details: "Details", close: "Close", audit: "Audit trail", capMessages: "CAP messages to police",
    noCap: "Not sent to the police.", noEvidence: "No evidence snapshot.",
    evidence: "Evidence", kind: "Kind", lastSeen: "Last seen", count: "Count",
    assignedTo: "Assigned to", noPicture: "No picture",
    snapshotsOff: "Camera pictures unavailable (no MQTT broker configured)",
    compare: "Compare", items: "Choose (none: all)",
    trafficDistrict: "Vehicles by district", trafficRoad: "Vehicles by road",
    trafficCamera: "Vehicles by camera", congestionRoad: "Congested minutes by road",
    visitorsSite: "Wi-Fi visitors by site", clientsSite: "Wi-Fi clients by site",
    busiestCameras: "Busiest cameras", busiestRoads: "Busiest roads",
    busiestSites: "Busiest sites",
  },
};
const SEVERITY_ORDER = { critical: 0, major: 1, minor: 2, info: 3 };

const state = {
  token: sessionStorage.getItem("ioc.token"),
  me: null,
  lang: localStorage.getItem("ioc.lang") || "vi",
  alerts: new Map(),
  districts: new Map(),
  lastSeq: null,
  ws: null,
  retries: 0,
  timers: [],
  detailId: null,
  blobs: new Map(), // element id -> object URL, revoked when replaced
};

const $ = (id) => document.getElementById(id);
const t = (key) => LABELS[state.lang][key] ?? key;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

function formatTime(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(state.lang === "vi" ? "vi-VN" : "en-GB", {
    timeZone: TZ, day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit", hour12: false,
  }).format(new Date(iso));
}

function applyLabels() {
  document.documentElement.lang = state.lang;
  for (const node of document.querySelectorAll("[data-i18n]")) {
    node.textContent = t(node.dataset.i18n);
  }
  $("lang").textContent = state.lang === "vi" ? "EN" : "VI";
  const link = $("link");
  link.textContent = t(link.dataset.state);
  renderAlerts();
  renderDistricts();
  if (state.detailId) showDetail(state.detailId);
  if (state.me) loadCameras();
}

function showBlob(img, blob) {
  const old = state.blobs.get(img);
  if (old) URL.revokeObjectURL(old);
  const url = URL.createObjectURL(blob);
  state.blobs.set(img, url);
  img.src = url;
  img.hidden = false;
}

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
  state.alerts.clear();
  closeDetail();
  stopGrid();
  setLink("offline");
  $("room").hidden = true;
  $("who").hidden = $("logout").hidden = true;
  $("login").hidden = false;
  if (message) { $("login-error").textContent = message; $("login-error").hidden = false; }
}

async function enterRoom() {
  state.me = await (await api("/api/v1/me")).json();
  const role = state.me.role;
  $("login").hidden = true;
  $("room").hidden = false;
  $("who").textContent = `${state.me.username} · ${role}`;
  $("who").hidden = $("logout").hidden = false;
  const live = role !== "planner";
  $("alerts-panel").hidden = !live;
  $("districts-panel").hidden = !(role === "operator" || role === "admin");
  $("history-panel").hidden = role === "police";
  await loadDistrictNames();
  if (live) connect();
  startGrid();
  if (!$("history-panel").hidden) startHistory();
  if (!$("districts-panel").hidden) {
    loadDistricts();
    state.timers.push(setInterval(loadDistricts, 15000));
  }
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
  const district = $("district-filter").value;
  ws.onopen = () => {
    // The token goes in the first message, never in the URL (URLs end up in access logs).
    ws.send(JSON.stringify({ type: "auth", token: state.token }));
    ws.send(JSON.stringify({
      type: "subscribe", districts: district ? [district] : [], after_seq: state.lastSeq,
    }));
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
    state.alerts = new Map(message.alerts.map((a) => [a.id, a]));
    state.lastSeq = message.seq;
  } else if (message.type === "resumed") {
    state.lastSeq = message.after_seq;
  } else if (message.type === "change") {
    if (state.lastSeq !== null && message.seq <= state.lastSeq) return;
    state.lastSeq = message.seq;
    const alert = message.alert;
    if (alert.state === "resolved") state.alerts.delete(alert.id);
    else state.alerts.set(alert.id, { ...alert, fresh: true });
  }
  state.retries = 0;
  setLink("live");
  renderAlerts();
}

function renderAlerts() {
  const body = $("alert-list");
  const canAct = state.me && (state.me.role === "operator" || state.me.role === "admin");
  const alerts = [...state.alerts.values()].sort(
    (a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity]
      || b.opened_at.localeCompare(a.opened_at),
  );
  body.replaceChildren(...alerts.map((alert) => {
    const actions = el("td", { class: "actions" });
    if (canAct && alert.state === "open") {
      actions.append(el("button", {
        class: "ack", type: "button", onclick: () => act(alert.id, "acknowledge"),
      }, t("acknowledge")));
    }
    if (canAct) {
      actions.append(el("button", {
        class: "resolve", type: "button", onclick: () => act(alert.id, "resolve"),
      }, t("resolve")));
    }
    const row = el("tr", { "data-alert-id": alert.id, "data-state": alert.state },
      el("td", {}, el("span", { class: `sev sev-${alert.severity}` }, t(alert.severity))),
      el("td", { class: "title" }, el("button", {
        class: "detail link-button", type: "button", title: t("details"),
        onclick: () => showDetail(alert.id),
      }, state.lang === "vi" ? alert.title_vi : alert.title_en),
      alert.count > 1 ? ` ×${alert.count}` : ""),
      el("td", {}, alert.source_id + (alert.zone_id ? ` / ${alert.zone_id}` : "")),
      el("td", {}, state.districts.get(alert.district_id) ?? alert.district_id),
      el("td", {}, formatTime(alert.opened_at)),
      el("td", { class: `state state-${alert.state}` }, t(alert.state)),
      actions);
    if (alert.fresh) { row.classList.add("fresh"); alert.fresh = false; }
    return row;
  }));
  $("alert-count").textContent = String(alerts.length);
  $("no-alerts").hidden = alerts.length > 0;
}

async function act(id, action) {
  try {
    // The new state arrives on the websocket like every other change.
    await api(`/api/v1/alerts/${id}/${action}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
  } catch (error) {
    if (error.status !== 401) window.alert(`${t("failed")}: ${error.message}`);
  }
}

// --- One alert: facts, evidence, audit, CAP --------------------------------------------------

function closeDetail() {
  state.detailId = null;
  $("alert-detail").hidden = true;
}

async function showDetail(id) {
  state.detailId = id;
  const [alert, audit] = await Promise.all([
    api(`/api/v1/alerts/${id}`).then((r) => r.json()),
    api(`/api/v1/alerts/${id}/audit`).then((r) => r.json()),
  ]);
  if (state.detailId !== id) return; // another alert was opened meanwhile
  $("detail-title").textContent = state.lang === "vi" ? alert.title_vi : alert.title_en;
  const severity = $("detail-severity");
  severity.className = `sev sev-${alert.severity}`;
  severity.textContent = t(alert.severity);
  const facts = [
    [t("kind"), alert.kind], [t("source"), alert.source_id + (alert.zone_id ? ` / ${alert.zone_id}` : "")],
    [t("district"), state.districts.get(alert.district_id) ?? alert.district_id],
    [t("state"), t(alert.state)], [t("opened"), formatTime(alert.opened_at)],
    [t("lastSeen"), formatTime(alert.last_seen_at)], [t("count"), String(alert.count)],
  ];
  if (alert.assigned_to) facts.push([t("assignedTo"), alert.assigned_to]);
  $("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("detail-audit").replaceChildren(...audit.map((entry) => el("li", { "data-action": entry.action },
    `${formatTime(entry.at)} · ${entry.action} · ${entry.actor}`, entry.note ? ` — ${entry.note}` : "")));
  $("alert-detail").hidden = false;
  await Promise.all([showEvidence(id), showCap(id)]);
}

async function showEvidence(id) {
  const img = $("evidence");
  img.hidden = true;
  $("evidence-note").textContent = t("evidence");
  try {
    const blob = await (await api(`/api/v1/alerts/${id}/evidence.jpg`)).blob();
    if (state.detailId === id) showBlob(img, blob);
  } catch (error) {
    if (error.status === 404 && state.detailId === id) $("evidence-note").textContent = t("noEvidence");
  }
}

async function showCap(id) {
  const text = await (await api(`/api/v1/alerts/${id}/cap`)).text();
  if (state.detailId !== id) return;
  const doc = new DOMParser().parseFromString(text, "application/xml");
  const messages = [...doc.documentElement.children].filter((n) => n.localName === "message");
  $("detail-cap").replaceChildren(...(messages.length ? messages.map((m) => {
    const deliveries = [...m.children].filter((n) => n.localName === "delivery")
      .map((d) => `${d.getAttribute("endpoint")}: ${d.getAttribute("status")}`);
    return el("li", { "data-msg-type": m.getAttribute("msgType") },
      `${formatTime(m.getAttribute("sent"))} · ${m.getAttribute("msgType")} · ${deliveries.join(", ")}`);
  }) : [el("li", { class: "muted" }, t("noCap"))]));
}

// --- Districts ------------------------------------------------------------------------------

async function loadDistrictNames() {
  const districts = await (await api("/api/v1/districts")).json();
  state.districts = new Map(districts.map((d) => [d.id, d.name]));
  const select = $("district-filter");
  select.replaceChildren(el("option", { value: "", "data-i18n": "all" }, t("all")),
    ...districts.map((d) => el("option", { value: d.id }, d.name)));
}

function renderDistricts() {
  $("district-list").replaceChildren(...(state.summaries || []).map((d) => el("tr", {},
    el("td", {}, d.name),
    el("td", {}, `${d.cameras_online}/${d.cameras}`),
    el("td", {}, `${d.access_points_up}/${d.access_points}`),
    el("td", {}, String(d.wifi_clients)),
    el("td", {}, String(d.open_alerts)))));
}

async function loadDistricts() {
  if (!state.me) return;
  state.summaries = await (await api("/api/v1/summary/districts")).json();
  renderDistricts();
}

// --- Start --------------------------------------------------------------------------------

function tick() {
  $("clock").textContent = new Intl.DateTimeFormat("vi-VN", {
    timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  }).format(new Date());
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", signIn);
  $("logout").addEventListener("click", signOut);
  $("lang").addEventListener("click", () => {
    state.lang = state.lang === "vi" ? "en" : "vi";
    localStorage.setItem("ioc.lang", state.lang);
    applyLabels();
  });
  $("district-filter").addEventListener("change", () => {
    // Another filter needs a fresh snapshot: drop the position and reconnect.
    state.lastSeq = null;
    if (state.ws) { state.ws.onclose = null; state.ws.close(1000); }
    connect();
  });
  $("detail-close").addEventListener("click", closeDetail);
  tick();
  setInterval(tick, 1000);
  applyLabels();
  if (state.token) enterRoom().catch(() => endSession());
});
