// The province on a Leaflet map: cameras by state, Wi-Fi access points by health and
// visitors per tourist site, open incidents by severity (pulsing while unacknowledged), road
// segments by traffic level, district labels. The base map is the configured tile server
// (IOC_MAP_TILES) or, with none, the province drawn from its own reference data. Markers are
// created once and updated in place.
"use strict";

const SEVERITY_COLOURS = { critical: "#ff4d4f", major: "#ff8c1a", minor: "#f2c94c", info: "#6fcf97" };
const CAMERA_COLOURS = { online: "#6fcf97", degraded: "#f2c94c", offline: "#ff4d4f", stale: "#ff4d4f", tampered: "#c86bff", unknown: "#8b98a5" };
const LEVEL_COLOURS = { free: "#3fb950", busy: "#f2c94c", congested: "#ff4d4f", unknown: "#5c6b79" };
const mapView = {
  map: null, control: null, layers: null, cameras: new Map(), aps: new Map(), sites: new Map(),
  incidents: new Map(), districtLabels: [], province: null, apById: new Map(),
};
window.iocMap = mapView; // tests and the bench read marker positions through it

function apName(id) { return mapView.apById.get(id)?.properties.name; }

function cameraState(camera) {
  if (!camera.state) return "unknown";
  if (camera.state.stale) return "stale";
  return camera.state.status in CAMERA_COLOURS ? camera.state.status : "unknown";
}

async function startMap() {
  const map = L.map("map", { zoomControl: true, attributionControl: false, minZoom: 8, maxZoom: 18, zoomSnap: 0.25 });
  mapView.map = map;
  // Unacknowledged incidents live in their own pane, whose opacity blinks twice a second:
  // one property of one composited layer, no repaint (animating each marker's style cost
  // a style pass over the whole map on every frame: long tasks of 130 ms at 1,000).
  const pulsing = map.createPane("pulsing");
  pulsing.classList.add("pulsing-pane");
  mapView.blinker = setInterval(() => { pulsing.style.opacity = pulsing.style.opacity === "0.35" ? "1" : "0.35"; }, 700);
  mapView.layers = {
    roads: L.layerGroup(), districts: L.layerGroup(), sites: L.layerGroup(), aps: L.layerGroup(),
    cameras: L.layerGroup(), incidents: L.layerGroup(),
  };
  const province = await getJson("/api/v1/geo/province");
  mapView.province = province;
  if (province.tiles) L.tileLayer(province.tiles, { maxZoom: 18 }).addTo(map);
  else map.getContainer().classList.add("no-tiles");
  for (const road of province.roads) {
    for (const segment of road.segments) {
      L.polyline(segment.coordinates, { color: LEVEL_COLOURS[segment.level], weight: 4, opacity: 0.85, className: `road level-${segment.level}` })
        .bindTooltip(() => `${road.id.toUpperCase()} · ${tid("level", segment.level)}`)
        .addTo(mapView.layers.roads);
    }
  }
  for (const d of province.districts) {
    mapView.districtLabels.push(L.marker([d.lat, d.lon], {
      interactive: false, keyboard: false,
      icon: L.divIcon({ className: "district-label", html: "", iconSize: null }),
    }).addTo(mapView.layers.districts));
    mapView.districtLabels.at(-1).name = d.name;
  }
  // The province's bounds: its districts, roads and cameras, fitted with a few pixels to
  // spare, more on the right where district names run (not a padded box that leaves the
  // province small in a dark field).
  const bounds = L.latLngBounds(province.districts.map((d) => [d.lat, d.lon]));
  for (const camera of state.cameras.values()) bounds.extend([camera.lat, camera.lon]);
  for (const road of province.roads) for (const segment of road.segments) for (const point of segment.coordinates) bounds.extend(point);
  mapView.bounds = bounds;
  mapView.autoFit = true; // until the operator moves the map or selects something
  fitProvince();
  mapView.home = new (L.Control.extend({
    onAdd: () => {
      const button = L.DomUtil.create("button", "map-home");
      button.type = "button";
      button.textContent = "⤢";
      button.dataset.i18nTitle = "fitProvince";
      button.title = t("fitProvince");
      L.DomEvent.disableClickPropagation(button);
      L.DomEvent.on(button, "click", () => { mapView.autoFit = true; fitProvince(); });
      return button;
    },
  }))({ position: "topleft" }).addTo(map);
  for (const type of ["mousedown", "wheel", "touchstart"]) {
    map.getContainer().addEventListener(type, () => { mapView.autoFit = false; }, { passive: true });
  }
  for (const layer of ["roads", "districts", "sites", "aps", "cameras", "incidents"]) {
    if (state.me.role === "police" && (layer === "sites" || layer === "aps")) continue;
    if (layer === "incidents" && !seesLive()) continue;
    mapView.layers[layer].addTo(map);
  }
  drawCameras();
  if (state.me.role !== "police") await drawAccessPoints();
  relabelMap();
  // The map's box changes with the grid (narrow windows, roles): keep Leaflet told.
  new ResizeObserver(() => {
    map.invalidateSize();
    if (mapView.autoFit) fitProvince();
  }).observe($("map"));
}

