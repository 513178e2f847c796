// facelab web page: plain JavaScript, no build step, talks only to this server's /v1 API.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { features: {}, frames: 0, cam: null };

// ---- small helpers ----------------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);  // text via append: never HTML
  return node;
}

function status(text, isError = false) {
  const s = $("#status");
  s.textContent = text || "";
  s.classList.toggle("error", isError);
}

function apiKey() { return localStorage.getItem("facelab-key") || ""; }
function gallery() { return $("#gallery-select").value || "default"; }

async function api(path, { method = "GET", body = null, json = null } = {}) {
  const headers = {};
  const key = apiKey();
  if (key) headers["Authorization"] = "Bearer " + key;
  if (json !== null) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  const res = await fetch(path, { method, body, headers });
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    const err = new Error((data && data.error && data.error.message) || res.statusText);
    err.code = data && data.error && data.error.code;
    err.status = res.status;
    throw err;
  }
  return data;
}

function imageForm(fields) {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) fd.append(k, v, v.name || "frame.jpg");
  return fd;
}

const pct = (x) => (100 * x).toFixed(0) + "%";

function attributeText(name, a) {
  if (a === null || typeof a !== "object") return String(a);
  if (a.value === null && a.reason) return "n/a (" + a.reason + ")";
  if (name === "age" && typeof a.value === "number") return Math.round(a.value) + " years";
  if (name === "skin_tone") return (a.category || "") + (a.emoji_modifier ? " " + a.emoji_modifier : "");
  let text = a.value !== undefined ? String(a.value) : JSON.stringify(a);
  if (typeof a.probability === "number") text += " (" + pct(a.probability) + ")";
  else if (a.probabilities && a.value in a.probabilities) text += " (" + pct(a.probabilities[a.value]) + ")";
  return text;
}

function identityText(face) {
  const id = face.identity;
  if (!id) return null;
  const sim = (m) => (m && typeof m.similarity === "number" ? " " + m.similarity.toFixed(2) : "");
  // a face too small, blurred or turned for a reliable answer says so (the reasons are in the card's title)
  const unsure = (id.uncertain || []).length ? " (uncertain)" : "";
  if (id.best && id.best.person) return id.best.person + sim(id.best) + unsure;
  const near = id.matches && id.matches[0];
  return "unknown" + sim(near) + unsure;
}

function identityDetail(face) {
  const id = face.identity || {};
  const parts = [];
  if (typeof id.threshold === "number") parts.push(`threshold ${id.threshold.toFixed(3)}` + (id.threshold_source ? ` (${id.threshold_source})` : ""));
  return parts.concat(id.uncertain || []).join("; ");
}

function emoticonImg(svg) {
  // An <img> never runs scripts inside an SVG, unlike inline SVG in the DOM.
  return el("img", { class: "emoticon", alt: "emoticon", src: "data:image/svg+xml;charset=utf-8," + encodeURIComponent(svg) });
}

// Boxes are absolutely placed divs in percent of the image, so they follow the image's displayed size.
function drawBoxes(stage, faces, width, height) {
  stage.querySelectorAll(".box").forEach((b) => b.remove());
  faces.forEach((f, i) => {
    const label = identityText(f) || "#" + i;
    const box = el("div", { class: "box" + (f.identity && !(f.identity.best && f.identity.best.person) ? " unknown" : "") },
      el("span", { class: "label" }, label));
    box.style.left = pct(f.box.x / width); box.style.top = pct(f.box.y / height);
    box.style.width = pct(f.box.width / width); box.style.height = pct(f.box.height / height);
    stage.append(box);
  });
}

function faceCard(f, i, emoticonSvg) {
  const attrs = f.attributes || {};
  const svg = emoticonSvg || (attrs.emoticon && attrs.emoticon.svg);
  const dl = el("dl");
  const who = identityText(f);
  if (who !== null) dl.append(el("dt", {}, "who"), el("dd", { class: "who", title: identityDetail(f) }, who));
  for (const [name, a] of Object.entries(attrs)) {
    if (name === "emoticon") continue;
    dl.append(el("dt", {}, name.replace("_", " ")), el("dd", {}, attributeText(name, a)));
  }
  if (f.pose) dl.append(el("dt", {}, "pose"), el("dd", {}, `yaw ${f.pose.yaw}° pitch ${f.pose.pitch}°`));
  return el("li", { class: "face" }, el("strong", {}, "Face #" + i), svg ? emoticonImg(svg) : null, dl);
}

