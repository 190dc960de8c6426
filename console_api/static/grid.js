// The camera grid: every camera's state, and for operators and administrators its latest
// picture, asked of the edge through the API. Only tiles on screen load pictures, refreshed
// every few seconds; the API shares and caches them, so many screens cost the edges little.
"use strict";

const SNAPSHOT_EVERY_MS = 10000;
const grid = {
  cameras: [],
  tiles: new Map(), // camera id -> tile element
  visible: new Set(),
  loading: new Set(),
  observer: null,
  snapshots: false,
  timers: [],
};

function cameraStatus(camera) {
  if (!camera.state) return "unknown";
  return camera.state.stale ? "stale" : camera.state.status;
}

function startGrid() {
  const role = state.me.role;
  grid.snapshots = role === "operator" || role === "admin";
  $("snapshots-note").hidden = true;
  if (grid.snapshots) {
    grid.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        const id = entry.target.dataset.cameraId;
        if (entry.isIntersecting) { grid.visible.add(id); refreshSnapshot(id); }
        else grid.visible.delete(id);
      }
    });
    grid.timers.push(setInterval(() => grid.visible.forEach(refreshSnapshot), SNAPSHOT_EVERY_MS));
  }
  loadCameras();
  grid.timers.push(setInterval(loadCameras, 30000));
}

function stopGrid() {
  for (const timer of grid.timers) clearInterval(timer);
  grid.timers = [];
  if (grid.observer) grid.observer.disconnect();
  grid.observer = null;
  grid.snapshots = false;
  grid.tiles.clear();
  grid.visible.clear();
  $("camera-grid").replaceChildren();
}

function tileFor(camera) {
  let tile = grid.tiles.get(camera.id);
  if (!tile) {
    const img = el("img", { class: "snap", alt: "" });
    img.hidden = true;
    tile = el("div", { class: "tile", "data-camera-id": camera.id },
      img, el("div", { class: "name" }), el("div", { class: "status" }),
      el("div", { class: "muted details" }), el("div", { class: "muted note" }));
    grid.tiles.set(camera.id, tile);
    if (grid.observer) grid.observer.observe(tile);
  }
  return tile;
}

async function loadCameras() {
  if (!state.me) return;
  grid.cameras = await (await api("/api/v1/cameras")).json();
  const seen = new Set();
  const tiles = grid.cameras.map((camera) => {
    seen.add(camera.id);
    const tile = tileFor(camera);
    const status = cameraStatus(camera);
    tile.querySelector(".name").textContent = camera.name;
    const label = tile.querySelector(".status");
    label.className = `status status-${status}`;
    label.textContent = t(status);
    tile.querySelector(".details").textContent = camera.state
      ? `${camera.state.fps.toFixed(1)} ${t("fps")} · ${t("lastFrame")} ${formatTime(camera.state.last_frame_at)}`
      : "";
    return tile;
  });
  for (const [id, tile] of grid.tiles) {
    if (!seen.has(id)) {
      if (grid.observer) grid.observer.unobserve(tile);
      grid.tiles.delete(id);
      grid.visible.delete(id);
    }
  }
  $("camera-grid").replaceChildren(...tiles); // moves the tiles: pictures stay
  if (typeof onCamerasLoaded === "function") onCamerasLoaded();
}

async function refreshSnapshot(id) {
  const tile = grid.tiles.get(id);
  if (!grid.snapshots || !tile || grid.loading.has(id)) return;
  grid.loading.add(id);
  try {
    const blob = await (await api(`/api/v1/cameras/${id}/snapshot.jpg`)).blob();
    showBlob(tile.querySelector("img.snap"), blob);
    tile.querySelector(".note").textContent = "";
  } catch (error) {
    if (error.status === 503) {
      // No broker behind this API: stop asking, say so once.
      grid.snapshots = false;
      $("snapshots-note").hidden = false;
    } else if (error.status !== 401) {
      tile.querySelector(".note").textContent = t("noPicture");
    }
  } finally {
    grid.loading.delete(id);
  }
}
