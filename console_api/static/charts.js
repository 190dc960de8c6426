// Planners' charts: uPlot over the JSON history endpoints (hover for values, drag to zoom,
// double-click to reset, series toggled in the legend to compare). The CSV and the PNG
// (for reports) are the same request in another format.
"use strict";

const COMPARISONS = {
  "traffic-district": { path: "traffic", params: { group: "district" }, items: "districts", filter: "district", unit: "vehicles" },
  "traffic-road": { path: "traffic", params: { group: "road" }, items: "roads", filter: "road", unit: "vehicles" },
  "traffic-camera": { path: "traffic", params: { group: "camera" }, items: "cameras", filter: "camera", unit: "vehicles" },
  "congestion-road": { path: "congestion", params: {}, items: "roads", filter: "road", unit: "congestedMinutes" },
  "visitors-site": { path: "wifi", params: { metric: "visitors", group: "site" }, items: "sites", filter: "site", unit: "wifiVisitors" },
  "clients-site": { path: "wifi", params: { metric: "clients", group: "site" }, items: "sites", filter: "site", unit: "wifiClients" },
  "busiest-cameras": { path: "busiest", params: { what: "cameras", limit: 20 }, unit: "vehicles" },
  "busiest-roads": { path: "busiest", params: { what: "roads", limit: 20 }, unit: "vehicles" },
  "busiest-sites": { path: "busiest", params: { what: "sites", limit: 20 }, unit: "arrivals" },
  // The observed line, then the forecast with its 80% and 95% bands and its backtest error.
  forecast: { forecast: true, items: "forecasts", unit: "forecastValue" },
};
const PALETTE = ["#3fa7ff", "#ff8c1a", "#6fcf97", "#ff4d4f", "#c86bff", "#f2c94c", "#56d4dd", "#ff7eb6", "#a3be8c", "#d08770"];
const planner = { sites: null, forecasts: null, started: false, plot: null, answer: null, asked: 0 };

// On entering, the chart shows data at once: the first forecast with its band where there
// are forecasts, else the traffic of every district.
async function startHistory() {
  if (!planner.started) {
    $("history-form").addEventListener("submit", (event) => { event.preventDefault(); showHistory(); });
    $("history-csv").addEventListener("click", () => download("csv"));
    $("history-png").addEventListener("click", () => download("png"));
    $("history-compare").addEventListener("change", fillItems);
    new ResizeObserver(() => { if (planner.plot) planner.plot.setSize(chartSize()); }).observe($("chart"));
    planner.started = true;
  }
  relabelHistory();
  const forecasts = await itemsOf("forecasts");
  $("history-compare").value = forecasts.length ? "forecast" : "traffic-district";
  await fillItems();
  if (forecasts.length) $("history-items").options[0].selected = true;
  await showHistory();
}

function relabelHistory() {
  const compare = $("history-compare");
  const bucket = $("history-bucket");
  const [c, b] = [compare.value || "traffic-district", bucket.value || "hour"];
  compare.replaceChildren(...Object.keys(COMPARISONS).map((k) => el("option", { value: k }, t(`compare.${k}`))));
  bucket.replaceChildren(...["hour", "day"].map((k) => el("option", { value: k }, tid("bucket", k))));
  compare.value = c;
  bucket.value = b;
  if (planner.answer) draw(planner.answer);
}

async function itemsOf(kind) {
  if (kind === "districts") return [...state.districts];
  if (kind === "cameras") return [...state.cameras.values()].filter((c) => c.kind === "traffic").map((c) => [c.id, c.name]);
  if (kind === "roads") return [...new Set([...state.cameras.values()].map((c) => c.road).filter(Boolean))].sort().map((r) => [r, r.toUpperCase()]);
  if (kind === "sites") {
    planner.sites ??= (await getJson("/api/v1/sites")).map((s) => [s.id, s.name]);
    return planner.sites;
  }
  if (kind === "forecasts") {
    if (!planner.forecasts) {
      await itemsOf("sites");
      planner.forecasts = await getJson("/api/v1/forecast?resolution=hour");
    }
    return planner.forecasts.map((f) => [`${f.kind}|${f.id}`, forecastName(f.kind, f.id)]);
  }
  return [];
}

function forecastName(kind, id) {
  let name = id;
  if (kind === "district") name = districtName(id);
  else if (kind === "road") name = id.toUpperCase();
  else if (kind === "site") name = (planner.sites || []).find(([s]) => s === id)?.[1] ?? id;
  else if (kind === "line") name = `${cameraName(id.split("/")[0])} / ${id.split("/").slice(1).join("/")}`;
  return `${tid("fkind", kind)}: ${name}`;
}

