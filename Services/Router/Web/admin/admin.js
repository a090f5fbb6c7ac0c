// Vacancy's operator view: the fan-out's `admin` stream made visible. Every metrics event
// (every VACANCY_METRICS_SECONDS) updates the figures and their charts of the last few
// minutes, drawn as SVG polylines; `alerts` and `availability` on the same stream keep the
// alert list and the sessions closest to full live. The admin token comes from the router
// in demo mode (minted through /api/v1/tokens with the demo key) or is pasted, and lives
// only in this script's memory. Plain JavaScript, no build step.
"use strict";

const HISTORY = 60;               // samples per chart: five minutes at the default 5 s
const FULLEST = 8;
const ALERTS_KEPT = 20;

const state = {
  token: null,
  demo: false,
  source: null,
  reopenTimer: null,
  samples: [],                    // [{at, streams, deliveries, lag, cuts, bookings, events, waiting}]
  previous: null,                 // the last metrics event
  sessions: new Map(),            // session id → availability, for "closest to full"
};

const $ = (selector) => document.querySelector(selector);
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });

// ---------------------------------------------------------------- the token

async function start() {
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("#token");
    const token = input.value.trim();
    input.value = "";
    if (token) follow(token);
  });
  $("#forget").addEventListener("click", () => forget("Token forgotten."));
  try {
    state.demo = Boolean((await (await fetch("/config.json", { cache: "no-store" })).json()).demo);
  } catch {
    state.demo = false;
  }
  if (state.demo) {
    const token = await mintDemoToken();
    if (token) return follow(token);
  }
  askForToken("");
}

/// In demo mode the router adds the demo key, so the page may mint its own admin token.
async function mintDemoToken() {
  try {
    const response = await fetch("/api/v1/tokens", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sub: "admin-demo", topics: ["admin"], ttl_seconds: 3600 }),
    });
    return response.ok ? (await response.json()).token : null;
  } catch {
    return null;
  }
}

function askForToken(problem) {
  closeStream();
  state.token = null;
  $("#token-form").hidden = false;
  $("#figures").hidden = true;
  $("#lists").hidden = true;
  $("#forget").hidden = true;
  $("#token-problem").textContent = problem;
  setConnection("offline");
}

function forget(problem) {
  state.samples = [];
  state.previous = null;
  askForToken(problem);
}

function streamURL(token) {
  const params = new URLSearchParams();
  for (const topic of ["admin", "alerts", "availability"]) params.append("topic", topic);
  params.set("token", token);
  return "/events?" + params;
}

/// Follows the stream with `token`. A stream refused before it ever opened is asked once
/// more with fetch, for the problem's detail (EventSource cannot see a 401 or 403).
function follow(token) {
  state.token = token;
  state.opened = false;
  openStream();
}

async function refused(token) {
  let detail = "the fan-out could not be reached";
  try {
    const controller = new AbortController();
    const response = await fetch(streamURL(token), { headers: { Accept: "text/event-stream" }, signal: controller.signal });
    if (response.ok) {
      // It answers now (it was restarting): follow it.
      controller.abort();
      return follow(token);
    }
    detail = (await response.json()).detail || `HTTP ${response.status}`;
  } catch {
    // unreachable, or a body that is not problem+json
  }
  askForToken(`That token was refused: ${detail}`);
}

function showFigures() {
  $("#token-form").hidden = true;
  $("#figures").hidden = false;
  $("#lists").hidden = false;
  $("#forget").hidden = state.demo;
  loadFullest();
}

// ---------------------------------------------------------------- the stream

function openStream() {
  closeStream();
  const token = state.token;
  const source = new EventSource(streamURL(token));
  state.source = source;
  setConnection("reconnecting");
  source.onopen = () => {
    if (!state.opened) showFigures();
    state.opened = true;
    setConnection("live");
  };
  source.onerror = () => {
    if (state.source !== source || source.readyState !== EventSource.CLOSED) {
      if (state.source === source) setConnection("reconnecting");
      return;
    }
    // Refused. Before the first open that is the token's fault (or the fan-out's absence);
    // after it, the fan-out restarting: EventSource gives up, so try again shortly.
    if (!state.opened) {
      closeStream();
      refused(token);
    } else {
      setConnection("reconnecting");
      state.reopenTimer = setTimeout(openStream, 3000);
    }
  };
  source.addEventListener("metrics", (event) => onMetrics(JSON.parse(event.data)));
  source.addEventListener("alert", (event) => addAlert(JSON.parse(event.data)));
  source.addEventListener("availability.updated", (event) => {
    const session = JSON.parse(event.data);
    state.sessions.set(session.session_id, session);
    renderFullest();
  });
  source.addEventListener("reset", () => loadFullest());
  source.addEventListener("expired", async () => {
    closeStream();
    const token = state.demo ? await mintDemoToken() : null;
    if (token) follow(token);
    else forget("The token has expired: paste a new one.");
  });
}

function closeStream() {
  clearTimeout(state.reopenTimer);
  if (state.source) state.source.close();
  state.source = null;
}

function setConnection(connection) {
  const element = $("#connection");
  element.dataset.state = connection;
  element.className = "connection " + connection;
  element.textContent = { live: "live", reconnecting: "reconnecting…", offline: "offline" }[connection];
}

// ---------------------------------------------------------------- figures and charts

/// A rate from two totals `seconds` apart; null when a total went back (an instance restarted).
function rate(now, before, seconds) {
  if (before === undefined || before === null || now < before || !seconds) return null;
  return (now - before) / seconds;
}

