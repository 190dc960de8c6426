// One incident: its facts and actions (from the page's model, patched as it changes), the
// evidence picture, the camera's live picture, the audit trail, the CAP messages with their
// delivery states, and the nearby cameras.
"use strict";

const detail = { id: null, sig: "", liveCamera: null, auditSig: "", audit: [], cap: [], clip: null, clipFor: null };

function closeDetail() {
  detail.id = null;
  state.selected = null;
  $("detail").hidden = true;
  $("detail-empty").hidden = false;
  hideBlob($("evidence"));
  hideBlob($("live-picture"));
  hideClip();
  hideForecast();
}

function showDetail(id) {
  const incident = book.get(id);
  if (!incident) return;
  detail.id = id;
  detail.sig = "";
  detail.auditSig = "";
  detail.audit = [];
  detail.cap = [];
  $("detail-audit").replaceChildren();
  $("detail-cap").replaceChildren();
  $("detail-empty").hidden = true;
  $("detail").hidden = false;
  refreshDetail();
  showEvidence(id, incident.alert_ids);
  // Selected again (police open their first incident by themselves): the clip stays, with
  // no second "viewed" in its custody log.
  if (detail.clipFor !== id) showClip(id, incident.alert_ids);
  const camera = state.cameras.get(incident.source_id);
  if (camera) showCameraInDetail(camera.id);
  else { detail.liveCamera = null; hideBlob($("live-picture")); setText($("live-note"), ""); }
  showCap(id, incident.alert_ids);
  showNearby(incident);
  showForecast(id, incident);
}

// A traffic or visitor anomaly: its series' forecast band with the observed line, small,
// so the operator sees how far today is from the expected (operators, admins).
const ANOMALIES = ["traffic_anomaly", "visitor_anomaly"];
let detailPlot = null;

function hideForecast() {
  if (detailPlot) { detailPlot.destroy(); detailPlot = null; }
  $("detail-forecast-figure").hidden = true;
}

async function showForecast(id, incident) {
  hideForecast();
  const alert = book.alertsOf(id).find((a) => ANOMALIES.includes(a.kind));
  if (!alert || !canAct()) return;
  let series;
  try {
    series = await getJson("/api/v1/forecast?resolution=hour");
    await itemsOf("sites"); // the sites' names
  } catch (error) { return; }
  // The anomaly's source is the series' id (a line's: its camera, the line as its zone).
  const wanted = alert.kind === "visitor_anomaly" ? [["site", alert.source_id]]
    : [["line", `${alert.source_id}/${alert.zone_id}`], ["road", alert.source_id], ["district", alert.source_id]];
  const found = wanted.find(([kind, sid]) => series.some((f) => f.kind === kind && f.id.toLowerCase() === sid.toLowerCase()));
  if (!found || detail.id !== id) return;
  const exact = series.find((f) => f.kind === found[0] && f.id.toLowerCase() === found[1].toLowerCase());
  let answer;
  try {
    answer = await getJson(`/api/v1/forecast/series?${new URLSearchParams({ kind: exact.kind, id: exact.id, observed_days: "2" })}`);
  } catch (error) { return; }
  if (detail.id !== id) return;
  hideForecast();
  $("detail-forecast-figure").hidden = false;
  detail.forecast = answer;
  detail.forecastKey = exact;
  const drawn = drawForecast(answer);
  const width = Math.max(240, $("detail-forecast").getBoundingClientRect().width);
  detailPlot = new uPlot({
    width, height: 130, legend: { show: false }, cursor: { drag: { x: false, y: false } },
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), TZ),
    axes: [{ stroke: "#8b98a5", grid: { stroke: "#27333f" }, size: 24, font: "10px sans-serif" },
      { stroke: "#8b98a5", grid: { stroke: "#27333f" }, size: 36, font: "10px sans-serif" }],
    series: [{}, ...drawn.opts.series], bands: drawn.opts.bands,
  }, drawn.data, $("detail-forecast"));
  forecastCaption();
}

function forecastCaption() {
  const key = detail.forecastKey;
  setText($("detail-forecast-skill"), `${t("forecast")} · ${forecastName(key.kind, key.id)} · ${skillText(detail.forecast.skill)}`);
}

