// The camera wall: live pictures of the selected incident's or district's cameras (or of
// the newest incidents' cameras), refreshed every few seconds. Only tiles on screen ask
// for pictures; a tile shows either a current picture or why it has none, never both.
"use strict";

const PICTURE_EVERY_MS = 5000;
const WALL_SIZE = 8;
const wall = { tiles: new Map(), visible: new Set(), loading: new Set(), observer: null, timer: 0, label: "" };

function startWall() {
  wall.observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const id = entry.target.dataset.cameraId;
      if (entry.isIntersecting) { wall.visible.add(id); refreshPicture(id); } else wall.visible.delete(id);
    }
  }, { root: $("wall") });
  wall.timer = setInterval(() => wall.visible.forEach(refreshPicture), PICTURE_EVERY_MS);
}

function stopWall() {
  clearInterval(wall.timer);
  wall.noBroker = false;
  if (wall.observer) wall.observer.disconnect();
  wall.observer = null;
  for (const tile of wall.tiles.values()) hideBlob(tile.querySelector("img"));
  wall.tiles.clear();
  wall.visible.clear();
  $("wall").replaceChildren();
}

// What went wrong, as a translation key: the API's status says why there is no picture.
async function fetchPicture(cameraId) {
  if (wall.noBroker) return { reason: "pictureNoBroker" }; // this API cannot ask the edges
  try {
    return { blob: await (await api(`/api/v1/cameras/${encodeURIComponent(cameraId)}/snapshot.jpg`)).blob() };
  } catch (error) {
    if (error.status === 503) wall.noBroker = true;
    const camera = state.cameras.get(cameraId);
    if (camera && ["stale", "offline"].includes(cameraState(camera))) return { reason: "pictureOffline" };
    return { reason: { 504: "pictureTimeout", 503: "pictureNoBroker", 403: "pictureForbidden" }[error.status] || "noPicture" };
  }
}

function defaultWall() {
  const district = $("filter-district").value;
  if (district) {
    const ids = [...state.cameras.values()].filter((c) => c.district_id === district).map((c) => c.id);
    setWall(ids.slice(0, WALL_SIZE), "wallOf", districtName(district));
    return;
  }
  const ids = [];
  for (const incident of book.sorted()) {
    if (state.cameras.has(incident.source_id) && !ids.includes(incident.source_id)) ids.push(incident.source_id);
    if (ids.length >= WALL_SIZE) break;
  }
  if (ids.length < WALL_SIZE) for (const id of state.cameras.keys()) { if (!ids.includes(id)) ids.push(id); if (ids.length >= WALL_SIZE) break; }
  setWall(ids, "wallTop", "");
}

function wallForIncident(id) {
  const incident = book.get(id);
  if (!incident) return;
  const own = incident.source_ids.filter((c) => state.cameras.has(c));
  const where = placeOf(incident);
  const near = where ? nearbyCameras(where[0], where[1], WALL_SIZE - own.length, new Set(own)) : [];
  setWall([...own, ...near].slice(0, WALL_SIZE), "wallOf", titleOf(incident));
}

function wallForCameras(ids, name) { setWall(ids.slice(0, WALL_SIZE), "wallOf", name); }

function setWall(ids, labelKey, what) {
  wall.label = [labelKey, what];
  relabelWall();
  const keep = new Set(ids);
  for (const [id, tile] of wall.tiles) {
    if (!keep.has(id)) {
      wall.observer?.unobserve(tile);
      hideBlob(tile.querySelector("img"));
      wall.tiles.delete(id);
      wall.visible.delete(id);
    }
  }
  const tiles = ids.map((id) => {
    let tile = wall.tiles.get(id);
    if (!tile) {
      tile = el("figure", { class: "tile", "data-camera-id": id },
        el("div", { class: "picture" }, el("img", { alt: "", hidden: true }), el("div", { class: "note muted" })),
        el("figcaption", {}, el("span", { class: "name" }), el("span", { class: "status" })));
      wall.tiles.set(id, tile);
      wall.observer?.observe(tile);
    }
    return tile;
  });
  $("wall").replaceChildren(...tiles); // moves existing tiles: their pictures stay
  refreshWallStates();
}

function relabelWall() {
  if (!wall.label) return;
  const [key, what] = wall.label;
  setText($("wall-what"), what ? `${t(key)}: ${what}` : t(key));
  refreshWallStates();
}

function refreshWallStates() {
  for (const [id, tile] of wall.tiles) {
    const camera = state.cameras.get(id);
    setText(tile.querySelector(".name"), cameraName(id));
    const status = camera ? cameraState(camera) : "unknown";
    const label = tile.querySelector(".status");
    label.className = `status status-${status}`;
    setText(label, tid("cam", status));
    if (tile.reason) setText(tile.querySelector(".note"), t(tile.reason));
  }
}

async function refreshPicture(id) {
  const tile = wall.tiles.get(id);
  if (!tile || wall.loading.has(id)) return;
  wall.loading.add(id);
  try {
    const result = await fetchPicture(id);
    if (wall.tiles.get(id) !== tile) return;
    const img = tile.querySelector("img");
    if (result.blob) { showBlob(img, result.blob); tile.reason = null; setText(tile.querySelector(".note"), ""); }
    else { hideBlob(img); tile.reason = result.reason; setText(tile.querySelector(".note"), t(result.reason)); }
    tile.dataset.picture = result.blob ? "yes" : "no";
  } finally {
    wall.loading.delete(id);
  }
}
