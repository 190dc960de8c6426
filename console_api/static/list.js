// The incident list: windowed (only the rows in view, plus a few, are in the DOM), keyed by
// incident id, each row patched in place when its incident changes. The header and the
// filters stay above the scrolling rows.
"use strict";

const ROW_HEIGHT = 58; // px, as .incident-row in style.css
const OVERSCAN = 4;
const list = { rows: new Map(), items: [], filterKey: "", lang: null, order: null };

function startList() {
  $("incident-scroll").addEventListener("scroll", () => scheduleRender(null), { passive: true });
  for (const id of ["filter-district", "filter-kind", "filter-state"]) {
    $(id).addEventListener("change", () => {
      scheduleRender(null, true);
      if (id === "filter-district" && seesPictures()) defaultWall();
    });
  }
  $("incident-rows").addEventListener("click", (event) => {
    const row = event.target.closest(".incident-row");
    if (row && !event.target.closest("button")) select(row.dataset.incidentId);
  });
  new ResizeObserver(() => scheduleRender(null)).observe($("incident-scroll"));
}

function clearList() {
  list.rows.clear();
  list.items = [];
  $("incident-rows").replaceChildren();
}

function fillFilters() {
  const keep = (id) => $(id).value;
  const fill = (id, options) => {
    const value = keep(id);
    $(id).replaceChildren(el("option", { value: "" }, t("all")),
      ...options.map(([v, label]) => el("option", { value: v }, label)));
    $(id).value = options.some(([v]) => v === value) ? value : "";
  };
  fill("filter-district", [...state.districts].map(([id, name]) => [id, name]));
  fill("filter-kind", Object.keys(LABELS.en).filter((k) => k.startsWith("kind."))
    .map((k) => [k.slice(5), tid("kind", k.slice(5))]));
  fill("filter-state", ["unacknowledged", "acknowledged", "assigned"]
    .map((s) => [s, s === "unacknowledged" ? tid("state", "open") : tid("state", s)]));
}

function passesFilters(incident) {
  const district = $("filter-district").value;
  const kind = $("filter-kind").value;
  const which = $("filter-state").value;
  if (district && incident.district_id !== district) return false;
  if (kind && !incident.kinds.includes(kind)) return false;
  if (which === "unacknowledged") return incident.unacknowledged;
  if (which) return !incident.unacknowledged && incident.state === which;
  return true;
}

function makeRow(id) {
  const row = el("div", { class: "incident-row", role: "listitem", "data-incident-id": id },
    el("span", { class: "sev" }),
    el("div", { class: "main" },
      el("div", { class: "line1" }, el("span", { class: "title" }), el("span", { class: "times" }), el("div", { class: "actions" })),
      el("div", { class: "line2" }, el("span", { class: "where muted" }), el("span", { class: "state" }))));
  row.sig = "";
  return row;
}

function patchRow(row, incident) {
  const sig = [i18n.lang, incident.severity, incident.state, incident.unacknowledged, incident.count,
    incident.alert_count, incident.title_vi, incident.assigned_to, incident.note_count,
    state.selected === incident.id, state.features.incidents].join("|");
  if (row.sig === sig) return;
  row.sig = sig;
  row.dataset.state = incident.state;
  row.dataset.severity = incident.severity;
  row.dataset.unacknowledged = String(incident.unacknowledged);
  row.classList.toggle("selected", state.selected === incident.id);
  // Which alert versions the row shows ("id:count"): what `ioc bench page` waits for.
  row.dataset.alerts = book.alertsOf(incident.id).slice(0, 50).map((a) => `${a.id}:${a.count}`).join(" ");
  const sev = row.firstChild;
  sev.className = `sev sev-${incident.severity}`;
  setText(sev, tid("severity", incident.severity));
  setText(row.querySelector(".title"), titleOf(incident));
  const times = [incident.count > 1 ? `×${incident.count}` : "",
    incident.alert_count > 1 ? `${incident.alert_count} ${t("alerts").toLowerCase()}` : ""].filter(Boolean).join(" · ");
  setText(row.querySelector(".times"), times);
  setText(row.querySelector(".where"), `${formatTime(incident.opened_at)} · ${districtName(incident.district_id)} · ${sourceLabel(incident)}`);
  const label = row.querySelector(".state");
  label.className = `state state-${incident.state}`;
  setText(label, incident.assigned_to ? `${tid("state", incident.state)}: ${incident.assigned_to}` : tid("state", incident.state));
  // Buttons are replaced only when the choice changes, so a click never hits a detached one.
  const actionsSig = [i18n.lang, incident.unacknowledged, state.features.incidents].join("|");
  if (row.actionsSig !== actionsSig) {
    row.actionsSig = actionsSig;
    row.querySelector(".actions").replaceChildren(...actionButtons(incident));
  }
}

function renderList(touched, all) {
  const scroll = $("incident-scroll");
  const sorted = book.sorted();
  const filterKey = ["filter-district", "filter-kind", "filter-state"].map((id) => $(id).value).join("|");
  if (all || sorted !== list.order || filterKey !== list.filterKey) {
    list.items = sorted.filter(passesFilters);
    list.order = sorted;
    list.filterKey = filterKey;
    renderCounts();
  }
  const items = list.items;
  const rowsEl = $("incident-rows");
  const height = `${items.length * ROW_HEIGHT}px`;
  if (rowsEl.style.height !== height) rowsEl.style.height = height;
  $("no-incidents").hidden = items.length > 0;
  const first = Math.max(0, Math.floor(scroll.scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(items.length, Math.ceil((scroll.scrollTop + scroll.clientHeight) / ROW_HEIGHT) + OVERSCAN);
  const keep = new Set();
  for (let i = first; i < last; i++) {
    const incident = book.get(items[i].id); // the list may hold an older view of it
    keep.add(incident.id);
    let row = list.rows.get(incident.id);
    if (!row) {
      row = makeRow(incident.id);
      list.rows.set(incident.id, row);
      rowsEl.append(row);
    }
    if (all || touched.has(incident.id) || row.sig === "") patchRow(row, incident);
    if (row.index !== i) {
      row.index = i;
      row.style.transform = `translateY(${i * ROW_HEIGHT}px)`;
    }
  }
  for (const [id, row] of list.rows) {
    if (!keep.has(id)) { row.remove(); list.rows.delete(id); }
  }
}

function renderCounts() {
  const counts = book.counts(list.items);
  const box = $("severity-counts");
  if (box.childElementCount === 0) {
    box.append(...Object.keys(counts).map((s) => el("span", { class: `count sev-${s}`, "data-severity": s })));
  }
  for (const node of box.children) {
    const s = node.dataset.severity;
    setText(node, `${tid("severity", s)} ${counts[s]}`);
  }
  setText($("incident-total"), String(list.items.length));
}

function revealInList(id) {
  const index = list.items.findIndex((i) => i.id === id);
  if (index < 0) return;
  const scroll = $("incident-scroll");
  const top = index * ROW_HEIGHT;
  if (top < scroll.scrollTop || top + ROW_HEIGHT > scroll.scrollTop + scroll.clientHeight) {
    scroll.scrollTop = Math.max(0, top - scroll.clientHeight / 3);
  }
}
