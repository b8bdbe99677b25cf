// The faceedit demo page: plain JavaScript, no libraries, no network beyond this server.
"use strict";
const $ = (id) => document.getElementById(id);
const DEBOUNCE_MS = 150;
const MOVED = 0.15;    // an attribute the user did not touch whose reading moved more than this is shown as moved
const state = { photo: null, faces: [], face: 0, start: {}, before: {}, seq: 0, controller: null, timer: null,
                names: [], tiers: {}, photoUrl: null, model: null };

// ---- attribute names in plain words ----------------------------------------------------------------
// The API's names are CelebA's. A name in TURNED is shown the other way round: the "Beard" slider shows
// 1 - No_Beard's reading and sends No_Beard = 1 - value (the map is its own inverse).
const LABELS = {
  Bald: "Bald", Bangs: "Bangs", Black_Hair: "Black hair", Blond_Hair: "Blond hair", Brown_Hair: "Brown hair",
  Gray_Hair: "Grey hair", Bushy_Eyebrows: "Bushy eyebrows", Eyeglasses: "Glasses", Male: "Male",
  Mouth_Slightly_Open: "Mouth open", Mustache: "Mustache", No_Beard: "Beard", Pale_Skin: "Pale skin",
  Young: "Young", Smiling: "Smiling", Heavy_Makeup: "Heavy make-up", Wearing_Hat: "Hat", Goatee: "Goatee",
};
const TURNED = new Set(["No_Beard"]);
const turned = (name) => TURNED.has(name) || name.startsWith("No_");
function label(name) {
  if (LABELS[name]) return LABELS[name];
  const words = name.replace(/^No_/, "").replace(/_/g, " ").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}
const shown = (name, v) => (turned(name) ? 1 - v : v);   // API value <-> slider value, both ways
const fmt = (v) => Number(v).toFixed(2);
const side = (v) => (v >= 0.5 ? "on" : "off");

// ---- messages: the API's error kinds in words for someone using the page ------------------------------
const FRIENDLY = {
  no_face: "No face found in this photo: try a sharper one where the face looks at the camera.",
  bad_image: "That file is not an image this page can read: try a JPEG, PNG or WebP photo.",
  unsupported_media_type: "That kind of file is not accepted: try a JPEG, PNG or WebP photo.",
  too_big: "That file is too big for this server: try a smaller photo.",
  too_many_pixels: "That photo has too many pixels for this server: try a smaller one.",
  too_small: "That photo is too small to edit: try a larger one.",
  bad_request: "The server would not make this edit: press Reset and try again.",
  busy: "The server is busy: trying again in a moment…",
  not_ready: "The server is still starting: try again in a moment.",
  stopping: "The server is restarting: trying again in a moment…",
  timeout: "The server took too long to answer: try again, or with a smaller photo.",
  internal: "Something went wrong on the server: try again; if it keeps happening, tell whoever runs it.",
  not_found: "This page does not match the server (a page from another version?): reload the page.",
  method_not_allowed: "This page does not match the server (a page from another version?): reload the page.",
  network: "Cannot reach the server: is it still running?",
};
const BY_STATUS = { 400: "bad_image", 413: "too_big", 415: "unsupported_media_type", 422: "bad_request",
                    503: "busy", 504: "timeout" };