async function fillItems() {
  const comparison = COMPARISONS[$("history-compare").value];
  $("history-items-label").hidden = !comparison.items;
  $("history-items").multiple = !comparison.forecast; // one forecast at a time
  $("history-png").hidden = Boolean(comparison.forecast);
  const items = comparison.items ? await itemsOf(comparison.items) : [];
  $("history-items").replaceChildren(...items.map(([id, name]) => el("option", { value: id }, name)));
}

function historyRequest(format) {
  const comparison = COMPARISONS[$("history-compare").value];
  if (comparison.forecast) {
    const [kind, ...rest] = ($("history-items").value || "").split("|");
    const query = new URLSearchParams({
      kind, id: rest.join("|"), resolution: $("history-bucket").value, format,
      observed_days: String(Math.max(1, Math.min(60, Number($("history-days").value) || 7))),
    });
    return `/api/v1/forecast/series?${query}`;
  }
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
    return await api(historyRequest(format));
  } catch (error) {
    if (error.status !== 401) {
      $("history-error").textContent = `${t("failed")}: ${error.message}`;
      $("history-error").hidden = false;
    }
    return null;
  }
}

async function showHistory() {
  const asked = ++planner.asked; // only the newest request draws
  const comparison = $("history-compare").value;
  if (COMPARISONS[comparison].forecast && !$("history-items").value) return;
  const response = await fetchHistory("json");
  if (!response || asked !== planner.asked) return;
  const answer = await response.json();
  if (asked !== planner.asked) return;
  planner.answer = { answer, comparison };
  draw(planner.answer);
}

function chartSize() {
  const box = $("chart").getBoundingClientRect();
  return { width: Math.max(300, box.width), height: Math.max(200, box.height - 40) };
}

function seriesName(key) {
  const values = Object.entries(key).map(([k, v]) => {
    if (k === "district_id" || k === "district") return districtName(v);
    if (k === "camera_id" || k === "camera") return cameraName(v);
    if (k === "site_id" || k === "site") return (planner.sites || []).find(([id]) => id === v)?.[1] ?? v;
    if (k === "road") return String(v).toUpperCase();
    return v;
  });
  return values.join(" / ");
}

// The forecast's backtest, next to it: how far a planner can trust the band.
function skillText(skill) {
  if (!skill) return "";
  const num = (v, digits = 1) => (v == null ? "–" : v.toLocaleString(i18n.lang === "vi" ? "vi-VN" : "en-GB", { maximumFractionDigits: digits }));
  const pct = (v) => (v == null ? "–" : `${num(100 * v, 0)}%`);
  const parts = [
    `${t("mae")} ${num(skill.mae)}`, `${t("mape")} ${skill.mape == null ? "–" : `${num(skill.mape)}%`}`,
    `${t("coverage80")} ${pct(skill.coverage_80)}`, `${t("coverage95")} ${pct(skill.coverage_95)}`,
    `${t("skillVsNaive")} ${skill.skill_vs_naive == null ? "–" : `${skill.skill_vs_naive >= 0 ? "+" : ""}${pct(skill.skill_vs_naive)}`}`,
    `${t("model")} ${skill.model}${skill.fallback ? ` (${t("fallback")})` : ""}`,
  ];
  return parts.join(" · ");
}

function drawForecast(answer) {
  // Observed points come as [time, value] pairs; the band as objects.
  const observed = answer.observed.map((o) => (Array.isArray(o) ? o : [o.t, o.value]));
  const times = [...new Set([...observed.map(([at]) => Date.parse(at) / 1000), ...answer.forecast.map((b) => Date.parse(b.t) / 1000)])].sort((a, b) => a - b);
  const index = new Map(times.map((x, i) => [x, i]));
  const columns = Array.from({ length: 6 }, () => new Array(times.length).fill(null));
  for (const [at, value] of observed) columns[0][index.get(Date.parse(at) / 1000)] = value;
  for (const b of answer.forecast) {
    const i = index.get(Date.parse(b.t) / 1000);
    [columns[1][i], columns[2][i], columns[3][i], columns[4][i], columns[5][i]] = [b.value, b.low80, b.high80, b.low95, b.high95];
  }
  const edge = { stroke: "transparent", width: 0, points: { show: false } };
  return {
    data: [times, ...columns],
    opts: {
      series: [
        { label: t("observed"), stroke: PALETTE[0], width: 2, spanGaps: false },
        { label: t("forecast"), stroke: PALETTE[1], width: 2, dash: [6, 4] },
        { label: t("low80"), ...edge }, { label: t("high80"), ...edge },
        { label: t("low95"), ...edge }, { label: t("high95"), ...edge },
      ],
      bands: [{ series: [4, 3], fill: "rgba(255,140,26,0.35)" }, { series: [6, 5], fill: "rgba(255,140,26,0.15)" }],
    },
  };
}