function fitProvince() {
  if (mapView.map && mapView.bounds && mapView.bounds.isValid()) mapView.map.fitBounds(mapView.bounds, { paddingTopLeft: [24, 24], paddingBottomRight: [96, 24], animate: false });
}

function stopMap() {
  if (!mapView.map) return;
  clearInterval(mapView.blinker);
  mapView.map.remove();
  Object.assign(mapView, { map: null, control: null, layers: null, cameras: new Map(), aps: new Map(), sites: new Map(), incidents: new Map(), districtLabels: [] });
}

function relabelMap() {
  if (!mapView.map) return;
  for (const label of mapView.districtLabels) {
    const node = label.getElement();
    if (node) node.textContent = label.name;
  }
  if (mapView.home) mapView.home.getContainer().title = t("fitProvince");
  if (mapView.control) mapView.control.remove();
  const overlays = {};
  const names = { roads: "roads", districts: "districts", sites: "visitors", aps: "accessPoints", cameras: "cameras", incidents: "openIncidents" };
  for (const [layer, label] of Object.entries(names)) {
    if (mapView.map.hasLayer(mapView.layers[layer])) overlays[t(label)] = mapView.layers[layer];
  }
  mapView.control = L.control.layers(null, overlays, { collapsed: true }).addTo(mapView.map);
}

function drawCameras() {
  for (const camera of state.cameras.values()) {
    const marker = L.circleMarker([camera.lat, camera.lon], { radius: 4, weight: 1, color: "#0f1720", fillOpacity: 0.9, className: "camera-marker" })
      .bindTooltip(() => `${camera.name} · ${tid("cam", cameraState(state.cameras.get(camera.id) || camera))}`)
      .on("click", () => openCamera(camera.id))
      .addTo(mapView.layers.cameras);
    marker.getElement().dataset.cameraId = camera.id;
    mapView.cameras.set(camera.id, marker);
  }
  refreshMapSources();
}

async function drawAccessPoints() {
  const [aps, sites] = await Promise.all([getJson("/api/v1/geo/access-points"), getJson("/api/v1/sites")]);
  for (const ap of aps.features) {
    mapView.apById.set(ap.id, ap);
    const [lon, lat] = ap.geometry.coordinates;
    const marker = L.circleMarker([lat, lon], { radius: 3, weight: 1, color: "#0f1720", fillOpacity: 0.8, className: "ap-marker" })
      .bindTooltip(() => { const p = mapView.apById.get(ap.id).properties; return `${p.name} · ${tid("ap", p.up === null ? "unknown" : p.up ? "up" : "down")} · ${p.clients ?? 0} ${t("clients")}`; })
      .addTo(mapView.layers.aps);
    marker.getElement().dataset.apId = ap.id;
    mapView.aps.set(ap.id, marker);
  }
  for (const site of sites) {
    const marker = L.circleMarker([site.lat, site.lon], { radius: 6, weight: 2, color: "#3fa7ff", fillColor: "#3fa7ff", fillOpacity: 0.25, className: "site-marker" })
      .bindTooltip(() => `${site.name} · ${siteClients(site.id)} ${t("clients")}`)
      .addTo(mapView.layers.sites);
    mapView.sites.set(site.id, marker);
  }
  paintAccessPoints();
}

function siteClients(siteId) {
  let total = 0;
  for (const ap of mapView.apById.values()) if (ap.properties.site_id === siteId) total += ap.properties.clients || 0;
  return total;
}

