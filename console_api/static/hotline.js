// The 1022 hotline form: an operator enters a phone report (service, place by a click on the
// map or lat/long, description, caller's number) and posts it to the Open311 hotline path
// with the session's token; the citizen_report incident then arrives on the websocket like
// every other one.
"use strict";

const hotline = { services: null, marker: null, attributes: [] };

// A service code in words (audit lines name them), once the catalogue is here.
function serviceLabel(code) {
  const service = (hotline.services || []).find((s) => s.service_code === code);
  return service ? serviceName(service) : tid("service", code);
}

async function loadServices() {
  try { hotline.services ??= await getJson("/open311/v2/services.json"); } catch (error) { /* no citizens' side */ }
}

function serviceName(service) {
  const [vi, en] = service.service_name.split(" / ");
  return i18n.lang === "vi" ? vi : en || vi;
}

async function openHotline() {
  await loadServices();
  const select = $("hotline-service");
  const chosen = select.value;
  select.replaceChildren(...hotline.services.map((s) => el("option", { value: s.service_code }, serviceName(s))));
  if (chosen) select.value = chosen;
  $("hotline-error").hidden = true;
  $("hotline-done").hidden = true;
  $("hotline").hidden = false;
  await fillAttributes();
  mapView.map?.on("click", pickPlace);
  $("map").classList.add("picking");
}

function closeHotline() {
  $("hotline").hidden = true;
  mapView.map?.off("click", pickPlace);
  $("map").classList.remove("picking");
  if (hotline.marker) { hotline.marker.remove(); hotline.marker = null; }
}

function pickPlace(event) {
  $("hotline-lat").value = event.latlng.lat.toFixed(6);
  $("hotline-lon").value = event.latlng.lng.toFixed(6);
  showPlace();
}

function showPlace() {
  const lat = Number($("hotline-lat").value);
  const lon = Number($("hotline-lon").value);
  if (!mapView.map || !$("hotline-lat").value || !$("hotline-lon").value || Number.isNaN(lat + lon)) return;
  if (hotline.marker) hotline.marker.setLatLng([lat, lon]);
  else hotline.marker = L.circleMarker([lat, lon], { radius: 7, color: "#ffffff", weight: 2, dashArray: "2 3", fillOpacity: 0, className: "hotline-place" }).addTo(mapView.map);
}

// The service's own questions (Open311 attributes), required ones marked.
async function fillAttributes() {
  const code = $("hotline-service").value;
  const service = hotline.services.find((s) => s.service_code === code);
  hotline.attributes = service && service.metadata ? (await getJson(`/open311/v2/services/${encodeURIComponent(code)}.json`)).attributes.filter((a) => a.variable) : [];
  $("hotline-attributes").replaceChildren(...hotline.attributes.map((a) => {
    const name = `attribute[${a.code}]`;
    let field;
    if (a.datatype === "singlevaluelist" || a.datatype === "multivaluelist") {
      field = el("select", { name, multiple: a.datatype === "multivaluelist", required: a.required },
        ...(a.datatype === "singlevaluelist" && !a.required ? [el("option", { value: "" }, "—")] : []),
        ...a.values.map((v) => el("option", { value: v.key }, String(v.name).split(" / ")[i18n.lang === "vi" ? 0 : 1] || v.name)));
    } else {
      field = el("input", { name, required: a.required, type: a.datatype === "number" ? "number" : "text" });
    }
    const label = String(a.description).split(" / ")[i18n.lang === "vi" ? 0 : 1] || a.description;
    return el("label", {}, el("span", {}, `${label}${a.required ? " *" : ""}`), field);
  }));
}

async function submitHotline(event) {
  event.preventDefault();
  $("hotline-error").hidden = true;
  $("hotline-done").hidden = true;
  const form = new FormData($("hotline-form"));
  for (const [name, value] of [...form.entries()]) if (value === "") form.delete(name);
  let answer;
  try {
    answer = await (await api("/open311/v2/hotline/requests.json", { method: "POST", body: form })).json();
  } catch (error) {
    if (error.status === 401) return;
    let text = error.message;
    try { text = JSON.parse(text.slice(text.indexOf(":") + 1)).map((e) => e.description).join("; "); } catch (ignored) { /* as it is */ }
    $("hotline-error").textContent = `${t("failed")}: ${text}`;
    $("hotline-error").hidden = false;
    return;
  }
  const id = answer[0].service_request_id;
  $("hotline-done").textContent = `${t("hotlineDone")} ${id}`;
  $("hotline-done").dataset.requestId = id;
  $("hotline-done").hidden = false;
  for (const name of ["description", "caller_number"]) $("hotline-form").elements[name].value = "";
}

function relabelHotline() {
  if (!hotline.services || $("hotline").hidden) return;
  const select = $("hotline-service");
  for (const option of select.options) {
    const service = hotline.services.find((s) => s.service_code === option.value);
    if (service) option.textContent = serviceName(service);
  }
  fillAttributes();
}

function startHotline() {
  $("hotline-open").addEventListener("click", openHotline);
  $("hotline-cancel").addEventListener("click", closeHotline);
  $("hotline-form").addEventListener("submit", submitHotline);
  $("hotline-service").addEventListener("change", fillAttributes);
  $("hotline-lat").addEventListener("change", showPlace);
  $("hotline-lon").addEventListener("change", showPlace);
}