// ---- features: show what the server offers ---------------------------------------------------------------
async function loadFeatures() {
  const health = await api("/v1/health");
  state.features = health.features;
  const missing = [];
  document.querySelectorAll("[data-feature]").forEach((node) => {
    const on = !!state.features[node.dataset.feature];
    node.hidden = !on;
    if (!on && node.tagName === "BUTTON") missing.push(node.textContent);
    if (!on && node.type === "checkbox") { node.checked = false; node.parentElement.hidden = true; }
  });
  if (missing.length) $("#unavailable").textContent = "Not in this build yet: " + missing.join(", ") + ".";
  if (state.features.galleries) await loadGalleries();
}

// ---- tabs ---------------------------------------------------------------------------------------------------
function showTab(name) {
  status("");
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.id === "tab-" + name));
  if (name === "gallery") loadPeople();
}

// ---- photo ------------------------------------------------------------------------------------------------
async function analysePhoto(file) {
  status("Looking at " + file.name + "…");
  const img = $("#photo-img");
  const url = URL.createObjectURL(file);
  img.src = url;
  $("#photo-stage").hidden = false;
  $("#photo-faces").replaceChildren();
  try {
    const q = new URLSearchParams({ attributes: "true", identify: String(!!state.features.identify) });
    if (state.features.galleries) q.set("gallery", gallery());
    const res = await api("/v1/recognize?" + q, { method: "POST", body: imageForm({ image: file }) });
    let svgs = [];
    const hasSvg = res.faces.some((f) => f.attributes && f.attributes.emoticon);
    if (state.features.emoticon && !hasSvg && res.faces.length && !res.attributes_error) {
      try {
        svgs = (await api("/v1/emoticon", { method: "POST", body: imageForm({ image: file }) })).emoticons;
      } catch (err) { svgs = []; }  // emoticons are extra: the faces are still shown
    }
    drawBoxes($("#photo-stage"), res.faces, res.width, res.height);
    $("#photo-faces").replaceChildren(...res.faces.map((f, i) => faceCard(f, i, svgs[i])));
    let extra = res.identify_error ? " (gallery: " + res.identify_error.message + ")" : "";
    if (res.attributes_error) extra += " (attributes: " + res.attributes_error.message + ")";
    status(`${res.faces.length} face${res.faces.length === 1 ? "" : "s"} found in ${res.ms} ms${extra}`);
    $("#photo-stage").dataset.faces = String(res.faces.length);
  } catch (err) {
    drawBoxes($("#photo-stage"), [], 1, 1);
    status(err.message, true);
  }
}

function setupDrop() {
  const drop = $("#drop");
  $("#photo-file").addEventListener("change", (e) => e.target.files[0] && analysePhoto(e.target.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) analysePhoto(file);
  });
}