function onMetrics(metrics) {
  const previous = state.previous;
  const seconds = metrics.interval_seconds;
  const sample = {
    at: Date.now(),
    streams: metrics.subscribers,
    deliveries: rate(metrics.events_delivered_total, previous && previous.events_delivered_total, seconds),
    lag: metrics.delivery_lag_p99_ms,
    cuts: previous ? Math.max(0, metrics.slow_consumer_disconnects_total - previous.slow_consumer_disconnects_total) : 0,
    bookings: metrics.bookings_per_second,
    events: rate(metrics.head, previous && previous.head, seconds),
    waiting: metrics.changes_waiting,
  };
  state.previous = metrics;
  state.samples.push(sample);
  if (state.samples.length > HISTORY) state.samples.shift();

  const transports = Object.entries(metrics.subscribers_by_transport || {}).map(([name, count]) => `${name} ${count}`).join(" · ");
  show("streams", String(metrics.subscribers), transports || "none open", "streams");
  show("deliveries", number(sample.deliveries), `${metrics.events_delivered_total.toLocaleString()} in all`, "deliveries");
  show("lag", metrics.delivery_lag_p99_ms === null ? "–" : `≤ ${metrics.delivery_lag_p99_ms.toLocaleString()} ms`, null, "lag");
  show("cuts", metrics.slow_consumer_disconnects_total.toLocaleString(), `${sample.cuts} in the last ${seconds} s`, "cuts");
  show("bookings", number(metrics.bookings_per_second), null, "bookings");
  show("head", metrics.head.toLocaleString(), `${number(sample.events)} events / s · ${metrics.window.toLocaleString()} in memory`, "events");
  show(
    "calculator",
    metrics.changes_waiting === null ? "–" : `${metrics.changes_waiting.toLocaleString()} waiting`,
    metrics.oldest_change_seconds === null ? "the database did not answer" : `oldest ${metrics.oldest_change_seconds.toFixed(1)} s`,
    "waiting");
  $("#last-update").textContent = "figures of " + clock.format(new Date());
}

function number(value) {
  if (value === null || value === undefined) return "–";
  return value >= 100 ? Math.round(value).toLocaleString() : value.toFixed(1);
}

/// Sets a figure's value and detail and redraws its chart from the samples' `key`.
function show(id, value, detail, key) {
  $("#" + id).textContent = value;
  if (detail !== null) {
    const element = $("#" + id + "-detail");
    if (element) element.textContent = detail;
  }
  const chartID = { streams: "streams", deliveries: "deliveries", lag: "lag", cuts: "cuts", bookings: "bookings", events: "events", waiting: "calculator" }[key];
  drawChart($("#chart-" + chartID), state.samples.map((sample) => sample[key]));
}

/// A sparkline of `values` (nulls leave gaps) scaled to its own maximum.
function drawChart(svg, values) {
  if (!svg) return;
  const width = 240;
  const height = 48;
  const known = values.filter((value) => value !== null && value !== undefined);
  const max = Math.max(1, ...known);
  const step = width / Math.max(1, HISTORY - 1);
  const offset = (HISTORY - values.length) * step;
  const segments = [];
  let current = [];
  values.forEach((value, index) => {
    if (value === null || value === undefined) {
      if (current.length) segments.push(current);
      current = [];
      return;
    }
    const x = offset + index * step;
    const y = height - 2 - (value / max) * (height - 6);
    current.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  });
  if (current.length) segments.push(current);
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  for (const points of segments) {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", points.length === 1 ? `${points[0]} ${points[0]}` : points.join(" "));
    svg.append(line);
  }
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", "238");
  label.setAttribute("y", "10");
  label.setAttribute("text-anchor", "end");
  label.textContent = `max ${number(max)}`;
  svg.append(label);
  svg.dataset.points = String(known.length);
}

// ---------------------------------------------------------------- alerts and the fullest sessions

function addAlert(alert) {
  const session = alert.availability || {};
  const item = document.createElement("li");
  item.className = `alert ${alert.kind}`;
  const when = session.local_start ? `${session.date} ${String(session.local_start).slice(11, 16)}` : "";
  item.textContent = `${clock.format(new Date())} ${alert.kind.replace("_", " ")} — ${session.course_type}, ${session.location}, ${when}`;
  const list = $("#alerts");
  list.prepend(item);
  while (list.children.length > ALERTS_KEPT) list.lastElementChild.remove();
  $("#no-alerts").hidden = true;
  if (session.session_id) {
    state.sessions.set(session.session_id, session);
    renderFullest();
  }
}

/// The next 14 days' sessions, from the public range read; the stream keeps them current.
async function loadFullest() {
  const today = new Date().toISOString().slice(0, 10);
  const end = new Date(Date.now() + 13 * 86400000).toISOString().slice(0, 10);
  try {
    const response = await fetch(`/api/v1/availability/range?start=${today}&end=${end}`, { cache: "no-store" });
    if (!response.ok) return;
    state.sessions = new Map((await response.json()).sessions.map((session) => [session.session_id, session]));
    renderFullest();
  } catch {
    // The figures go on; the list fills in from the stream.
  }
}

function renderFullest() {
  const body = $("#fullest tbody");
  const rows = [...state.sessions.values()]
    .filter((session) => session.level !== "closed")
    .sort((a, b) => b.utilization - a.utilization || String(a.starts_at).localeCompare(String(b.starts_at)))
    .slice(0, FULLEST);
  body.replaceChildren(...rows.map((session) => {
    const row = document.createElement("tr");
    row.className = session.level;
    row.dataset.sessionId = session.session_id;
    const cells = [
      `${session.course_type} · ${session.location}`,
      `${session.date} ${String(session.local_start || "").slice(11, 16)}`,
      `${session.utilization} %`,
      String(session.available),
      String(session.waiting || 0),
    ];
    for (const text of cells) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  }));
}

start();
