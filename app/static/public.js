// Sanling public disclosure page (R6.2; BS 四(五)1; issue 17 item 7): no sign-in.
// Data: GET /api/v1/public/disclosure (process, time limits, documents, phones, grid-area names) and
// GET /api/v1/public/capacity (aggregated cells near a pin). No base map tiles: the service area outline only.
"use strict";

const $ = (id) => document.getElementById(id);
const CLASS_ZH = { ample: "充裕", limited: "有限", none: "暂无" };
const CLASS_COLOURS = { ample: "#43a047", limited: "#fbc02d", none: "#9e9e9e" };
const AREA_TYPE_ZH = { urban: "城区", rural: "农村" };
const state = { map: null, cells: null, pin: null, disclosure: null };

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function kva(value) { return `${Number(value).toLocaleString("zh-CN", { maximumFractionDigits: 0 })} kVA`; }
function setStatus(text, isError = false) { const s = $("status"); s.textContent = text; s.classList.toggle("error", isError); }

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (response.ok) return body;
  if (response.status === 429) {
    throw new Error(`查询过于频繁，请 ${response.headers.get("Retry-After") || "稍后"} 秒后再试。`);
  }
  if (body.code === "OUT_OF_SERVICE_AREA") throw new Error("该位置不在本公司供电服务区域内。");
  throw new Error(`查询失败（${body.code || response.status}）。`);
}

// ---------------------------------------------------------------- disclosure items
function renderDisclosure(d) {
  state.disclosure = d;
  $("profile-name").textContent = `${d.profile.region_zh} · ${d.profile.name_zh}`;
  document.querySelectorAll(".cap-kva").forEach((el) => { el.textContent = String(d.capacity_publication.cap_kva); });
  const unit = d.schedule.day_kind_zh;
  $("schedule-note").textContent = `时限以${unit}计，${d.schedule.count_from_zh}。`;
  $("job-classes").innerHTML = d.job_classes.map((job) => {
    const rows = job.steps.map((s) => `<tr><td>${escapeHtml(s.label_zh)}</td>`
      + `<td class="days">${s.days ? `${s.days} 个${escapeHtml(unit)}` : "—"}</td></tr>`).join("");
    return `<div class="job-class" data-job-class="${escapeHtml(job.job_class)}">`
      + `<h3>${escapeHtml(job.label_zh)}：<span class="total-days">${job.total_days}</span> 个${escapeHtml(unit)}内接电</h3>`
      + `<table><thead><tr><th>办理环节</th><th class="days">时限</th></tr></thead><tbody>${rows}`
      + `<tr class="total"><td>合计</td><td class="days">${job.total_days} 个${escapeHtml(unit)}</td></tr></tbody></table>`
      + `<p class="source">时限依据：${escapeHtml(job.source)}；环节分配：${escapeHtml(job.steps_source)}</p></div>`;
  }).join("");
  const docs = d.documents_required;
  $("documents-list").innerHTML = docs.items.map((item) => `<li data-kind="${escapeHtml(item.kind)}">`
    + `${escapeHtml(item.label_zh)}${item.deferrable ? "（可容缺后补）" : ""}</li>`).join("");
  const notes = [];
  if (docs.one_certificate) notes.push("实行“一证办电”。");
  if (docs.deferred_until_zh) notes.push(`容缺资料：${docs.deferred_until_zh}。`);
  $("documents-note").innerHTML = escapeHtml(notes.join(" ")) + `<br><span class="source">依据：${escapeHtml(docs.source)}</span>`;
  $("phones-list").innerHTML = d.phones.map((p) => `<li data-kind="${escapeHtml(p.kind)}">${escapeHtml(p.label_zh)}：`
    + `<a href="tel:${escapeHtml(p.number.replace(/[^0-9]/g, ""))}">${escapeHtml(p.number)}</a>`
    + `<br><span class="source">依据：${escapeHtml(p.source)}</span></li>`).join("");
  const pub = d.capacity_publication;
  $("capacity-note").textContent = `容量按 ${pub.cell_size_m} 米六边形网格汇总，向下取整至 ${pub.rounding_kva} kVA，`
    + `单户可接入容量最多显示 ${pub.cap_kva} kVA；不公开任何设备的位置或数据。依据：${pub.source}`;
  $("disclosure-source").textContent = `公开事项依据：${d.source}`;
  $("policy-documents").innerHTML = d.profile.documents.map((doc) => `<li>${escapeHtml(doc.key)}：`
    + `《${escapeHtml(doc.title_zh)}》${doc.number_zh ? `（${escapeHtml(doc.number_zh)}）` : ""}</li>`).join("");
  $("grid-area-names").innerHTML = d.grid_areas.map((a) => `<option value="${escapeHtml(a.name)}"></option>`).join("");
}

// ---------------------------------------------------------------- map and capacity
function serviceAreaBounds(d) {
  const [minLon, minLat, maxLon, maxLat] = d.service_area_wgs84;
  return L.latLngBounds([minLat, minLon], [maxLat, maxLon]);
}

