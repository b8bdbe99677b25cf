// The faceedit demo page: plain JavaScript, no libraries, no network beyond this server.
"use strict";
const $ = (id) => document.getElementById(id);
const DEBOUNCE_MS = 150;
const state = { photo: null, faces: [], face: 0, start: {}, seq: 0, controller: null, names: [], photoUrl: null };

// ---- messages ------------------------------------------------------------------------------------
const FRIENDLY = {
  no_face: "No face found in this photo: try a sharper, front-facing one.",
  bad_image: "That file is not an image this server can read.",
  too_big: "That file is too big.",
  too_many_pixels: "That photo has too many pixels.",
  busy: "The server is busy: trying again in a moment…",
  timeout: "The server took too long to answer: try again.",
};
function say(text, bad = false, where = "message") {
  const el = $(where);
  el.textContent = text || "";
  el.classList.toggle("bad", !!bad);
}
async function apiError(res) {
  let body = {};
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  const kind = body.kind || (res.status === 413 ? "too_big" : "http");
  const detail = body.error || `${res.status} ${res.statusText}`;
  const lead = FRIENDLY[kind];
  const err = new Error(lead ? `${lead} (${detail})` : detail);
  err.kind = kind;
  err.retryAfter = Number(res.headers.get("Retry-After") || 1);
  return err;
}
async function post(url, body, signal) {
  const res = await fetch(url, { method: "POST", body, signal });
  if (!res.ok) throw await apiError(res);
  return res.json();
}

// ---- model info ------------------------------------------------------------------------------------
async function loadModel() {
  try {
    const res = await fetch("/v1/model");
    if (!res.ok) throw await apiError(res);
    const m = await res.json();
    state.names = m.attributes;
    $("model-line").textContent = `model ${m.model_id} · ${m.backend} ${m.precision}`;
    buildSampleControls(m.attributes);
  } catch (e) {
    $("model-line").textContent = `model info unavailable: ${e.message}`;
  }
}

// ---- loading a photo ---------------------------------------------------------------------------------
async function loadPhoto(blob) {
  if (!blob) return;
  state.photo = blob;
  state.seq++;  // answers for the previous photo are now stale
  if (state.controller) state.controller.abort();
  say("Reading the faces…");
  clearResult();
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = URL.createObjectURL(blob);
  $("photo").src = state.photoUrl;
  try {
    const info = await post("/v1/attributes?face=all", blob);
    if (state.photo !== blob) return;
    state.faces = info.faces;
    state.size = [info.width, info.height];
    $("workspace").hidden = false;
    buildFaceChoice();
    let largest = 0;
    info.faces.forEach((f, i) => { if (f.box[2] * f.box[3] > info.faces[largest].box[2] * info.faces[largest].box[3]) largest = i; });
    chooseFace(largest);
    say(info.faces.length > 1 ? `${info.faces.length} faces found: pick one on the photo or in the list.` : "");
  } catch (e) {
    if (state.photo !== blob) return;
    $("workspace").hidden = true;
    say(e.message, true);
  }
}

function buildFaceChoice() {
  const sel = $("face-choice"), boxes = $("boxes");
  sel.innerHTML = ""; boxes.innerHTML = "";
  const [w, h] = state.size;
  state.faces.forEach((f, i) => {
    sel.add(new Option(`face ${i}`, String(i)));
    const b = document.createElement("button");
    b.type = "button";
    b.setAttribute("aria-label", `edit face ${i}`);
    Object.assign(b.style, { left: `${100 * f.box[0] / w}%`, top: `${100 * f.box[1] / h}%`,
                             width: `${100 * f.box[2] / w}%`, height: `${100 * f.box[3] / h}%` });
    b.addEventListener("click", () => chooseFace(i));
    boxes.appendChild(b);
  });
  sel.disabled = state.faces.length < 2;
}

function chooseFace(i) {
  state.face = i;
  $("face-choice").value = String(i);
  [...$("boxes").children].forEach((b, k) => b.setAttribute("aria-pressed", String(k === i)));
  buildSliders(state.faces[i].attributes);
  clearResult();
  loadReconstruction();
}