// ---- webcam: one frame in flight at a time; frames the server cannot take are never sent (dropped) ---------
async function startCam() {
  const video = $("#cam-video");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    status("Webcam: " + err.message, true);
    return;
  }
  video.srcObject = stream;
  await video.play();
  const proto = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(proto + location.host + "/v1/stream");
  const canvas = document.createElement("canvas");
  const cam = { stream, ws, canvas, busy: false, answers: [], running: true };
  state.cam = cam;
  $("#cam-start").disabled = true;
  $("#cam-stop").disabled = false;

  const config = () => ({ gallery: state.features.galleries ? gallery() : null, key: apiKey() || undefined,
    attributes: $("#cam-attributes").checked, identify: !!state.features.identify });

  const sendFrame = () => {
    if (!cam.running || cam.busy || ws.readyState !== WebSocket.OPEN || !video.videoWidth) return;
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    cam.busy = true;
    canvas.toBlob((blob) => (blob ? ws.send(blob) : (cam.busy = false)), "image/jpeg", 0.8);
  };
  ws.onopen = () => { ws.send(JSON.stringify(config())); sendFrame(); };
  ws.onmessage = (ev) => {
    cam.busy = false;
    const msg = JSON.parse(ev.data);
    if (msg.type === "result") {
      state.frames += 1;
      const now = performance.now();
      cam.answers.push(now);
      while (cam.answers.length && now - cam.answers[0] > 2000) cam.answers.shift();
      const fps = cam.answers.length / 2;
      drawBoxes($("#cam-stage"), msg.faces, msg.width, msg.height);
      labelCamFaces(msg.faces);
      $("#cam-stats").textContent = `${fps.toFixed(1)} fps · ${msg.ms} ms/frame · ${msg.faces.length} face(s)`;
      $("#cam-stage").dataset.frames = String(state.frames);
      $("#cam-stage").dataset.faces = String(msg.faces.length);
    } else if (msg.type === "error") {
      $("#cam-stats").textContent = msg.error.message;
    }
    // Next frame right away: the rate adapts to the server; nothing queues.
    requestAnimationFrame(sendFrame);
  };
  ws.onclose = () => { if (cam.running) status("Webcam stream closed by the server", true); stopCam(); };
  $("#cam-attributes").onchange = () => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(config()));
  $("#gallery-select").addEventListener("change", () => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(config())));
}

function labelCamFaces(faces) {
  // Attributes under the name, in the live box.
  const boxes = $("#cam-stage").querySelectorAll(".box");
  faces.forEach((f, i) => {
    const a = f.attributes || {};
    const bits = ["age", "gender", "expression", "eyewear", "mask"].filter((n) => a[n] && a[n].value !== null && a[n].value !== undefined)
      .map((n) => attributeText(n, a[n]));
    if (bits.length && boxes[i]) boxes[i].append(el("span", { class: "attrs" }, bits.join(" · ")));
    if (a.emoticon && a.emoticon.svg && boxes[i]) boxes[i].append(emoticonImg(a.emoticon.svg));
  });
}

function stopCam() {
  const cam = state.cam;
  if (!cam) return;
  cam.running = false;
  cam.stream.getTracks().forEach((t) => t.stop());
  if (cam.ws.readyState <= WebSocket.OPEN) cam.ws.close();
  state.cam = null;
  $("#cam-start").disabled = false;
  $("#cam-stop").disabled = true;
}

async function enrolFromCam(e) {
  e.preventDefault();
  const video = $("#cam-video");
  if (!video.videoWidth) { status("Start the webcam first", true); return; }
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  const blob = await new Promise((r) => canvas.toBlob(r, "image/jpeg", 0.92));
  await addPhoto($("#cam-enrol-name").value.trim(), new File([blob], "webcam.jpg", { type: "image/jpeg" }), "webcam");
}

// ---- verify -------------------------------------------------------------------------------------------------
async function verify(e) {
  e.preventDefault();
  const a = $("#verify-a").files[0], b = $("#verify-b").files[0];
  for (const [f, id] of [[a, "#verify-img-a"], [b, "#verify-img-b"]]) { $(id).src = URL.createObjectURL(f); $(id).hidden = false; }
  const out = $("#verify-result");
  out.textContent = "Comparing…";
  out.className = "verdict";
  try {
    const r = await api("/v1/verify", { method: "POST", body: imageForm({ image_a: a, image_b: b }) });
    // the threshold and the false-accept rate it stands for: "same" is only as reliable as that rate
    out.textContent = `${r.same ? "Same person" : "Different people"}: similarity ${r.similarity.toFixed(3)}, threshold ${r.threshold.toFixed(3)} (${r.model}, ${r.operating_point || "FAR not stated"})`
      + ((r.uncertain || []).length ? ` — uncertain: ${r.uncertain.join("; ")}` : "");
    out.classList.add(r.same ? "same" : "different");
  } catch (err) {
    out.textContent = err.message;
    out.classList.add("error");
  }
}

