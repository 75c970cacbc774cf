// The demo page: sign in with a bearer token, list what is synced, start syncs and follow them.
// It calls only the public API routes a real frontend would.
"use strict";

const TOKEN_KEY = "calsync.token";
const POLL_MS = 1000;
const FINAL = new Set(["completed", "failed", "canceled"]);

// Row ID -> the latest status read from /sync-runs while a run is in flight.
const live = new Map();
let data = { calendars: [], workspaces: [] };
// Row ID -> the run being polled.
const pending = new Map();
let polling = false;

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
  if (response.status === 401) throw new Unauthorized(body.detail || "unauthorized");
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

async function load() {
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
  live.clear();
  render();
  const inFlight = [...data.calendars, ...data.workspaces].filter(
    (row) => row.run && !FINAL.has(row.run.status),
  );
  guarded(() => follow(inFlight.map((row) => [row.id, row.run.flow_run_id])));
}

// Poll every followed run until it is final, then reload the lists (for the last-synced times).
async function follow(runs) {
  for (const [rowId, runId] of runs) pending.set(rowId, runId);
  if (polling || pending.size === 0) return;
  polling = true;
  try {
    while (pending.size > 0) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      for (const [rowId, runId] of [...pending]) {
        // A sync accepted while the orchestrator was slow has no run yet: the reload finds it.
        if (!runId) {
          pending.delete(rowId);
          continue;
        }
        const run = await api("GET", `/sync-runs/${runId}`);
        live.set(rowId, run);
        if (FINAL.has(run.status)) pending.delete(rowId);
      }
      render();
    }
  } finally {
    polling = false;
  }
  await load();
}

function started(runs) {
  for (const [rowId, run] of runs) live.set(rowId, { status: run.status, error: null });
  render();
  guarded(() => follow(runs.map(([rowId, run]) => [rowId, run.flow_run_id])));
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
  live.clear();
  pending.clear();
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
