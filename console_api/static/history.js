// Planners' comparison charts: pick what to compare (districts, roads, cameras, sites), the
// ones to draw (none: the server draws the busiest), the bucket and the days; the chart is
// the API's PNG, the download its CSV, both for exactly the same request.
"use strict";

const COMPARISONS = {
  "traffic-district": { path: "traffic", params: { group: "district" }, items: "districts", filter: "district" },
  "traffic-road": { path: "traffic", params: { group: "road" }, items: "roads", filter: "road" },
  "traffic-camera": { path: "traffic", params: { group: "camera" }, items: "cameras", filter: "camera" },
  "congestion-road": { path: "congestion", params: {}, items: "roads", filter: "road" },
  "visitors-site": { path: "wifi", params: { metric: "visitors", group: "site" }, items: "sites", filter: "site" },
  "clients-site": { path: "wifi", params: { metric: "clients", group: "site" }, items: "sites", filter: "site" },
  "busiest-cameras": { path: "busiest", params: { what: "cameras", limit: 20 } },
  "busiest-roads": { path: "busiest", params: { what: "roads", limit: 20 } },
  "busiest-sites": { path: "busiest", params: { what: "sites", limit: 20 } },
};
const planner = { sites: null, started: false };

function startHistory() {
  if (!planner.started) {
    $("history-form").addEventListener("submit", showHistory);
    $("history-csv").addEventListener("click", downloadCsv);
    $("history-compare").addEventListener("change", fillItems);
    planner.started = true;
  }
  fillItems();
}

async function itemsOf(kind) {
  if (kind === "districts") return [...state.districts].map(([id, name]) => [id, name]);
  if (kind === "cameras") {
    return grid.cameras.filter((c) => c.kind === "traffic").map((c) => [c.id, c.name]);
  }
  if (kind === "roads") {
    const roads = [...new Set(grid.cameras.map((c) => c.road).filter(Boolean))].sort();
    return roads.map((road) => [road, road]);
  }
  if (kind === "sites") {
    planner.sites ??= (await (await api("/api/v1/sites")).json()).map((s) => [s.id, s.name]);
    return planner.sites;
  }
  return [];
}

async function fillItems() {
  const comparison = COMPARISONS[$("history-compare").value];
  $("history-items-label").hidden = !comparison.items;
  const items = comparison.items ? await itemsOf(comparison.items) : [];
  $("history-items").replaceChildren(...items.map(([id, name]) => el("option", { value: id }, name)));
}

// The camera list arrives after the panel starts: refresh the choices that depend on it.
function onCamerasLoaded() {
  const comparison = COMPARISONS[$("history-compare").value];
  if (comparison && ["cameras", "roads"].includes(comparison.items)
      && $("history-items").options.length === 0) fillItems();
}

function historyRequest(format) {
  const comparison = COMPARISONS[$("history-compare").value];
  const days = Math.max(1, Math.min(90, Number($("history-days").value) || 7));
  const until = new Date();
  const since = new Date(until.getTime() - days * 86400000);
  const query = new URLSearchParams({
    ...comparison.params, bucket: $("history-bucket").value, format,
    since: since.toISOString(), until: until.toISOString(),
  });
  for (const option of $("history-items").selectedOptions) query.append(comparison.filter, option.value);
  return `/api/v1/history/${comparison.path}?${query}`;
}

async function fetchHistory(format) {
  $("history-error").hidden = true;
  try {
    return await (await api(historyRequest(format))).blob();
  } catch (error) {
    if (error.status !== 401) {
      $("history-error").textContent = `${t("failed")}: ${error.message}`;
      $("history-error").hidden = false;
    }
    return null;
  }
}

async function showHistory(event) {
  event.preventDefault();
  const blob = await fetchHistory("png");
  if (blob) showBlob($("history-chart"), blob);
}

async function downloadCsv() {
  const blob = await fetchHistory("csv");
  if (!blob) return;
  const link = el("a", { href: URL.createObjectURL(blob), download: `${$("history-compare").value}.csv` });
  link.click();
  URL.revokeObjectURL(link.href);
}