// ---- look-alike ---------------------------------------------------------------------------------------------
async function lookalike(e) {
  e.preventDefault();
  const file = $("#lookalike-file").files[0];
  $("#lookalike-img").src = URL.createObjectURL(file);
  $("#lookalike-img").hidden = false;
  const list = $("#lookalike-results");
  list.replaceChildren();
  try {
    const r = await api("/v1/lookalike?gallery=" + encodeURIComponent(gallery()), { method: "POST", body: imageForm({ image: file }) });
    if (!r.faces.length) status("No face found", true);
    r.faces.forEach((f, i) => {
      const sim = typeof f.similarity === "number" ? f.similarity.toFixed(3) : "?";
      const photo = f.photo ? ` — photo ${f.photo.id}${f.photo.source ? " (" + f.photo.source + ")" : ""}` : "";
      const item = el("li", { class: "face" }, el("strong", {}, `Face #${i}: `),
        f.person ? `looks most like ${f.person}, similarity ${sim}${photo}` : "the gallery is empty");
      list.append(item);
      if (f.photo && f.photo.id !== undefined) showKeptFace(item, f.photo.id);
    });
    if (r.faces.length) status("");
  } catch (err) { status(err.message, true); }
}

// The look-alike's face, when the gallery kept a crop of it (photos added with "keep face crop"); none: no image.
async function showKeptFace(item, photoId) {
  const headers = {};
  if (apiKey()) headers["Authorization"] = "Bearer " + apiKey();
  const res = await fetch(`/v1/galleries/${encodeURIComponent(gallery())}/photos/${photoId}/face`, { headers });
  if (!res.ok) return;
  item.append(el("img", { class: "kept-face", alt: "the look-alike's face", src: URL.createObjectURL(await res.blob()) }));
}

// ---- gallery ------------------------------------------------------------------------------------------------
async function loadGalleries(select = null) {
  const r = await api("/v1/galleries");
  const sel = $("#gallery-select");
  const keep = select || sel.value || "default";
  sel.replaceChildren(...r.galleries.map((g) => el("option", { value: g.name }, g.name)));
  sel.value = r.galleries.some((g) => g.name === keep) ? keep : "default";
}

async function loadPeople() {
  if (!state.features.galleries) return;
  const list = $("#people");
  try {
    const [g, r] = await Promise.all([api("/v1/galleries/" + encodeURIComponent(gallery())),
      api("/v1/galleries/" + encodeURIComponent(gallery()) + "/people")]);
    const stats = g.stats || {};
    $("#gallery-stats").textContent = `Gallery "${gallery()}": ` + Object.entries(stats)
      .filter(([, v]) => typeof v !== "object").map(([k, v]) => `${k.replace("_", " ")} ${v}`).join(", ");
    list.replaceChildren(...r.people.map(personItem));
    list.dataset.count = String(r.people.length);
  } catch (err) { status(err.message, true); }
}

function personItem(p) {
  const photos = Array.isArray(p.photos) ? p.photos : null;
  const count = photos ? photos.length : p.photos;
  const item = el("li", { class: "person", "data-name": p.name }, el("strong", {}, p.name),
    el("span", { class: "muted" }, ` ${count ?? "?"} photo${count === 1 ? "" : "s"}` +
      (Array.isArray(p.sources) && p.sources.length ? ` (${p.sources.join(", ")}) ` : " ")),
    el("button", { class: "danger", onclick: () => deletePerson(p.name) }, "Delete"));
  if (photos) {
    item.append(el("ul", { class: "photos" }, ...photos.map((ph) => {
      const id = typeof ph === "object" ? ph.id : ph;
      const label = typeof ph === "object" && ph.source ? ph.source : "photo " + id;
      return el("li", {}, label, " ", el("button", { class: "small", onclick: () => deletePhoto(id) }, "×"));
    })));
  }
  return item;
}

function needKey(err) {
  if (err.status === 401 || err.status === 403) return err.message + " — paste a key from `facelab serve --create-key` in the API key box.";
  return err.message;
}

async function addPhoto(name, file, source, keepFace = false) {
  const params = new URLSearchParams();
  if (source) params.set("source", source);
  if (keepFace) params.set("keep_face", "true");
  const q = params.toString() ? "?" + params.toString() : "";
  try {
    await api(`/v1/galleries/${encodeURIComponent(gallery())}/people/${encodeURIComponent(name)}/photos${q}`,
      { method: "POST", body: imageForm({ image: file }) });
    status(`Added a photo of ${name} to "${gallery()}"`);
    await loadPeople();
  } catch (err) { status(needKey(err), true); }
}

