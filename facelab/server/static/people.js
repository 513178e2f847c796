// facelab page, People view: a photo library's named people and unnamed groups (REST: .../library/...).
// Uses app.js's helpers ($, el, api, gallery, apiKey, status). Mouse: drag a card onto another to merge them,
// drag a face onto a card to move it there; buttons name, split, move, reject ("not this person") and forget.
"use strict";

const people = { open: null, thumbs: new Map() };
const libBase = () => `/v1/galleries/${encodeURIComponent(gallery())}/library`;

async function thumbUrl(faceId) {
  if (faceId === null || faceId === undefined) return null;
  const key = gallery() + ":" + faceId;
  if (people.thumbs.has(key)) return people.thumbs.get(key);
  const headers = {};
  if (apiKey()) headers["Authorization"] = "Bearer " + apiKey();
  const res = await fetch(`${libBase()}/faces/${faceId}/thumb`, { headers });
  const url = res.ok ? URL.createObjectURL(await res.blob()) : null;
  people.thumbs.set(key, url);
  return url;
}

function faceImg(faceId, alt) {
  const img = el("img", { class: "face-thumb", alt, "data-face": String(faceId) });
  thumbUrl(faceId).then((url) => { if (url) img.src = url; });
  return img;
}

async function libraryCall(path, json, method = "POST") {
  try {
    const r = await api(libBase() + path, { method, json });
    await loadLibrary();
    return r;
  } catch (err) { status(needKey(err), true); return null; }
}

// ---- the grid of people and groups --------------------------------------------------------------------------
async function loadLibrary() {
  const grid = $("#people-grid");
  try {
    const r = await api(libBase() + "/people");
    const cards = [
      ...r.people.filter((p) => p.faces > 0).map((p) => card(p.name, p.name, p.faces, p.photos, p.cover_face, true)),
      ...r.groups.map((g) => card(g.group, "Unnamed " + g.group, g.faces, g.photos, g.cover_face, false)),
    ];
    grid.replaceChildren(...cards);
    grid.dataset.count = String(cards.length);
    $("#people-unsorted").textContent = `${r.unsorted_faces} unsorted faces`;
    if (people.open) await openCard(people.open, false);
  } catch (err) { status(err.message, true); }
}

function card(ref, label, faces, photos, cover, named) {
  const node = el("li", { class: "card" + (named ? " named" : ""), "data-ref": ref, draggable: "true",
    title: "drag onto another card to merge; drop a face here to move it" },
  cover !== null ? faceImg(cover, "cover face of " + label) : null,
  el("strong", {}, label), el("span", { class: "muted" }, ` ${faces} face${faces === 1 ? "" : "s"}, ${photos} photo${photos === 1 ? "" : "s"}`));
  node.addEventListener("click", () => openCard(ref));
  node.addEventListener("dragstart", (e) => e.dataTransfer.setData("text/plain", "card:" + ref));
  node.addEventListener("dragover", (e) => { e.preventDefault(); node.classList.add("over"); });
  node.addEventListener("dragleave", () => node.classList.remove("over"));
  node.addEventListener("drop", async (e) => {
    e.preventDefault();
    node.classList.remove("over");
    const what = e.dataTransfer.getData("text/plain");
    if (what.startsWith("card:") && what.slice(5) !== ref) {
      if (await libraryCall("/merge", { source: what.slice(5), into: ref })) status(`Merged ${what.slice(5)} into ${ref}`);
    } else if (what.startsWith("face:")) {
      if (await libraryCall("/move", { face: Number(what.slice(5)), to: ref })) status(`Moved face ${what.slice(5)} to ${ref}`);
    }
  });
  return node;
}

// ---- one person's or group's faces --------------------------------------------------------------------------
async function openCard(ref, scroll = true) {
  people.open = ref;
  const box = $("#people-detail");
  let r;
  try { r = await api(libBase() + "/faces?" + new URLSearchParams({ who: ref })); } catch (err) {
    people.open = null; box.hidden = true; return;
  }
  box.hidden = false;
  $("#people-title").textContent = ref.startsWith("group:") ? "Unnamed " + ref : ref;
  const list = $("#people-faces");
  list.replaceChildren(...r.faces.map((f) => {
    const item = el("li", { class: "lib-face", draggable: "true", "data-face": String(f.id),
      title: `${f.source} (face ${f.face_index + 1} of ${f.n_faces})` },
    el("label", {}, el("input", { type: "checkbox", value: String(f.id) }), faceImg(f.id, "face " + f.id)));
    item.addEventListener("dragstart", (e) => e.dataTransfer.setData("text/plain", "face:" + f.id));
    return item;
  }));
  list.dataset.count = String(r.faces.length);
  const photos = await api(libBase() + "/photos?" + new URLSearchParams({ with: ref }));
  $("#people-photos").replaceChildren(...photos.photos.map((p) => el("li", {}, p)));
  if (scroll) box.scrollIntoView({ block: "nearest" });
}

function selectedFaces() {
  return [...document.querySelectorAll("#people-faces input:checked")].map((i) => Number(i.value));
}

async function nameOpen(e) {
  e.preventDefault();
  const name = $("#people-name").value.trim();
  if (!name || !people.open) return;
  const r = await libraryCall("/name", { who: people.open, name });
  if (r) { people.open = name; status(`Named ${name}`); await loadLibrary(); }
}

async function splitSelected() {
  const faces = selectedFaces();
  if (!faces.length) return status("Select faces first", true);
  const r = await libraryCall("/split", { who: people.open, faces });
  if (r) status(`Split into ${r.new_group}`);
}

async function moveSelected() {
  const to = $("#people-move-to").value.trim();
  const faces = selectedFaces();
  if (!faces.length || !to) return status("Select faces and say where to move them", true);
  for (const face of faces) await libraryCall("/move", { face, to });
  status(`Moved ${faces.length} face(s) to ${to}`);
}

async function rejectSelected() {
  const faces = selectedFaces();
  if (!faces.length) return status("Select faces first", true);
  for (const face of faces) await libraryCall("/reject", { face });
  status(`${faces.length} face(s) marked "not this person"`);
}

async function forgetOpen() {
  if (!people.open || !confirm(`Delete ${people.open} with all their faces?`)) return;
  const ref = people.open;
  people.open = null;
  if (await libraryCall("/people/" + encodeURIComponent(ref), null, "DELETE")) status(`Forgot ${ref}`);
  $("#people-detail").hidden = true;
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll('#tabs button[data-tab="library"]').forEach((b) => b.addEventListener("click", loadLibrary));
  $("#people-name-form").addEventListener("submit", nameOpen);
  $("#people-split").addEventListener("click", splitSelected);
  $("#people-move").addEventListener("click", moveSelected);
  $("#people-reject").addEventListener("click", rejectSelected);
  $("#people-forget").addEventListener("click", forgetOpen);
  $("#people-regroup").addEventListener("click", async () => {
    const r = await libraryCall("/cluster", { full: false });
    if (r) status(`Grouped: ${r.new_groups} new groups, ${r.joined_people} faces joined named people`);
  });
  $("#gallery-select").addEventListener("change", () => { people.open = null; $("#people-detail").hidden = true; });
});