// ---- sliders ---------------------------------------------------------------------------------------
function buildSliders(probs) {
  const box = $("sliders");
  box.innerHTML = "";
  state.start = {};
  for (const [name, p] of Object.entries(probs)) {
    const v = Math.round(p * 100) / 100;
    state.start[name] = v;
    const row = document.createElement("div");
    row.className = "attr";
    row.innerHTML = `<label for="attr-${name}">${name.replace(/_/g, " ")}</label>
      <input type="range" id="attr-${name}" data-name="${name}" min="0" max="1" step="0.01" value="${v}">
      <output id="out-${name}" for="attr-${name}"></output>`;
    box.appendChild(row);
    const input = row.querySelector("input");
    input.addEventListener("input", () => { showValue(name); scheduleEdit(); });
    showValue(name);
  }
}
function showValue(name, after) {
  const input = $(`attr-${name}`), out = $(`out-${name}`);
  const moved = Math.abs(Number(input.value) - state.start[name]) > 0.004;
  input.closest(".attr").classList.toggle("moved", moved);
  if (after !== undefined) out.dataset.after = after.toFixed(3);
  const tail = out.dataset.after !== undefined ? ` → ${out.dataset.after}` : "";
  out.textContent = `${Number(input.value).toFixed(2)}${tail}`;
}
function changes() {
  const out = [];
  for (const name of Object.keys(state.start)) {
    const v = Number($(`attr-${name}`).value);
    if (Math.abs(v - state.start[name]) > 0.004) out.push([name, v]);
  }
  return out;
}
function resetSliders() {
  for (const [name, v] of Object.entries(state.start)) $(`attr-${name}`).value = v;
  clearResult();
}

// ---- editing: debounced, the newest request wins -----------------------------------------------------
let timer = null;
function scheduleEdit() {
  clearTimeout(timer);
  timer = setTimeout(runEdit, DEBOUNCE_MS);
}
async function runEdit() {
  const set = changes();
  const seq = ++state.seq;
  if (state.controller) state.controller.abort();
  if (!set.length) { clearResult(); return; }
  const controller = state.controller = new AbortController();
  const q = new URLSearchParams({ face: String(state.faces[state.face].index), format: $("format").value,
                                  fixed_strength: $("fixed").checked, literal: $("literal").checked,
                                  unfiltered: $("unfiltered").checked });
  for (const [n, v] of set) q.append("set", `${n}=${v}`);
  const t0 = performance.now();
  say("Rendering…");
  try {
    const r = await post(`/v1/edit?${q}`, state.photo, controller.signal);
    if (seq !== state.seq) return;  // a newer request was sent: this answer is stale
    const url = `data:${r.media_type};base64,${r.image}`;
    $("result").src = url;
    $("compare").value = 100; applyCompare();
    const dl = $("download");
    dl.href = url; dl.download = `faceedit.${r.format === "jpeg" ? "jpg" : r.format}`;
    dl.setAttribute("aria-disabled", "false");
    const f = r.faces[0];
    for (const [name, p] of Object.entries(f.attributes_after)) showValue(name, p);
    const notes = [];
    if (Object.keys(f.auto_strength).length) notes.push("auto strength pushed: " + Object.entries(f.auto_strength).map(([n, m]) => `${n} ×${m}`).join(", "));
    if (Object.keys(f.implied).length) notes.push("implied: " + Object.entries(f.implied).map(([n, v]) => `${n}=${v}`).join(", "));
    $("notes").textContent = notes.join(" · ");
    $("latency").textContent = `last edit ${Math.round(performance.now() - t0)} ms (server ${Math.round(r.elapsed_ms)} ms)`;
    $("result").dataset.seq = String(seq);
    say("");
  } catch (e) {
    if (e.name === "AbortError" || seq !== state.seq) return;
    say(e.message, true);
    if (e.kind === "busy") setTimeout(() => { if (seq === state.seq) runEdit(); }, 1000 * e.retryAfter);
  }
}
function clearResult() {
  $("result").removeAttribute("src");
  delete $("result").dataset.seq;
  const dl = $("download");
  dl.removeAttribute("href"); dl.setAttribute("aria-disabled", "true");
  $("notes").textContent = "";
  for (const o of document.querySelectorAll("#sliders output")) delete o.dataset.after;
  for (const name of Object.keys(state.start)) showValue(name);
}
function applyCompare() {
  const v = Number($("compare").value);
  $("result").style.clipPath = `inset(0 ${100 - v}% 0 0)`;
  $("split").style.left = `${v}%`;
}

