// Sanling planner capacity map (R6.1): Leaflet, data from /api/v1/features and /api/v1/capacity.
// The access token from POST /api/v1/auth/token is kept in sessionStorage (gone when the tab closes).
"use strict";

const TOKEN_KEY = "sanling.accessToken";
const CLASS_COLOURS = { "<50": "#2e7d32", "50-70": "#f9a825", "70-80": "#ef6c00", ">80": "#c62828" };
const CLASS_NAMES = { "<50": "< 50 %", "50-70": "50–70 % (may start 立项)", "70-80": "70–80 % (must start 立项并出库)",
  ">80": "> 80 % (overloaded)" };
const $ = (id) => document.getElementById(id);

const state = { map: null, classLayers: {}, markers: {}, areaLayer: null, areaBounds: {}, searchMarker: null };

function classKey(label) { return label.replace(/[^0-9a-z]+/gi, "_").replace(/^_|_$/g, "") || "x"; }
function fmt(value, digits = 1) { return value === null || value === undefined ? "–" : Number(value).toFixed(digits); }
function setStatus(text) { $("status").textContent = text; }

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = Object.assign({}, options.headers || {}, token ? { Authorization: "Bearer " + token } : {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) { signOut(); throw new Error("Please sign in again."); }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error((body.code || response.status) + ": " + (body.message || response.statusText));
  }
  return response;
}

async function allItems(collection) {
  let url = `/api/v1/features/collections/${collection}/items?limit=10000`;
  const features = [];
  while (url) {
    const page = await (await api(url)).json();
    features.push(...page.features);
    const next = (page.links || []).find((link) => link.rel === "next");
    url = next ? next.href : null;
  }
  return features;
}

function areaColour(p) {
  if (p.precontrol) return "#e57373";
  const share = Math.max(0, Math.min(1, (p.allowable_kva - 160) / 2000));
  const g = Math.round(170 + 60 * share), r = Math.round(230 - 130 * share);
  return `rgb(${r},${g},120)`;
}

