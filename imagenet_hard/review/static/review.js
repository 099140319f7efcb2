// The review page: one candidate at a time, decided with one key; talks to the JSON API only.
// Decisions are shown at once and sent in order through one promise chain, so fast typing never
// reorders them; a failed request puts the image back and says why.
"use strict";

const REASONS = [["ill-posed", "ill-posed"], ["wrong-label", "wrong label"],
                 ["duplicate", "duplicate"], ["other", "other"]];
const TAGS = [["l", "lack-of-information", "lack of information"], ["r", "rare-case", "rare case"],
              ["i", "illusion", "illusion"], ["m", "many-objects", "many objects"]];
const BATCH = 100;

const $ = (id) => document.getElementById(id);
const state = {
  queue: [], pos: 0, tags: new Set(), skipped: new Set(), chain: Promise.resolve(),
  origin: "", verdict: "pending", saved: 0, inflight: 0, zoom: false, recent: [],
};

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const data = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

const imageUrl = (id) => "/images/" + id.split("/").map(encodeURIComponent).join("/");
const current = () => state.queue[state.pos];
const reviewer = () => $("reviewer").value.trim() || undefined;

let toastTimer = null;
function toast(text, kind = "") {
  const el = $("toast");
  el.textContent = text;
  el.className = `show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.className = kind; }, kind === "error" ? 4000 : 1300);
  if (kind === "keep" || kind === "remove") {
    const stage = $("stage");
    stage.classList.add(`flash-${kind}`);
    setTimeout(() => stage.classList.remove(`flash-${kind}`), 180);
  }
}

function setInflight(delta) {
  state.inflight += delta;
  document.body.dataset.inflight = String(state.inflight);
}

// -- loading --------------------------------------------------------------------------------

async function loadQueue(keepPos = false) {
  const q = new URLSearchParams({ verdict: state.verdict, limit: String(BATCH) });
  if (state.origin) q.set("origin", state.origin);
  try {
    const { candidates } = await api("GET", `/api/candidates?${q}`);
    let fresh = candidates.filter((c) => !state.skipped.has(c.id));
    if (!fresh.length && candidates.length) { state.skipped.clear(); fresh = candidates; }
    state.queue = fresh;
    if (!keepPos) state.pos = 0;
    state.pos = Math.min(state.pos, Math.max(0, state.queue.length - 1));
  } catch (err) { toast(`Could not load candidates: ${err.message}`, "error"); }
  render();
}

async function refreshStatus() {
  const q = state.origin ? `?origin=${encodeURIComponent(state.origin)}` : "";
  try {
    const s = await api("GET", `/api/status${q}`);
    $("done").textContent = s.decided.toLocaleString();
    $("total").textContent = s.total.toLocaleString();
    $("pct").textContent = s.total ? `${(100 * s.decided / s.total).toFixed(1)}%` : "";
    $("n-keep").textContent = s.keep.toLocaleString();
    $("n-remove").textContent = s.remove.toLocaleString();
    document.querySelector("#progress .keep").style.width = `${s.total ? 100 * s.keep / s.total : 0}%`;
    document.querySelector("#progress .remove").style.width = `${s.total ? 100 * s.remove / s.total : 0}%`;
    const sel = $("origin");
    if (sel.options.length === 1) {
      for (const o of s.origins) sel.add(new Option(o, o));
    }
  } catch (err) { toast(`Could not load status: ${err.message}`, "error"); }
}

// -- rendering ------------------------------------------------------------------------------

function render() {
  const c = current();
  $("empty").hidden = !!c;
  $("frame").hidden = !c;
  $("empty-what").textContent = state.verdict === "all" ? "" : state.verdict;
  if (!c) {
    $("position").textContent = "queue empty";
    for (const id of ["labels", "top5", "file", "id", "origin-v", "space-v", "crop", "current"]) $(id).textContent = "";
    document.body.dataset.current = "";
    return;
  }
  document.body.dataset.current = c.id;
  const img = $("image");
  if (img.dataset.id !== c.id) {
    img.dataset.id = c.id;
    img.src = imageUrl(c.id);
    img.alt = c.english_label.join(", ");
  }
  $("position").textContent = `${state.pos + 1} of ${state.queue.length} loaded`;
  const badge = $("verdict-badge");
  badge.textContent = c.reason ? `${c.verdict} · ${c.reason}` : c.verdict;
  badge.className = `badge ${c.verdict}`;
  $("labels").replaceChildren(...c.label.map((idx, i) => {
    const li = document.createElement("li");
    li.textContent = c.english_label[i];
    const n = document.createElement("span");
    n.textContent = `#${idx}`;
    li.append(n);
    return li;
  }));
  const origin = $("origin-v");
  origin.textContent = c.origin;
  origin.className = `origin ${c.origin.split("/")[0]}`;
  $("space-v").textContent = c.label_space;
  $("crop").textContent = c.best_crop_name ? `· best crop ${c.best_crop_name}` : "";
  const labelSet = new Set(c.label);
  $("top5").replaceChildren(...c.top5.map((idx, i) => {
    const li = document.createElement("li");
    if (labelSet.has(idx)) li.className = "hit";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = `${Math.round(100 * c.top5_prob[i])}%`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = `${c.top5_names[i]} `;
    const p = document.createElement("span");
    p.className = "p";
    p.textContent = `${(100 * c.top5_prob[i]).toFixed(1)}%`;
    li.append(fill, name, p);
    return li;
  }));
  $("file").textContent = `${c.path}  ·  ${c.width}×${c.height}`;
  $("id").textContent = c.id;
  $("current").textContent = lastEvent(c);
  renderTags();
  prefetch();
}