function renderCapacity(answer) {
  if (state.cells) state.cells.remove();
  state.cells = L.geoJSON({ type: "FeatureCollection", features: answer.cells.map((cell) => ({
    type: "Feature", geometry: cell.geometry, properties: cell })) }, {
    style: (f) => ({ className: `cell cell-${f.properties.capacity_class}${f.properties.is_location_cell ? " location" : ""}`,
      color: f.properties.is_location_cell ? "#0d47a1" : "#555", weight: f.properties.is_location_cell ? 3 : 1,
      fillColor: CLASS_COLOURS[f.properties.capacity_class], fillOpacity: 0.45 }),
    onEachFeature: (f, layer) => layer.bindTooltip(`${CLASS_ZH[f.properties.capacity_class]}：单户最大 `
      + `${kva(f.properties.largest_connection_kva)}，合计 ${kva(f.properties.available_kva)}`),
  }).addTo(state.map);
  if (state.pin) state.pin.bringToFront();
  const here = answer.cells.find((c) => c.is_location_cell);
  const around = answer.cells.filter((c) => !c.is_location_cell);
  const best = Math.max(...answer.cells.map((c) => c.largest_connection_kva));
  const sum = answer.cells.reduce((total, c) => total + c.available_kva, 0);
  const area = answer.grid_area;
  const areaHtml = area
    ? `<p>所在网格：<strong class="grid-area-name">${escapeHtml(area.name)}</strong>`
      + `（${escapeHtml(AREA_TYPE_ZH[area.area_type] || area.area_type + " 类供电区域")}），`
      + `网格可开放容量约 ${kva(area.allowable_kva)}`
      + `${area.precontrol ? `<br><span class="precontrol">该网格新增接入受限（预管控），接电可能需要更长时间。</span>` : ""}</p>`
    : `<p>该位置不在已公布的网格内。</p>`;
  $("capacity-body").innerHTML = areaHtml
    + `<table><tbody>`
    + `<tr><th>所在位置（约 ${answer.cell_size_m} 米范围）</th><td class="location-class"><span class="swatch ${here.capacity_class}"></span> `
    + `${CLASS_ZH[here.capacity_class]}</td></tr>`
    + `<tr><th>所在位置单户最大可接入</th><td class="figure location-largest">${kva(here.largest_connection_kva)}</td></tr>`
    + `<tr><th>所在位置可接入容量合计</th><td class="location-available">${kva(here.available_kva)}</td></tr>`
    + `<tr><th>周边 ${around.length} 格中单户最大可接入</th><td>${kva(best)}</td></tr>`
    + `<tr><th>所在及周边 ${answer.cells.length} 格合计</th><td>${kva(sum)}</td></tr>`
    + `</tbody></table>`
    + `<p class="note">位置：${answer.lon_wgs84.toFixed(4)}, ${answer.lat_wgs84.toFixed(4)}（WGS-84）。`
    + `实际方案以现场勘查为准。</p>`;
  $("capacity-body").hidden = false;
  $("capacity-empty").hidden = true;
}

async function showCapacity(lat, lon) {
  if (state.pin) state.pin.setLatLng([lat, lon]);
  else state.pin = L.circleMarker([lat, lon], { radius: 7, color: "#fff", weight: 2, fillColor: "#d32f2f",
    fillOpacity: 1, className: "pin" }).addTo(state.map);
  setStatus("正在查询……");
  try {
    const answer = await getJson(`/api/v1/public/capacity?lon=${lon.toFixed(6)}&lat=${lat.toFixed(6)}&crs=wgs84`);
    renderCapacity(answer);
    setStatus("");
    document.body.dataset.capacity = "shown";
  } catch (error) {
    setStatus(error.message, true);
  }
}

function search(query) {
  const q = query.trim();
  const list = $("search-results");
  list.innerHTML = "";
  if (!q || !state.disclosure) { list.hidden = true; return; }
  const hits = state.disclosure.grid_areas.filter((a) => a.name.includes(q) || q.includes(a.name));
  if (hits.length === 1) { goTo(hits[0]); list.hidden = true; return; }
  list.hidden = false;
  if (!hits.length) { list.innerHTML = "<li>未找到该网格。请在地图上点击您的地址。</li>"; return; }
  for (const area of hits) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = area.name;
    button.addEventListener("click", () => { goTo(area); list.hidden = true; });
    li.appendChild(button);
    list.appendChild(li);
  }
}

function goTo(area) {
  state.map.setView([area.lat_wgs84, area.lon_wgs84], 15, { animate: false });
  showCapacity(area.lat_wgs84, area.lon_wgs84);
}

function locate() {
  // browsers offer the position only to a secure context (HTTPS or localhost)
  if (!window.isSecureContext || !navigator.geolocation) {
    setStatus("此页面无法定位（需通过 HTTPS 访问），请在地图上点击您的地址。", true);
    return;
  }
  setStatus("正在定位……");
  navigator.geolocation.getCurrentPosition((position) => {
    const { latitude, longitude } = position.coords;  // the browser's position is WGS-84
    state.map.setView([latitude, longitude], 15, { animate: false });
    showCapacity(latitude, longitude);
  }, () => setStatus("无法获取位置，请在地图上点击您的地址。", true), { enableHighAccuracy: true, timeout: 15000 });
}

async function init() {
  state.map = L.map("map", { zoomControl: true }).setView([29.5, 106.5], 8);
  state.map.attributionControl.setPrefix(false);
  state.map.on("click", (event) => showCapacity(event.latlng.lat, event.latlng.lng));
  $("search").addEventListener("submit", (event) => { event.preventDefault(); search($("search-input").value); });
  $("locate").addEventListener("click", locate);
  try {
    const d = await getJson("/api/v1/public/disclosure");
    renderDisclosure(d);
    const bounds = serviceAreaBounds(d);
    L.rectangle(bounds, { className: "service-area", color: "#0d47a1", weight: 2, fill: false, interactive: false })
      .addTo(state.map).bindTooltip("供电服务区域");
    state.map.fitBounds(bounds, { animate: false });  // a zoom animation would drop a setView made during it
    state.map.setMaxBounds(bounds.pad(0.5));
    document.body.dataset.loaded = "true";
  } catch (error) {
    setStatus(error.message, true);
  }
}

init();