function say(text, bad = false, where = "message") {
  const el = $(where);
  el.textContent = text || "";
  el.classList.toggle("bad", !!bad);
}
async function apiError(res) {
  let body = {};
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  const kind = body.kind || BY_STATUS[res.status] || (res.status >= 500 ? "internal" : "http");
  const ref = body.request_id || res.headers.get("X-Request-ID");
  // the server's own text is written for the command line (it may name flags): kept for the console only
  if (body.error) console.warn(`faceedit: ${res.status} ${kind}: ${body.error}`);
  const text = FRIENDLY[kind] || `The server could not do this (error ${res.status}): try again.`;
  const err = new Error(ref ? `${text} (reference ${ref})` : text);
  err.kind = kind;
  err.retryAfter = Number(res.headers.get("Retry-After") || 1);
  return err;
}
async function post(url, body, signal) {
  let res;
  try {
    res = await fetch(url, { method: "POST", body, signal });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    const err = new Error(FRIENDLY.network); err.kind = "network"; throw err;
  }
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
    state.tiers = m.tiers || {};   // absent or empty (an unrated model): every attribute is stable
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
  cancelEdit();   // answers for the previous photo are now stale
  say("Reading the faces…");
  clearResult();
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = URL.createObjectURL(blob);
  $("photo").src = state.photoUrl;
  try {
    const [info] = await Promise.all([post("/v1/attributes?face=all", blob), state.model]);
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
  cancelEdit();
  state.face = i;
  $("face-choice").value = String(i);
  [...$("boxes").children].forEach((b, k) => b.setAttribute("aria-pressed", String(k === i)));
  buildSliders(state.faces[i].attributes);
  clearResult();
  loadReconstruction();
}

// ---- sliders: the API's range (-1..2), 0 and 1 marked; stable attributes first, experimental apart -----
function buildSliders(probs) {
  const stable = $("sliders"), experimental = $("sliders-experimental");
  stable.innerHTML = ""; experimental.innerHTML = "";
  state.start = {}; state.before = {};
  for (const [name, p] of Object.entries(probs)) {
    const before = shown(name, p);
    const v = Math.round(before * 100) / 100;
    state.start[name] = v;
    state.before[name] = before;
    const row = document.createElement("div");
    row.className = "attr";
    row.id = `row-${name}`;
    row.dataset.name = name;
    row.innerHTML = `<label for="attr-${name}"></label>
      <input type="range" id="attr-${name}" data-name="${name}" min="-1" max="2" step="0.01" value="${v}"
             list="marks" aria-describedby="out-${name} note-${name}">
      <span class="asked" id="val-${name}"></span>
      <div class="reading"><output id="out-${name}" for="attr-${name}"></output>
        <span class="note" id="note-${name}"></span></div>`;
    row.querySelector("label").textContent = label(name);
    row.querySelector("label").title = turned(name) ? `${name}, the other way round` : name;
    (state.tiers[name] === "experimental" ? experimental : stable).appendChild(row);
    const input = row.querySelector("input");
    input.addEventListener("input", () => { showValue(name); scheduleEdit(); });
    showValue(name);
  }
  $("experimental").hidden = !experimental.children.length;
}
function showValue(name, after, note = "", how = "") {
  const input = $(`attr-${name}`), out = $(`out-${name}`);
  const v = Number(input.value);
  const row = input.closest(".attr");
  row.classList.toggle("moved", Math.abs(v - state.start[name]) > 0.004);
  $(`val-${name}`).textContent = fmt(v);
  row.classList.toggle("beyond", v > 1 || v < 0);   // a stronger (> 1) or reversed (< 0) edit
  if (after !== undefined) out.dataset.after = after.toFixed(3);
  out.textContent = out.dataset.after !== undefined ? `${fmt(state.before[name])} → ${fmt(out.dataset.after)}`
                                                    : `reads ${fmt(state.before[name])}`;
  $(`note-${name}`).textContent = note;
  row.classList.remove("not-taken", "drift", "implied", "took");
  if (how) row.classList.add(how);
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
  cancelEdit();   // a request in flight is aborted, and its answer ignored if it comes anyway
  for (const [name, v] of Object.entries(state.start)) $(`attr-${name}`).value = v;
  clearResult();
  say("");
}

// ---- editing: debounced, the newest request wins -----------------------------------------------------
function scheduleEdit() {
  clearTimeout(state.timer);
  state.timer = setTimeout(runEdit, DEBOUNCE_MS);
}
function cancelEdit() {
  clearTimeout(state.timer);
  state.seq++;   // any answer still on its way is now stale
  if (state.controller) state.controller.abort();
  state.controller = null;
}
async function runEdit() {
  cancelEdit();
  const seq = state.seq;
  const set = changes();
  if (!set.length) { clearResult(); say(""); return; }
  const controller = state.controller = new AbortController();
  const q = new URLSearchParams({ face: String(state.faces[state.face].index), format: $("format").value,
                                  fixed_strength: $("fixed").checked, literal: $("literal").checked,
                                  unfiltered: $("unfiltered").checked });
  for (const [n, v] of set) q.append("set", `${n}=${fmt(shown(n, v))}`);
  const t0 = performance.now();
  say("Rendering…");
  $("edit-state").textContent = "busy";
  try {
    const r = await post(`/v1/edit?${q}`, state.photo, controller.signal);
    if (seq !== state.seq) return;  // a newer request was sent, or Reset pressed: this answer is stale
    const url = `data:${r.media_type};base64,${r.image}`;
    $("result").src = url;
    $("compare").value = 100; applyCompare();
    const dl = $("download");
    dl.href = url; dl.download = `faceedit.${r.format === "jpeg" ? "jpg" : r.format}`;
    dl.setAttribute("aria-disabled", "false");
    state.lastFace = r.faces[0];   // (the tests read the API's answer here)
    if (r.faces[0].attributes_after) showReadings(r.faces[0], new Map(set));
    else $("summary").textContent = "This face is too small to edit: try a photo where it is larger.";
    $("latency").textContent = `last edit ${Math.round(performance.now() - t0)} ms (server ${Math.round(r.elapsed_ms)} ms)`;
    $("result").dataset.seq = String(seq);
    say("");
  } catch (e) {
    if (e.name === "AbortError" || seq !== state.seq) return;
    say(e.message, true);
    if (e.kind === "busy" || e.kind === "stopping") setTimeout(() => { if (seq === state.seq) runEdit(); }, 1000 * e.retryAfter);
  } finally {
    if (seq === state.seq) { $("edit-state").textContent = ""; state.controller = null; }
  }
}

// Every attribute: the model's reading before -> after. An asked edit whose reading stays on the old side
// of 0.5 did not take; an untouched attribute that moved more than MOVED moved by itself.
function showReadings(face, asked) {
  const implied = face.implied || {};
  const took = [], notTaken = [], drift = [], rules = [];
  for (const [name, p] of Object.entries(face.attributes_after)) {
    const after = shown(name, p), before = state.before[name];
    if (asked.has(name) || name in implied) {
      const want = asked.has(name) ? asked.get(name) : shown(name, implied[name]);
      const ok = (want >= 0.5) === (after >= 0.5);
      const why = ok ? "" : `did not take: the model still reads it as ${side(after)}`;
      if (asked.has(name)) {
        (ok ? took : notTaken).push(`${label(name)} (asked ${fmt(want)}, reads ${fmt(after)})`);
        showValue(name, after, why, ok ? "took" : "not-taken");
      } else {
        rules.push(`${label(name)} ${side(want)}${ok ? "" : " (did not take)"}`);
        showValue(name, after, `set ${side(want)} with your edit${ok ? "" : "; " + why}`, ok ? "implied" : "not-taken");
      }
    } else if (Math.abs(after - before) > MOVED) {
      drift.push(`${label(name)} ${fmt(before)} → ${fmt(after)}`);
      showValue(name, after, "moved by itself", "drift");
    } else {
      showValue(name, after);
    }
  }
  const parts = [];
  if (notTaken.length) parts.push(`Did not take: ${notTaken.join(", ")}: the model still reads the face the old way ` +
                                  "(try a stronger value, beyond 1 or below 0).");
  if (took.length) parts.push(`Took: ${took.join(", ")}.`);
  if (rules.length) parts.push(`Set with it: ${rules.join(", ")}.`);
  if (drift.length) parts.push(`Also moved, untouched: ${drift.join(", ")}.`);
  const summary = $("summary");
  summary.textContent = parts.join(" ");
  summary.classList.toggle("bad", notTaken.length > 0);
  const pushed = Object.entries(face.auto_strength || {});
  $("notes").textContent = pushed.length ? "auto strength pushed: " + pushed.map(([n, m]) => `${label(n)} ×${m}`).join(", ") : "";
}
function clearResult() {
  $("result").removeAttribute("src");
  delete $("result").dataset.seq;
  const dl = $("download");
  dl.removeAttribute("href"); dl.setAttribute("aria-disabled", "true");
  $("notes").textContent = "";
  $("summary").textContent = "";
  $("summary").classList.remove("bad");
  $("edit-state").textContent = "";
  for (const o of document.querySelectorAll(".attr output")) delete o.dataset.after;
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
    const wrap = document.createElement("label");
    wrap.append(`${label(name)} `);
    const sel = document.createElement("select");
    sel.dataset.name = name;
    for (const [value, text] of [["", "default"], ["1", "on"], ["0", "off"]]) sel.add(new Option(text, value));
    wrap.appendChild(sel);
    box.appendChild(wrap);
  }
}
async function drawSamples() {
  const attributes = {};
  for (const s of document.querySelectorAll("#sample-attrs select")) {
    if (s.value !== "") attributes[s.dataset.name] = shown(s.dataset.name, Number(s.value));
  }
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
    // how they were drawn (/v1/samples' prior and seed), and attributes asked for that the model draws badly
    $("sample-how").textContent = `Drawn from the ${r.prior.kind} latent prior (temperature ${r.prior.temperature}), `
      + `seed ${r.seed}.` + r.warnings.map((w) => ` Warning: ${w}.`).join("");
    say("", false, "sample-message");
  } catch (e) { say(e.kind ? e.message : FRIENDLY.network, true, "sample-message"); }
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
state.model = loadModel();