function paintAccessPoints() {
  for (const [id, marker] of mapView.aps) {
    const up = mapView.apById.get(id).properties.up;
    const colour = up === null ? CAMERA_COLOURS.unknown : up ? CAMERA_COLOURS.online : CAMERA_COLOURS.offline;
    if (marker.colour !== colour) { marker.colour = colour; marker.setStyle({ fillColor: colour }); }
  }
  for (const [id, marker] of mapView.sites) {
    const radius = Math.round(6 + Math.sqrt(siteClients(id)));
    if (marker.getRadius() !== radius) marker.setRadius(radius);
  }
}

async function refreshMapSources() {
  for (const [id, marker] of mapView.cameras) {
    const camera = state.cameras.get(id);
    // Only what changed: a style write on each of hundreds of markers repaints the map.
    const colour = camera && CAMERA_COLOURS[cameraState(camera)];
    if (colour && marker.colour !== colour) { marker.colour = colour; marker.setStyle({ fillColor: colour }); }
  }
  if (mapView.aps.size && state.me) {
    const aps = await getJson("/api/v1/geo/access-points");
    for (const ap of aps.features) mapView.apById.set(ap.id, ap);
    paintAccessPoints();
  }
}

function placeOf(incident) {
  if (incident.lat != null && incident.lon != null) return [incident.lat, incident.lon];
  const camera = state.cameras.get(incident.source_id);
  if (camera) return [camera.lat, camera.lon];
  const ap = mapView.apById.get(incident.source_id);
  if (ap) return [ap.geometry.coordinates[1], ap.geometry.coordinates[0]];
  return null;
}

function renderMapIncidents(touched, all) {
  if (!mapView.map || !mapView.layers) return;
  const ids = all ? new Set([...book.views.keys(), ...mapView.incidents.keys()]) : touched;
  for (const id of ids) {
    const incident = book.get(id);
    let marker = mapView.incidents.get(id);
    const where = incident && passesFilters(incident) ? placeOf(incident) : null;
    if (!where) {
      if (marker) { marker.remove(); mapView.incidents.delete(id); }
      continue;
    }
    const colour = SEVERITY_COLOURS[incident.severity];
    const pane = incident.unacknowledged ? "pulsing" : "overlayPane";
    if (marker && marker.options.pane !== pane) { marker.remove(); marker = null; }
    if (!marker) {
      const citizen = incident.kinds.includes("citizen_report");
      marker = L.circleMarker(where, { pane, radius: citizen ? 10 : 8, weight: citizen ? 3 : 2, color: colour, fillColor: colour, fillOpacity: citizen ? 0.25 : 0.6, className: citizen ? "incident-marker citizen-marker" : "incident-marker" })
        .bindTooltip(() => { const i = book.get(id); return i ? `${titleOf(i)} · ${tid("severity", i.severity)} · ${tid("state", i.state)}` : ""; })
        .on("click", () => select(id, { centre: false }))
        .addTo(mapView.layers.incidents);
      const node = marker.getElement();
      node.dataset.incidentId = id;
      node.classList.toggle("pulse", incident.unacknowledged);
      marker.sig = "";
      mapView.incidents.set(id, marker);
    }
    const sig = `${incident.severity}|${where}|${state.selected === id}`;
    if (marker.sig === sig) continue;
    marker.sig = sig;
    const at = marker.getLatLng();
    if (at.lat !== where[0] || at.lng !== where[1]) marker.setLatLng(where);
    marker.setStyle({ color: state.selected === id ? "#ffffff" : colour, fillColor: colour });
    marker.getElement().dataset.severity = incident.severity;
  }
}

function focusIncident(id) {
  const incident = book.get(id);
  const where = incident && placeOf(incident);
  if (mapView.map) mapView.autoFit = false;
  // Centred at the zoom the operator chose: the province stays in view around it.
  if (where && mapView.map) mapView.map.setView(where, mapView.map.getZoom(), { animate: false });
}

function openCamera(id) {
  const camera = state.cameras.get(id);
  if (!camera) return;
  if (seesPictures()) wallForCameras([id, ...nearbyCameras(camera.lat, camera.lon, 7)], camera.name);
  showCameraInDetail(id);
}

function nearbyCameras(lat, lon, n, except = new Set()) {
  return [...state.cameras.values()]
    .filter((c) => !except.has(c.id) && !(c.lat === lat && c.lon === lon))
    .map((c) => [((c.lat - lat) ** 2 + ((c.lon - lon) * Math.cos(lat * Math.PI / 180)) ** 2), c.id])
    .sort((a, b) => a[0] - b[0]).slice(0, n).map(([, id]) => id);
}