// Called by the render loop when the shown incident changed (or the language did).
function refreshDetail() {
  const id = detail.id;
  const incident = id && book.get(id);
  if (!incident) { if (id) closeDetail(); return; }
  const sig = [i18n.lang, incident.severity, incident.state, incident.unacknowledged, incident.count,
    incident.alert_count, incident.assigned_to, incident.acknowledged_by, incident.note_count, incident.updated_at].join("|");
  if (sig === detail.sig) return;
  detail.sig = sig;
  setText($("detail-title"), titleOf(incident));
  const severity = $("detail-severity");
  severity.className = `sev sev-${incident.severity}`;
  setText(severity, tid("severity", incident.severity));
  $("detail").dataset.incidentId = id;
  $("detail").dataset.state = incident.state;
  $("detail-actions").replaceChildren(...actionButtons(incident));
  const facts = [
    [t("kind"), incident.kinds.map((k) => tid("kind", k)).join(", ")],
    [t("source"), incident.source_ids.map(cameraName).join(", ") + (incident.zone_id ? ` · ${tid("zone", incident.zone_id)}` : "")],
    [t("district"), districtName(incident.district_id)],
    [t("state"), tid("state", incident.state)],
    [t("opened"), formatTime(incident.opened_at)],
    [t("updated"), formatTime(incident.updated_at)],
    [t("count"), String(incident.count)],
    [t("alerts"), String(incident.alert_count)],
  ];
  if (incident.acknowledged_by) facts.push([t("acknowledgedBy"), incident.acknowledged_by]);
  if (incident.assigned_to) facts.push([t("assignedTo"), incident.assigned_to]);
  $("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  // The audit trail changes with the lifecycle, not with every repeat of the condition.
  const auditSig = [incident.state, incident.assigned_to, incident.note_count, incident.alert_count].join("|");
  if (auditSig !== detail.auditSig) { detail.auditSig = auditSig; showAudit(id, incident.alert_ids); }
}

async function showAudit(id, alertIds) {
  let entries = [];
  try {
    if (state.features.incidents && book.alertsOf(id).some((a) => a.incident_id)) {
      entries = (await getJson(`/api/v1/incidents/${encodeURIComponent(id)}`)).audit;
    } else {
      const lists = await Promise.all(alertIds.slice(0, 20).map((a) => getJson(`/api/v1/alerts/${encodeURIComponent(a)}/audit`)));
      entries = lists.flat().sort((a, b) => (a.at < b.at ? -1 : 1));
    }
  } catch (error) { return; }
  if (detail.id !== id) return;
  detail.audit = entries;
  renderAudit();
}

const ACTORS = new Set(["system", "citizen", "send-test"]);

// What the system or a citizen's report says, in words: the reason code (docs/alerts.md),
// or the Open311 request it came from ("joined by Open311 request 12 (security, app)").
function auditWhy(entry) {
  if (entry.actor !== "system" && entry.actor !== "citizen") return entry.note ? ` — ${entry.note}` : "";
  const parts = [];
  if (entry.reason) parts.push(tid("reason", entry.reason));
  const report = /Open311 request (\d+)(?: \(([^,]+), (\w+)\))?/.exec(entry.note || "");
  if (report) {
    const how = entry.note.startsWith("joined by") ? "reportJoined" : entry.note.startsWith("duplicate") ? "reportDuplicate"
      : entry.note.includes("past its target") ? "reportOverdue" : "reportOpened";
    let text = `${t(how)} #${report[1]}`;
    if (report[2]) text += ` (${serviceLabel(report[2])}, ${tid("channel", report[3])})`;
    parts.push(text);
  }
  return parts.length ? ` — ${parts.join(" · ")}` : "";
}

function renderAudit() {
  $("detail-audit").replaceChildren(...detail.audit.map((entry) => el("li", { "data-action": entry.action, "data-detail": entry.detail || "" },
    `${formatTime(entry.at)} · ${tid("action", entry.action)} · ${ACTORS.has(entry.actor) ? tid("actor", entry.actor) : entry.actor}`,
    // The system's notes are internal ids (the event that opened it); people's notes are text.
    auditWhy(entry))));
}

async function showEvidence(id, alertIds) {
  const img = $("evidence");
  hideBlob(img);
  setText($("evidence-note"), t("evidence"));
  for (const alertId of alertIds.slice(0, 10)) {
    try {
      const blob = await (await api(`/api/v1/alerts/${encodeURIComponent(alertId)}/evidence.jpg`)).blob();
      if (detail.id === id) showBlob(img, blob);
      return;
    } catch (error) {
      if (error.status !== 404) break;
    }
  }
  if (detail.id === id) setText($("evidence-note"), t("noEvidence"));
}

// The alert's evidence clip (operators, admins; police for their own incidents: the API
// answers 404 for others): fetched with the token, played from a blob: URL, its SHA-256
// shown and checked in the browser, and an export that the custody log records as such.
const seesClips = () => state.me && ["operator", "admin", "police"].includes(state.me.role) && state.features.clips;

function hideClip() {
  const video = $("clip");
  if (detail.clip?.url) URL.revokeObjectURL(detail.clip.url);
  detail.clip = null;
  detail.clipFor = null;
  video.pause();
  video.removeAttribute("src");
  video.load();
  $("clip-figure").hidden = true;
}

async function showClip(id, alertIds) {
  hideClip();
  if (!seesClips()) return;
  detail.clipFor = id;
  for (const alertId of alertIds.slice(0, 10)) {
    let clips;
    try { clips = await getJson(`/api/v1/alerts/${encodeURIComponent(alertId)}/clips`); } catch (error) { continue; }
    if (detail.id !== id) return;
    if (!clips.length) continue;
    const clip = clips[clips.length - 1]; // the newest
    let blob;
    try { blob = await (await api(`/api/v1/evidence/clips/${encodeURIComponent(clip.clip_id)}/file`)).blob(); } catch (error) { return; }
    if (detail.id !== id) return;
    const url = URL.createObjectURL(new Blob([blob], { type: clip.mime_type || "video/mp4" }));
    detail.clip = { ...clip, url, verified: null };
    $("clip").src = url;
    $("clip-figure").hidden = false;
    $("clip-figure").dataset.clipId = clip.clip_id;
    renderClipNote();
    try {
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
      const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
      if (detail.clip?.clip_id === clip.clip_id) { detail.clip.verified = hex === clip.sha256; renderClipNote(); }
    } catch (error) { /* no WebCrypto (not a secure context): the digest is still shown */ }
    return;
  }
}

function renderClipNote() {
  const clip = detail.clip;
  if (!clip) return;
  const verdict = clip.verified === null ? "" : ` · ${t(clip.verified ? "clipVerified" : "clipMismatch")}`;
  setText($("clip-note"), `${t("clip")} · ${formatTime(clip.started_at)} · ${(clip.size / 1e6).toFixed(1)} MB${verdict}`);
  setText($("clip-sha"), `SHA-256 ${clip.sha256}`);
  $("clip-figure").dataset.verified = String(clip.verified);
}

async function exportClip() {
  const clip = detail.clip;
  if (!clip) return;
  try {
    const blob = await (await api(`/api/v1/evidence/clips/${encodeURIComponent(clip.clip_id)}/file?export=true`)).blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: `${clip.clip_id}.mp4` });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  } catch (error) {
    if (error.status !== 401) window.alert(`${t("failed")}: ${error.message}`);
  }
}