async function deletePerson(name) {
  if (!confirm(`Delete ${name} and all their photos?`)) return;
  try {
    await api(`/v1/galleries/${encodeURIComponent(gallery())}/people/${encodeURIComponent(name)}`, { method: "DELETE" });
    status(`Deleted ${name}`);
    await loadPeople();
  } catch (err) { status(needKey(err), true); }
}

async function deletePhoto(id) {
  try {
    await api(`/v1/galleries/${encodeURIComponent(gallery())}/photos/${encodeURIComponent(id)}`, { method: "DELETE" });
    await loadPeople();
  } catch (err) { status(needKey(err), true); }
}

async function createGallery(e) {
  e.preventDefault();
  const name = $("#gallery-new-name").value.trim();
  try {
    await api("/v1/galleries", { method: "POST", json: { name } });
    await loadGalleries(name);
    status(`Created gallery "${name}"`);
    await loadPeople();
  } catch (err) { status(needKey(err), true); }
}

// Labelling mistakes (GET .../check): misfiled photos, each with a button to remove it, and people who may be one.
async function checkLabels() {
  const list = $("#gallery-check-results");
  list.replaceChildren();
  try {
    const r = await api(`/v1/galleries/${encodeURIComponent(gallery())}/check`);
    r.suspect_photos.forEach((p) => list.append(el("li", { class: "suspect" },
      `photo ${p.photo_id}${p.source ? " (" + p.source + ")" : ""} under ${p.person}: ${p.reason} `,
      el("button", { class: "small", onclick: async () => { await deletePhoto(p.photo_id); await checkLabels(); } },
        "Remove"))));
    r.similar_people.forEach((p) => list.append(el("li", { class: "pair" },
      `${p.a} and ${p.b} may be one person (${Math.round(100 * Math.max(p.share_a_like_b, p.share_b_like_a))} % of one's photos look like the other)`)));
    if (!list.children.length) {
      list.append(el("li", { class: "clean" }, `Nothing found (${r.photos_checked} photos of ${r.people_checked} people checked; people with one photo cannot be)`));
    }
  } catch (err) { status(needKey(err), true); }
}

async function deleteGallery() {
  const name = gallery();
  if (!confirm(`Delete the gallery "${name}" and everyone in it?`)) return;
  try {
    await api("/v1/galleries/" + encodeURIComponent(name), { method: "DELETE" });
    await loadGalleries("default");
    status(`Deleted gallery "${name}"`);
    await loadPeople();
  } catch (err) { status(needKey(err), true); }
}

// ---- start --------------------------------------------------------------------------------------------------
function takeKeyFromUrl() {
  // `facelab serve` prints a link with #key=...: the fragment never reaches the server or its logs.
  const m = location.hash.match(/key=([\w-]+)/);
  if (m) { localStorage.setItem("facelab-key", m[1]); history.replaceState(null, "", location.pathname); }
  $("#api-key").value = apiKey();
  $("#api-key").addEventListener("change", (e) => localStorage.setItem("facelab-key", e.target.value.trim()));
}

document.addEventListener("DOMContentLoaded", async () => {
  takeKeyFromUrl();
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  setupDrop();
  $("#cam-start").addEventListener("click", startCam);
  $("#cam-stop").addEventListener("click", stopCam);
  $("#cam-enrol").addEventListener("submit", enrolFromCam);
  $("#verify-form").addEventListener("submit", verify);
  $("#lookalike-form").addEventListener("submit", lookalike);
  $("#gallery-create").addEventListener("submit", createGallery);
  $("#gallery-delete").addEventListener("click", deleteGallery);
  $("#gallery-check").addEventListener("click", checkLabels);
  $("#person-add").addEventListener("submit", (e) => {
    e.preventDefault();
    addPhoto($("#person-name").value.trim(), $("#person-file").files[0], null, $("#person-keep-face").checked);
  });
  $("#gallery-select").addEventListener("change", loadPeople);
  try {
    await loadFeatures();
    document.body.dataset.ready = "1";
  } catch (err) { status("Cannot reach the facelab server: " + err.message, true); }
});
