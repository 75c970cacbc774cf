// The demo page: sign in with a bearer token, list what is synced, start syncs and follow them
// live. It calls only the public API routes a real frontend would: the live stream
// (GET /me/sync-stream) is opened by EventSource, which cannot send the Authorization header,
// with a single-use ticket from POST /stream-tickets, never with the token itself.
"use strict";

const TOKEN_KEY = "calsync.token";
const RECONNECT_MS = 2000;
const FINAL = new Set(["completed", "failed", "canceled"]);

// Row ID -> the latest state of its run, from the live stream or a start.
const live = new Map();
let data = { calendars: [], workspaces: [] };
// Row ID -> the run this page started; older runs' updates for that row are ignored.
const expected = new Map();
let stream = null;
let opening = false;
let reconnect = null;

const $ = (selector) => document.querySelector(selector);

function token() {
  return localStorage.getItem(TOKEN_KEY);
}

class Unauthorized extends Error {}

async function api(method, path) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token()}`, Accept: "application/json" },
  });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401 && body.code === "unauthorized") {
    throw new Unauthorized(body.detail || "unauthorized");
  }
  if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
  return body;
}

function notice(message) {
  $("#notice").textContent = message || "";
}

function statusOf(run, enabled, lastSyncedAt) {
  if (!enabled) return { key: "off", label: "Not syncing" };
  if (!run) {
    return lastSyncedAt ? { key: "synced", label: "Synced" } : { key: "never", label: "Never synced" };
  }
  if (run.status === "completed") return { key: "synced", label: "Synced" };
  if (run.status === "failed" || run.status === "canceled") {
    return { key: "failed", label: `Failed (${run.error || run.status})` };
  }
  // A pending run with a message waits out a provider's rate limit ("…retrying at 14:05 UTC.").
  if (run.status === "pending" && run.error) return { key: "syncing", label: `Waiting (${run.error})` };
  return { key: "syncing", label: "Syncing…" };
}

// A run that just completed is newer than the row we loaded before it.
function syncedAt(row) {
  const run = live.get(row.id);
  return run && run.status === "completed" && run.ended_at ? run.ended_at : row.last_synced_at;
}

function when(iso) {
  if (!iso) return "never synced";
  return `last synced ${new Date(iso).toLocaleString()}`;
}

function item({ id, name, detail, color, status, lastSyncedAt }) {
  const li = document.createElement("li");
  li.dataset.id = id;
  const title = document.createElement("span");
  title.className = "name";
  if (color) {
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color;
    title.append(swatch);
  }
  title.append(name);
  const badge = document.createElement("span");
  badge.className = "status";
  badge.dataset.status = status.key;
  badge.textContent = status.label;
  const info = document.createElement("span");
  info.className = "detail";
  info.textContent = detail;
  const synced = document.createElement("span");
  synced.className = "synced-at";
  synced.textContent = when(lastSyncedAt);
  li.append(title, badge, info, synced);
  return li;
}

function fill(list, items, empty) {
  if (items.length === 0) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = empty;
    list.replaceChildren(li);
    return;
  }
  list.replaceChildren(...items);
}

function render() {
  fill(
    $("#calendars"),
    data.calendars.map((c) =>
      item({
        id: c.id,
        name: c.name,
        detail: c.account + (c.is_primary ? " · primary" : ""),
        color: c.color,
        status: statusOf(live.get(c.id) || c.run, c.enabled, syncedAt(c)),
        lastSyncedAt: syncedAt(c),
      }),
    ),
    "No Google account connected.",
  );
  fill(
    $("#workspaces"),
    data.workspaces.map((w) =>
      item({
        id: w.id,
        name: w.organization_name || w.url_key,
        detail: w.status === "needs_reauth" ? "reconnect Linear" : `linear.app/${w.url_key}`,
        status: statusOf(live.get(w.id) || w.run, true, syncedAt(w)),
        lastSyncedAt: syncedAt(w),
      }),
    ),
    "No Linear workspace connected.",
  );
}

async function fetchLists() {
  const [google, linear] = await Promise.all([
    api("GET", "/me/google-connection"),
    api("GET", "/me/linear-connection"),
  ]);
  data = {
    calendars: google.flatMap((connection) =>
      connection.calendars.map((c) => ({ ...c, account: connection.account_email })),
    ),
    workspaces: linear,
  };
}

async function load() {
  await fetchLists();
  live.clear();
  render();
  await openStream();
}

// One live stream for all of the user's runs: a `snapshot`, then a `run` event per change.
async function openStream() {
  if (stream || opening || !token()) return;
  opening = true;
  let ticket;
  try {
    ({ ticket } = await api("POST", "/stream-tickets"));
  } finally {
    opening = false;
  }
  stream = new EventSource(`/me/sync-stream?ticket=${encodeURIComponent(ticket)}`);
  stream.addEventListener("snapshot", (event) => JSON.parse(event.data).runs.forEach(update));
  stream.addEventListener("run", (event) => update(JSON.parse(event.data)));
  // A ticket opens one stream: EventSource's own retry would reuse it, so reconnect with a new one.
  stream.onerror = () => {
    closeStream();
    reconnect = setTimeout(() => guarded(openStream), RECONNECT_MS);
  };
}

function closeStream() {
  if (stream) stream.close();
  stream = null;
  clearTimeout(reconnect);
}

function update(run) {
  const rowId = run.calendar_id || run.task_connection_id;
  const mine = expected.get(rowId);
  if (mine && mine !== run.flow_run_id) return;
  const before = live.get(rowId);
  live.set(rowId, run);
  render();
  if (FINAL.has(run.status) && mine) {
    expected.delete(rowId);
    // Reload the lists for the new "last synced" times (the stream stays open).
    if (!before || !FINAL.has(before.status)) guarded(reloadLists);
  }
}

async function reloadLists() {
  await fetchLists();
  render();
}

function started(runs) {
  for (const [rowId, run] of runs) {
    // Accepted while the orchestrator was slow: no run yet; the stream announces it when it starts.
    if (run.flow_run_id) expected.set(rowId, run.flow_run_id);
    // The stream may have told this run's news already; keep it then.
    if (live.get(rowId)?.flow_run_id !== run.flow_run_id) {
      live.set(rowId, { flow_run_id: run.flow_run_id, status: run.status, error: null });
    }
  }
  render();
}

async function syncNow() {
  const button = $("#sync-now");
  button.disabled = true;
  notice("");
  try {
    // One after the other: a local Prefect server on SQLite serializes its writes anyway.
    const calendars = await api("POST", "/calendars/sync");
    started(calendars.runs.map((r) => [r.calendar_id, r]));
    const linear = await api("POST", "/linear/sync");
    started(linear.runs.map((r) => [r.task_connection_id, r]));
  } finally {
    button.disabled = false;
  }
}

function show(signedIn) {
  $("#sign-in").hidden = signedIn;
  $("#app").hidden = !signedIn;
}

function signOut(message) {
  localStorage.removeItem(TOKEN_KEY);
  closeStream();
  live.clear();
  expected.clear();
  show(false);
  notice("");
  $("#sign-in-error").textContent = message || "";
}

async function guarded(action) {
  try {
    await action();
  } catch (error) {
    if (error instanceof Unauthorized) {
      signOut(`The token was rejected (${error.message}): sign in again.`);
    } else {
      notice(error.message);
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(TOKEN_KEY, $("#token").value.trim());
    $("#token").value = "";
    $("#sign-in-error").textContent = "";
    show(true);
    guarded(load);
  });
  $("#sign-out").addEventListener("click", () => signOut());
  $("#sync-now").addEventListener("click", () => guarded(syncNow));
  show(Boolean(token()));
  if (token()) guarded(load);
});