function draw({ answer, comparison }) {
  if (planner.plot) { planner.plot.destroy(); planner.plot = null; }
  const unit = t(COMPARISONS[comparison].unit);
  const skill = $("forecast-skill");
  skill.hidden = !answer.forecast;
  skill.textContent = answer.forecast ? skillText(answer.skill) : "";
  let data;
  let opts;
  if (answer.forecast) {
    $("history-empty").hidden = answer.forecast.length + answer.observed.length > 0;
    if ($("history-empty").hidden === false) return;
    const drawn = drawForecast(answer);
    data = drawn.data;
    opts = {
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), TZ),
      axes: [{ stroke: "#8b98a5", grid: { stroke: "#27333f" }, values: (u, ticks) => ticks.map(axisTime) },
        { stroke: "#8b98a5", grid: { stroke: "#27333f" }, label: unit, size: 60 }],
      series: [{ label: t("time"), value: (u, ts) => (ts == null ? "" : formatTime(new Date(ts * 1000).toISOString())) }, ...drawn.opts.series],
      bands: drawn.opts.bands,
    };
  } else if (answer.ranking) {
    const ranking = answer.ranking;
    $("history-empty").hidden = ranking.length > 0;
    if (!ranking.length) return;
    data = [ranking.map((_, i) => i), ranking.map((r) => r.total)];
    opts = {
      scales: { x: { time: false, range: [-0.5, ranking.length - 0.5] } },
      axes: [
        { stroke: "#8b98a5", grid: { stroke: "#27333f" }, values: (u, ticks) => ticks.map((i) => (Number.isInteger(i) && ranking[i] ? ranking[i].name.slice(0, 14) : "")), rotate: -30, size: 70 },
        { stroke: "#8b98a5", grid: { stroke: "#27333f" }, label: unit },
      ],
      series: [{ label: t("compare"), value: (u, i) => (i == null || !ranking[i] ? "" : ranking[i].name) },
        { label: unit, stroke: PALETTE[0], fill: `${PALETTE[0]}99`, paths: uPlot.paths.bars({ size: [0.7] }), points: { show: false } }],
    };
  } else {
    const series = answer.series;
    $("history-empty").hidden = series.length > 0;
    if (!series.length) return;
    const times = [...new Set(series.flatMap((s) => s.points.map(([at]) => Date.parse(at) / 1000)))].sort((a, b) => a - b);
    const index = new Map(times.map((x, i) => [x, i]));
    data = [times, ...series.map((s) => {
      const values = new Array(times.length).fill(null);
      for (const [at, value] of s.points) values[index.get(Date.parse(at) / 1000)] = value;
      return values;
    })];
    opts = {
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), TZ),
      axes: [{ stroke: "#8b98a5", grid: { stroke: "#27333f" }, values: (u, ticks) => ticks.map(axisTime) },
        { stroke: "#8b98a5", grid: { stroke: "#27333f" }, label: unit, size: 60 }],
      series: [{ label: t("time"), value: (u, ts) => (ts == null ? "" : formatTime(new Date(ts * 1000).toISOString())) },
        ...series.map((s, i) => ({ label: seriesName(s.key), stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: true }))],
    };
  }
  planner.plot = new uPlot({ ...chartSize(), cursor: { drag: { x: true, y: false } }, ...opts }, data, $("chart"));
}

// Axis times in the page's language and the province's time zone, with the year.
// A tick at local midnight shows its date (with the year), any other tick its hour: a date
// and an hour on every tick overlapped its neighbours in Vietnamese.
function axisTime(ts) {
  const locale = i18n.lang === "vi" ? "vi-VN" : "en-GB";
  const at = new Date(ts * 1000);
  const hour = new Intl.DateTimeFormat("en-GB", { timeZone: TZ, hour: "2-digit", minute: "2-digit", hour12: false }).format(at);
  if (hour !== "00:00") return hour;
  return new Intl.DateTimeFormat(locale, { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" }).format(at);
}

async function download(format) {
  const response = await fetchHistory(format);
  if (!response) return;
  const blob = await response.blob();
  const link = el("a", { href: URL.createObjectURL(blob), download: `${$("history-compare").value}.${format}` });
  link.click();
  URL.revokeObjectURL(link.href);
}
