// The incident model, kept in the page: alerts grouped by their incident_id (an alert
// without one is its own incident). An incident carries the highest severity of its alerts,
// the least advanced state, and is unacknowledged while any alert is open. Every alert
// change touches one incident (two if the alert moved), so the list patches one row.
// Pure (no DOM): node can load it for tests (module.exports at the end).
"use strict";

const SEVERITY_RANK = { critical: 0, major: 1, minor: 2, info: 3 };
const STATE_RANK = { open: 0, acknowledged: 1, assigned: 2, resolved: 3 };

function incidentIdOf(alert) { return alert.incident_id || alert.id; }

function summarise(id, alerts) {
  let top = alerts[0];
  let state = top.state;
  let openedAt = top.opened_at;
  let updatedAt = top.updated_at || top.last_seen_at || top.opened_at;
  let count = 0;
  let notes = 0;
  const kinds = new Set();
  const sources = new Set();
  let assigned = null;
  let acknowledged = null;
  for (const a of alerts) {
    if (SEVERITY_RANK[a.severity] < SEVERITY_RANK[top.severity]) top = a;
    if (STATE_RANK[a.state] < STATE_RANK[state]) state = a.state;
    if (a.opened_at < openedAt) openedAt = a.opened_at;
    const seen = a.updated_at || a.last_seen_at || a.opened_at;
    if (seen > updatedAt) updatedAt = seen;
    count += a.count || 1;
    notes += a.note_count || 0;
    kinds.add(a.kind);
    sources.add(a.source_id);
    assigned = assigned || a.assigned_to || null;
    acknowledged = acknowledged || a.acknowledged_by || null;
  }
  const located = alerts.find((a) => a.lat != null && a.lon != null);
  return {
    id, severity: top.severity, state, unacknowledged: alerts.some((a) => a.state === "open"),
    kind: top.kind, kinds: [...kinds], district_id: top.district_id, source_id: top.source_id,
    zone_id: top.zone_id, source_ids: [...sources], title_vi: top.title_vi, title_en: top.title_en,
    opened_at: openedAt, updated_at: updatedAt, count, note_count: notes,
    alert_ids: alerts.map((a) => a.id), alert_count: alerts.length,
    assigned_to: assigned, acknowledged_by: acknowledged,
    lat: located ? located.lat : null, lon: located ? located.lon : null,
  };
}

// Operators work the list top-down: unacknowledged first, then severity, then the longest
// waiting (oldest) first.
function compareIncidents(a, b) {
  return (b.unacknowledged - a.unacknowledged)
    || SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity]
    || (a.opened_at < b.opened_at ? -1 : a.opened_at > b.opened_at ? 1 : 0)
    || (a.id < b.id ? -1 : 1);
}

class IncidentBook {
  constructor() {
    this.alerts = new Map(); // alert id -> alert
    this.members = new Map(); // incident id -> Set of alert ids
    this.views = new Map(); // incident id -> summary (recomputed when touched)
    this.order = null; // sorted summaries, null when a change may have moved one
  }

  reset(alerts) {
    this.alerts.clear(); this.members.clear(); this.views.clear(); this.order = null;
    for (const alert of alerts) this.put(alert);
  }

  // Apply one alert (a resolved one leaves); returns the incident ids it touched.
  put(alert) {
    const touched = new Set();
    const before = this.alerts.get(alert.id);
    if (before) {
      const old = incidentIdOf(before);
      this.members.get(old)?.delete(alert.id);
      touched.add(old);
    }
    if (alert.state === "resolved") this.alerts.delete(alert.id);
    else {
      this.alerts.set(alert.id, alert);
      const id = incidentIdOf(alert);
      if (!this.members.has(id)) this.members.set(id, new Set());
      this.members.get(id).add(alert.id);
      touched.add(id);
    }
    for (const id of touched) this.refresh(id);
    return touched;
  }

  refresh(id) {
    const ids = this.members.get(id);
    const before = this.views.get(id);
    if (!ids || ids.size === 0) {
      this.members.delete(id); this.views.delete(id); this.order = null;
      return;
    }
    const view = summarise(id, [...ids].map((a) => this.alerts.get(a)));
    this.views.set(id, view);
    // A repeat (count, last seen) keeps the incident's place: patch the order in place
    // instead of sorting again, so the list knows nothing moved.
    const at = this.position?.get(id);
    if (this.order !== null && before && at !== undefined
        && before.unacknowledged === view.unacknowledged && before.severity === view.severity
        && before.opened_at === view.opened_at && before.district_id === view.district_id
        && before.kinds.join() === view.kinds.join()) this.order[at] = view;
    else this.order = null;
  }

  get(id) { return this.views.get(id); }
  alertsOf(id) { return [...(this.members.get(id) || [])].map((a) => this.alerts.get(a)); }

  sorted() {
    if (this.order === null) {
      this.order = [...this.views.values()].sort(compareIncidents);
      this.position = new Map(this.order.map((incident, i) => [incident.id, i]));
    }
    return this.order;
  }

  counts(list = this.sorted()) {
    const counts = { critical: 0, major: 0, minor: 0, info: 0 };
    for (const incident of list) counts[incident.severity] += 1;
    return counts;
  }
}

if (typeof module !== "undefined") module.exports = { IncidentBook, compareIncidents, summarise, incidentIdOf };