// The panel's line about the candidate's latest event: what the server recorded, or "saving"
// while the decision just made is on its way (never the event before it).
function lastEvent(c) {
  if (c.saving) return "saving…";
  if (!c.at) return "";
  const tags = (c.tags || []).map((t) => TAGS.find(([, v]) => v === t)?.[2] || t);
  return `decided ${c.at.replace("T", " ").slice(0, 19)} UTC${c.reviewer ? " by " + c.reviewer : ""}` +
    `${tags.length ? " · " + tags.join(", ") : ""}${c.note ? " — " + c.note : ""}`;
}

const EVENT_FIELDS = ["verdict", "reason", "tags", "note", "reviewer", "at"];

function renderTags() {
  $("tags").replaceChildren(...TAGS.map(([key, tag, label]) => {
    const b = document.createElement("button");
    b.className = `chip${state.tags.has(tag) ? " on" : ""}`;
    b.innerHTML = `<kbd>${key.toUpperCase()}</kbd> `;
    b.append(label);
    b.onclick = () => toggleTag(tag);
    return b;
  }));
}

function renderRecent() {
  $("recent").replaceChildren(...state.recent.map(({ id, verdict, reason }) => {
    const li = document.createElement("li");
    const b = document.createElement("b");
    b.className = verdict;
    b.textContent = verdict;
    const span = document.createElement("span");
    span.textContent = `${reason ? reason + " · " : ""}${id.split("/").slice(-2).join("/")}`;
    span.title = id;
    li.append(b, span);
    return li;
  }));
}

function prefetch() {
  for (const c of state.queue.slice(state.pos + 1, state.pos + 4)) new Image().src = imageUrl(c.id);
}

// -- actions --------------------------------------------------------------------------------

function decide(verdict, reason) {
  const c = current();
  if (!c) return;
  const body = { id: c.id, verdict, tags: [...state.tags] };
  if (reason) body.reason = reason;
  if (reviewer()) body.reviewer = reviewer();
  const note = $("note").value.trim();
  if (note) body.note = note;
  const reasonLabel = reason && REASONS.find(([v]) => v === reason)[1];
  const label = reason ? `Removed — ${reasonLabel}` : verdict === "keep" ? "Kept" : "Removed";
  // Show the next image at once; the request follows in order.
  const stays = state.verdict === "all" || state.verdict === verdict;
  const at = state.pos;
  const before = Object.fromEntries(EVENT_FIELDS.map((k) => [k, c[k]]));
  if (stays) {
    Object.assign(c, { verdict, reason: reason || null, tags: body.tags, note: note || null,
                       saving: true });
    state.pos = Math.min(state.pos + 1, state.queue.length - 1);
  } else {
    state.queue.splice(state.pos, 1);
    state.pos = Math.min(state.pos, Math.max(0, state.queue.length - 1));
  }
  state.tags.clear();
  $("note").value = "";
  toast(`${label} ✓`, verdict);
  render();
  setInflight(+1);
  state.chain = state.chain
    .then(() => api("POST", "/api/decisions", body))
    .then(({ event }) => {
      Object.assign(c, Object.fromEntries(EVENT_FIELDS.map((k) => [k, event[k]])), { saving: false });
      if (current() === c) render();
      state.recent = [{ id: c.id, verdict, reason }, ...state.recent].slice(0, 4);
      renderRecent();
      state.saved += 1;
      document.body.dataset.saved = String(state.saved);
      refreshStatus();
      if (state.queue.length - state.pos < 5 && !stays) loadQueue(true);
    })
    .catch((err) => {
      toast(`Not saved: ${err.message}`, "error");
      Object.assign(c, before, { saving: false });
      if (!stays) state.queue.splice(at, 0, c);
      state.pos = at;
      render();
    })
    .finally(() => setInflight(-1));
}