async function showCameraInDetail(cameraId) {
  detail.liveCamera = cameraId;
  const img = $("live-picture");
  const note = $("live-note");
  const name = cameraName(cameraId);
  if (!seesPictures()) { hideBlob(img); setText(note, ""); return; }
  setText(note, `${t("livePicture")} · ${name} · ${t("loading")}`);
  const result = await fetchPicture(cameraId);
  if (detail.liveCamera !== cameraId) return;
  if (result.blob) { showBlob(img, result.blob); setText(note, `${t("livePicture")} · ${name}`); }
  else { hideBlob(img); setText(note, `${name}: ${t(result.reason)}`); }
}

async function showCap(id, alertIds) {
  const messages = [];
  for (const alertId of alertIds.slice(0, 10)) {
    let text;
    try { text = await (await api(`/api/v1/alerts/${encodeURIComponent(alertId)}/cap`)).text(); } catch (error) { continue; }
    const doc = new DOMParser().parseFromString(text, "application/xml");
    for (const m of [...doc.documentElement.children].filter((n) => n.localName === "message")) {
      messages.push({
        sent: m.getAttribute("sent"), type: m.getAttribute("msgType"),
        deliveries: [...m.children].filter((n) => n.localName === "delivery")
          .map((d) => [d.getAttribute("endpoint"), d.getAttribute("status")]),
      });
    }
  }
  if (detail.id !== id) return;
  detail.cap = messages;
  renderCap();
}

function renderCap() {
  const items = detail.cap.map((m) => el("li", { "data-msg-type": m.type },
    `${formatTime(m.sent)} · ${tid("cap", m.type)}${m.deliveries.length ? " · " : ""}`
    + m.deliveries.map(([endpoint, status]) => `${endpoint}: ${tid("delivery", status)}`).join(", ")));
  $("detail-cap").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, t("noCap"))]));
}

// A new language: the same incident again from what the page holds, nothing fetched.
function relabelDetail() {
  if (!detail.id) return;
  detail.sig = "";
  refreshDetail();
  renderAudit();
  renderCap();
  const incident = book.get(detail.id);
  if (incident) showNearby(incident);
  setText($("evidence-note"), $("evidence").hidden ? t("noEvidence") : t("evidence"));
  renderClipNote();
  if (detailPlot && detail.forecast) forecastCaption();
  if (detail.liveCamera) showCameraInDetail(detail.liveCamera);
}

function showNearby(incident) {
  const where = placeOf(incident);
  const ids = where ? nearbyCameras(where[0], where[1], 6, new Set(incident.source_ids)) : [];
  $("detail-nearby").replaceChildren(...ids.map((cameraId) => el("button", {
    type: "button", class: "ghost camera-link", "data-camera-id": cameraId,
    onclick: () => showCameraInDetail(cameraId),
  }, cameraName(cameraId))));
}