function detailsHtml(p) {
  const flags = [];
  if (p.must_start_project) flags.push("must start project 立项并出库");
  else if (p.may_start_project) flags.push("may start project 立项");
  if (p.start_in_advance) flags.push("start in advance 提前启动");
  if (p.area_precontrol) flags.push("grid area pre-controlled 预管控");
  const rows = [
    ["Transformer", `${p.name} (${p.asset_id})`], ["Grid area", p.grid_area_code || "–"], ["Status", p.status],
    ["Rating", `${fmt(p.rated_kva, 0)} kVA`], ["Latest peak", `${fmt(p.peak_kva)} kVA at ${p.peak_at || "–"}`],
    ["Reserved (queued)", `${fmt(p.reserved_kva)} kVA`], ["Load rate", `${fmt(p.load_rate_pct)} % (${p.threshold_class})`],
    ["Projected", `${fmt(p.projected_load_rate_pct)} % (${p.projected_class})`],
    ["Spare to 80 %", `${fmt(p.spare_kva)} kVA`],
  ];
  const table = rows.map(([k, v]) => `<tr><th>${k}</th><td>${escapeHtml(String(v))}</td></tr>`).join("");
  const flagHtml = flags.map((f) => `<span class="flag">${escapeHtml(f)}</span>`).join("");
  return `<div class="tx-details"><table>${table}</table><div class="flags">${flagHtml || "no flags"}</div></div>`;
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function showDetails(p) {
  $("details").hidden = false;
  $("details-body").innerHTML = detailsHtml(p);
}

function buildFilters() {
  const box = $("class-filters");
  box.innerHTML = "";
  for (const [label, colour] of Object.entries(CLASS_COLOURS)) {
    const id = "filter-" + classKey(label);
    const wrap = document.createElement("label");
    wrap.className = "class-filter";
    wrap.innerHTML = `<input type="checkbox" id="${id}" data-class="${label}" checked> ` +
      `<span class="dot" style="background:${colour}"></span>${CLASS_NAMES[label]} <span id="${id}-count"></span>`;
    box.appendChild(wrap);
    wrap.querySelector("input").addEventListener("change", (event) => {
      const layer = state.classLayers[label];
      if (event.target.checked) layer.addTo(state.map); else layer.remove();
    });
  }
}

async function loadMap() {
  setStatus("Loading…");
  const [areas, transformers] = await Promise.all([allItems("grid_areas"), allItems("transformers")]);
  if (state.areaLayer) state.areaLayer.remove();
  state.areaLayer = L.geoJSON({ type: "FeatureCollection", features: areas }, {
    style: (f) => ({ color: "#37474f", weight: 1.5, fillColor: areaColour(f.properties), fillOpacity: 0.35,
      className: "grid-area" + (f.properties.precontrol ? " precontrol" : "") }),
    onEachFeature: (f, layer) => {
      state.areaBounds[f.properties.code] = layer.getBounds();
      layer.bindTooltip(`${f.properties.name} (${f.properties.code}): allowable ${fmt(f.properties.allowable_kva)} kVA` +
        (f.properties.precontrol ? " — pre-control 预管控" : ""), { sticky: true });
    },
  }).addTo(state.map);
  for (const layer of Object.values(state.classLayers)) layer.remove();
  state.classLayers = {};
  state.markers = {};
  const counts = {};
  for (const label of Object.keys(CLASS_COLOURS)) {
    state.classLayers[label] = L.layerGroup();
    const box = $("filter-" + classKey(label));
    if (box && box.checked) state.classLayers[label].addTo(state.map);
  }
  for (const f of transformers) {
    const p = f.properties;
    const label = p.threshold_class;
    counts[label] = (counts[label] || 0) + 1;
    const [lon, lat] = f.geometry.coordinates;
    const marker = L.circleMarker([lat, lon], {
      radius: 7, color: "#212121", weight: 1, fillColor: CLASS_COLOURS[label] || "#757575", fillOpacity: 0.95,
      className: `transformer tx-${classKey(label)}` + (p.status !== "in_service" ? " not-in-service" : ""),
    });
    marker.bindPopup(() => detailsHtml(p));
    marker.on("click", () => showDetails(p));
    marker.bindTooltip(`${p.asset_id} · ${fmt(p.load_rate_pct)} %`);
    (state.classLayers[label] || state.classLayers[">80"]).addLayer(marker);
    state.markers[p.asset_id] = marker;
  }
  for (const label of Object.keys(CLASS_COLOURS)) {
    const span = $("filter-" + classKey(label) + "-count");
    if (span) span.textContent = `(${counts[label] || 0})`;
  }
  if (areas.length) state.map.fitBounds(state.areaLayer.getBounds(), { padding: [10, 10] });
  document.body.dataset.loaded = "true";
  setStatus(`${transformers.length} transformers, ${areas.length} grid areas`);
}

async function loadWorklist() {
  const kind = $("worklist-kind").value;
  const body = await (await api(`/api/v1/capacity/worklists/${kind}`)).json();
  $("worklist-count").textContent = `${body.count} ${kind === "pre-control" ? "grid areas" : "transformers"}` +
    ` (profile ${body.thresholds.profile_id})`;
  const list = $("worklist-items");
  list.innerHTML = "";
  for (const item of body.items) {
    const li = document.createElement("li");
    if (kind === "pre-control") {
      li.textContent = `${item.name} (${item.code}): ${fmt(item.allowable_kva)} kVA allowable`;
      li.addEventListener("click", () => { const b = state.areaBounds[item.code]; if (b) state.map.fitBounds(b); });
    } else {
      const rate = kind === "start-in-advance" ? item.projected_load_rate_pct : item.load_rate_pct;
      li.textContent = `${item.asset_id} ${item.name}: ${fmt(rate)} % · spare ${fmt(item.spare_kva)} kVA`;
      li.addEventListener("click", () => {
        const marker = state.markers[item.asset_id];
        if (!marker) return;
        state.map.setView(marker.getLatLng(), Math.max(state.map.getZoom(), 16));
        marker.fire("click");
        marker.openPopup();
      });
    }
    list.appendChild(li);
  }
}

async function downloadCsv() {
  const kind = $("worklist-kind").value;
  const blob = await (await api(`/api/v1/capacity/worklists/${kind}?format=csv`)).blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `worklist-${kind}.csv`;
  link.click();
  URL.revokeObjectURL(link.href);
}

function search(event) {
  event.preventDefault();
  const parts = $("search-input").value.split(/[\s,，]+/).filter(Boolean).map(Number);
  if (parts.length !== 2 || parts.some((v) => !Number.isFinite(v)) || Math.abs(parts[0]) > 180 || Math.abs(parts[1]) > 90) {
    setStatus("Enter longitude, latitude in degrees (WGS-84), e.g. 106.50, 29.50");
    return;
  }
  const latlng = L.latLng(parts[1], parts[0]);
  if (state.searchMarker) state.searchMarker.remove();
  state.searchMarker = L.marker(latlng, { title: "Search result" }).addTo(state.map);
  state.map.setView(latlng, 17);
  setStatus(`Centred on ${parts[0]}, ${parts[1]}`);
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  $("user").textContent = "";
  $("sign-out").hidden = true;
  $("signin-backdrop").hidden = false;
}

async function signIn(event) {
  event.preventDefault();
  $("signin-error").textContent = "";
  const form = new URLSearchParams({ username: $("username").value, password: $("password").value });
  const response = await fetch("/api/v1/auth/token", { method: "POST", body: form });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) { $("signin-error").textContent = body.message || "Sign-in failed."; return; }
  sessionStorage.setItem(TOKEN_KEY, body.access_token);
  $("password").value = "";
  await start();
}

async function start() {
  if (!sessionStorage.getItem(TOKEN_KEY)) { signOut(); return; }
  $("signin-backdrop").hidden = true;
  $("sign-out").hidden = false;
  try {
    const me = await (await api("/api/v1/auth/me")).json();
    $("user").textContent = `${me.username} (${me.role})`;
    await loadMap();
    await loadWorklist();
  } catch (error) {
    setStatus(error.message);
  }
}

async function init() {
  const config = await (await fetch("/map/config.json")).json();
  state.map = L.map("map", { zoomControl: true, preferCanvas: false }).setView([29.5, 106.5], 13);
  L.control.scale({ imperial: false }).addTo(state.map);
  if (config.basemap_tile_url) {
    L.tileLayer(config.basemap_tile_url, { maxZoom: 19, attribution: config.basemap_attribution || "" }).addTo(state.map);
  }
  buildFilters();
  $("signin").addEventListener("submit", (e) => signIn(e).catch((err) => { $("signin-error").textContent = err.message; }));
  $("sign-out").addEventListener("click", signOut);
  $("search").addEventListener("submit", search);
  $("worklist-kind").addEventListener("change", () => loadWorklist().catch((err) => setStatus(err.message)));
  $("worklist-csv").addEventListener("click", () => downloadCsv().catch((err) => setStatus(err.message)));
  await start();
}

init();