function undo() {
  const body = reviewer() ? { reviewer: reviewer() } : {};
  setInflight(+1);
  state.chain = state.chain
    .then(() => api("POST", "/api/undo", body))
    .then(({ undone, candidate }) => {
      state.queue = state.queue.filter((c) => c.id !== candidate.id);
      state.pos = Math.min(state.pos, state.queue.length);
      state.queue.splice(state.pos, 0, candidate);
      state.skipped.delete(candidate.id);
      const i = state.recent.findIndex((r) => r.id === candidate.id);
      if (i >= 0) { state.recent.splice(i, 1); renderRecent(); }
      toast(`Undid ${undone.verdict}${undone.reason ? " (" + undone.reason + ")" : ""} — now ${candidate.verdict}`);
      document.body.dataset.undone = String(Number(document.body.dataset.undone || 0) + 1);
      render();
      refreshStatus();
    })
    .catch((err) => toast(err.message === "nothing to undo" ? "Nothing to undo" : `Undo failed: ${err.message}`, "error"))
    .finally(() => setInflight(-1));
}

function toggleTag(tag) {
  state.tags.has(tag) ? state.tags.delete(tag) : state.tags.add(tag);
  renderTags();
}

function move(step) {
  const c = current();
  if (!c) return;
  if (step > 0) state.skipped.add(c.id);
  const next = state.pos + step;
  if (next >= state.queue.length) { toast("End of the loaded batch; loading more"); loadQueue(); return; }
  state.pos = Math.max(0, next);
  state.tags.clear();
  render();
}

function toggleZoom() {
  state.zoom = !state.zoom;
  $("frame").classList.toggle("zoom", state.zoom);
}

// -- keys -----------------------------------------------------------------------------------

function onKey(e) {
  const help = $("help");
  if (!help.hidden) { help.hidden = true; e.preventDefault(); return; }
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (typing) {
    if (e.key === "Escape" || (e.key === "Enter" && document.activeElement.id === "note")) document.activeElement.blur();
    return;
  }
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { e.preventDefault(); undo(); return; }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const key = e.key.toLowerCase();
  const decides = key === "k" || key === "x" || (key >= "1" && key <= "4");
  if (decides && e.repeat) return;  // holding a key must not decide a row of images
  const tag = TAGS.find(([k]) => k === key);
  if (key === "k") decide("keep");
  else if (key === "x") decide("remove");
  else if (key >= "1" && key <= "4") decide("remove", REASONS[Number(key) - 1][0]);
  else if (tag) toggleTag(tag[1]);
  else if (key === "u") undo();
  else if (key === "arrowright" || key === " ") move(+1);
  else if (key === "arrowleft") move(-1);
  else if (key === "z") toggleZoom();
  else if (key === "n") { $("note").focus(); }
  else if (key === "?") help.hidden = false;
  else return;
  e.preventDefault();
}

function setup() {
  const reasonKeys = REASONS.map(([value, label], i) => {
    const b = document.createElement("button");
    b.innerHTML = `<kbd>${i + 1}</kbd> `;
    b.append(label);
    b.title = `remove as ${label}`;
    b.onclick = () => decide("remove", value);
    return b;
  });
  $("reasons").replaceChildren(...reasonKeys);
  $("legend-reasons").innerHTML = REASONS.map(([, l], i) => `<kbd>${i + 1}</kbd> ${l}`).join(" &nbsp;");
  $("legend-tags").innerHTML = TAGS.map(([k, , l]) => `<kbd>${k.toUpperCase()}</kbd> ${l}`).join(" &nbsp;");
  const rows = [["K", "keep"], ["X", "remove (no reason)"],
    ...REASONS.map(([, l], i) => [String(i + 1), `remove: ${l}`]),
    ...TAGS.map(([k, , l]) => [k.toUpperCase(), `toggle tag: ${l}`]),
    ["U · Ctrl Z", "undo the last decision"], ["→ · Space", "skip"], ["←", "back"],
    ["Z · click", "zoom 1:1 / fit"], ["N", "type a note (Enter to leave)"], ["?", "this help"]];
  $("help-keys").innerHTML = rows.map(([k, v]) => `<tr><td><kbd>${k}</kbd></td><td>${v}</td></tr>`).join("");
  $("btn-keep").onclick = () => decide("keep");
  $("btn-remove").onclick = () => decide("remove");
  $("image").onclick = toggleZoom;
  $("image").onerror = () => toast("Image could not be loaded", "error");
  const who = $("reviewer");
  who.value = localStorage.getItem("imhard.reviewer") || "";
  who.onchange = () => localStorage.setItem("imhard.reviewer", who.value.trim());
  $("origin").onchange = (e) => { state.origin = e.target.value; e.target.blur(); refreshStatus(); loadQueue(); };
  $("verdict").onchange = (e) => { state.verdict = e.target.value; e.target.blur(); loadQueue(); };
  document.addEventListener("keydown", onKey);
  refreshStatus();
  loadQueue();
}

setup();