// ---- reconstruction ----------------------------------------------------------------------------------
async function loadReconstruction() {
  $("crop").removeAttribute("src"); $("recon").removeAttribute("src");
  const blob = state.photo, face = state.faces[state.face].index;
  try {
    const r = await post(`/v1/reconstruct?face=${face}`, blob);
    if (blob !== state.photo || face !== state.faces[state.face].index) return;
    $("crop").src = `data:image/png;base64,${r.faces[0].crop}`;
    $("recon").src = `data:image/png;base64,${r.faces[0].reconstruction}`;
  } catch (e) { /* the edit view still works; the message area keeps the edit's state */ }
}

// ---- new faces -------------------------------------------------------------------------------------
function buildSampleControls(names) {
  const box = $("sample-attrs");
  box.innerHTML = "";
  for (const name of names) {
    const label = document.createElement("label");
    label.innerHTML = `${name.replace(/_/g, " ")} <select data-name="${name}"><option value="">default</option>
      <option value="1">on</option><option value="0">off</option></select>`;
    box.appendChild(label);
  }
}
async function drawSamples() {
  const attributes = {};
  for (const s of document.querySelectorAll("#sample-attrs select")) if (s.value !== "") attributes[s.dataset.name] = Number(s.value);
  const body = { attributes, count: Number($("sample-count").value) || 8 };
  if ($("sample-seed").value !== "") body.seed = Number($("sample-seed").value);
  say("Drawing…", false, "sample-message");
  try {
    const res = await fetch("/v1/samples", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (!res.ok) throw await apiError(res);
    const r = await res.json();
    $("samples").innerHTML = "";
    r.images.forEach((b, i) => {
      const img = new Image();
      img.src = `data:${r.media_type};base64,${b}`;
      img.alt = `new face ${i + 1}`;
      $("samples").appendChild(img);
    });
    say("", false, "sample-message");
  } catch (e) { say(e.message, true, "sample-message"); }
}

// ---- wiring ----------------------------------------------------------------------------------------
function selectTab(which) {
  for (const t of ["edit", "sample"]) {
    const on = t === which;
    $(`tab-${t}`).setAttribute("aria-selected", String(on));
    $(`tab-${t}`).tabIndex = on ? 0 : -1;
    $(`view-${t}`).hidden = !on;
  }
  $(`tab-${which}`).focus();
}
$("tab-edit").addEventListener("click", () => selectTab("edit"));
$("tab-sample").addEventListener("click", () => selectTab("sample"));
for (const t of ["tab-edit", "tab-sample"]) $(t).addEventListener("keydown", (e) => {
  if (e.key === "ArrowRight" || e.key === "ArrowLeft") selectTab(t === "tab-edit" ? "sample" : "edit");
});
$("file").addEventListener("change", (e) => loadPhoto(e.target.files[0]));
$("example").addEventListener("click", async () => {
  const res = await fetch("/static/astronaut.jpg");
  loadPhoto(await res.blob());
});
const drop = $("drop");
for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); loadPhoto(e.dataTransfer.files[0]); });
drop.addEventListener("keydown", (e) => { if (e.key === "Enter") $("file").click(); });
document.addEventListener("paste", (e) => {
  const item = [...(e.clipboardData || {}).items || []].find((it) => it.type.startsWith("image/"));
  if (item) loadPhoto(item.getAsFile());
});
$("face-choice").addEventListener("change", (e) => chooseFace(Number(e.target.value)));
$("reset").addEventListener("click", resetSliders);
$("compare").addEventListener("input", applyCompare);
for (const id of ["fixed", "literal", "unfiltered", "format"]) $(id).addEventListener("change", scheduleEdit);
$("sample-go").addEventListener("click", drawSamples);
loadModel();
