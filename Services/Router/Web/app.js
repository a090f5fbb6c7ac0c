// Vacancy's live calendar: render a snapshot from /api/v1/calendar, then follow /events
// from the snapshot's last_event_id and update seat counts in place. Plain JavaScript,
// no build step. Days and times are UTC, as the API's are.
"use strict";

const POLL_MS = 5000;            // the fallback's pace while streaming is not possible
const STREAM_FAILURES_BEFORE_POLLING = 3;
const MAX_REOPEN_DELAY_MS = 15000;

const state = {
  view: "month",
  date: todayUTC(),
  course: "",
  location: "",
  availability: "any",
  entries: new Map(),      // session id → calendar entry
  lastEventId: null,
  topics: [],
  etag: null,
  source: null,
  failures: 0,
  reopenDelay: 1000,
  reopenTimer: null,
  pollTimer: null,
  refreshTimer: null,
  demo: false,
  locations: new Set(),
  courses: new Map(),      // course type → colour
  openSessionId: null,
  line: new Map(),         // waitlist entry id → this visitor's entry (demo mode)
  privateSource: null,
  privateToken: null,
  privateLastEventId: null,
  lineTimer: null,
};

const $ = (selector) => document.querySelector(selector);

// ---------------------------------------------------------------- dates (UTC)

function todayUTC() {
  return new Date().toISOString().slice(0, 10);
}

function parseDay(day) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d));
}

function formatDay(date) {
  return date.toISOString().slice(0, 10);
}

function addDays(day, n) {
  const date = parseDay(day);
  date.setUTCDate(date.getUTCDate() + n);
  return formatDay(date);
}

function addMonths(day, n) {
  const date = parseDay(day);
  return formatDay(new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + n, 1)));
}

/// 0 for Monday … 6 for Sunday.
function weekdayIndex(day) {
  return (parseDay(day).getUTCDay() + 6) % 7;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: "UTC" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric", timeZone: "UTC" });
const monthFormat = new Intl.DateTimeFormat(undefined, { month: "long", year: "numeric", timeZone: "UTC" });
const shortDayFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
const clockFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

// ---------------------------------------------------------------- snapshot

function calendarURL() {
  const params = new URLSearchParams({ view: state.view, date: state.date });
  if (state.course) params.set("course_type", state.course);
  if (state.location) params.set("location", state.location);
  if (state.availability !== "any") params.set("availability", state.availability);
  return "/api/v1/calendar?" + params;
}

/// Fetches the snapshot and renders it; with `conditional`, a 304 leaves the page as it is.
async function loadSnapshot(conditional = false) {
  const headers = conditional && state.etag ? { "If-None-Match": state.etag } : {};
  const response = await fetch(calendarURL(), { headers, cache: "no-store" });
  if (response.status === 304) {
    markUpdated();
    return;
  }
  if (!response.ok) throw new Error(await problemText(response));
  state.etag = response.headers.get("ETag");
  const snapshot = await response.json();
  state.lastEventId = snapshot.last_event_id;
  state.topics = snapshot.topics;
  state.entries = new Map(snapshot.entries.map((entry) => [entry.id.toLowerCase(), entry]));
  for (const entry of snapshot.entries) state.locations.add(entry.location);
  for (const item of snapshot.legend) state.courses.set(item.course_type, item.color);
  render(snapshot);
  if (state.line.size) renderLine();
  markUpdated();
  hideNotice();
}

async function problemText(response) {
  try {
    const problem = await response.json();
    return problem.detail || problem.title || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

/// Reloads the snapshot and follows the stream from it (view or filter changed, `reset`).
async function refresh() {
  clearTimeout(state.refreshTimer);
  writeHash();
  try {
    await loadSnapshot();
    openStream();
  } catch (error) {
    showNotice(`Could not load the calendar: ${error.message}. Retrying…`);
    setConnection("offline");
    state.refreshTimer = setTimeout(refresh, 3000);
  }
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refresh, 300);
}

// ---------------------------------------------------------------- live stream

function openStream() {
  closeStream();
  const params = new URLSearchParams();
  for (const topic of state.topics) params.append("topic", topic);
  if (state.lastEventId !== null) params.set("last_event_id", String(state.lastEventId));
  const source = new EventSource("/events?" + params);
  state.source = source;
  if (state.connection !== "live") setConnection("reconnecting");
  source.onopen = () => {
    state.failures = 0;
    state.reopenDelay = 1000;
    stopPolling();
    setConnection("live");
  };
  source.onerror = () => {
    if (state.source !== source) return;
    state.failures += 1;
    if (source.readyState === EventSource.CLOSED) {
      // Refused (a non-200 answer, such as 503 while the fan-out is down): EventSource
      // gives up for good, so open a new one later and poll meanwhile.
      startPolling();
      scheduleReopen();
    } else if (state.failures >= STREAM_FAILURES_BEFORE_POLLING) {
      startPolling();
    } else {
      setConnection("reconnecting");
    }
  };
  source.addEventListener("availability.updated", (event) => {
    applyUpdate(JSON.parse(event.data), event.lastEventId);
  });
  source.addEventListener("reset", () => refresh());
}

function closeStream() {
  clearTimeout(state.reopenTimer);
  if (state.source) state.source.close();
  state.source = null;
}

function scheduleReopen() {
  clearTimeout(state.reopenTimer);
  const delay = state.reopenDelay;
  state.reopenDelay = Math.min(state.reopenDelay * 2, MAX_REOPEN_DELAY_MS);
  state.reopenTimer = setTimeout(openStream, delay);
}

function startPolling() {
  setConnection("polling");
  if (state.pollTimer) return;
  state.pollTimer = setInterval(() => {
    loadSnapshot(true).catch(() => setConnection("offline"));
  }, POLL_MS);
}

function stopPolling() {
  clearInterval(state.pollTimer);
  state.pollTimer = null;
}

function setConnection(connection) {
  state.connection = connection;
  const element = $("#connection");
  element.dataset.state = connection;
  element.className = "connection " + connection;
  element.textContent = { live: "live", reconnecting: "reconnecting…", polling: "offline · polling", offline: "offline" }[connection];
}

function markUpdated() {
  $("#last-update").textContent = "updated " + clockFormat.format(new Date());
}

/// One `availability.updated` event: the session's counts change in place.
function applyUpdate(session, eventId) {
  if (eventId) state.lastEventId = Number(eventId);
  const id = String(session.session_id).toLowerCase();
  const entry = state.entries.get(id);
  if (!entry) {
    // A session this snapshot did not have (new, or now matching the filters).
    if (matchesFilters(session.course_type, session.location, session.level)) scheduleRefresh();
    return;
  }
  const matchedBefore = matchesFilters(entry.course_type, entry.location, entry.level);
  Object.assign(entry, {
    available: session.available,
    capacity: session.capacity,
    booked: session.booked,
    held: session.held,
    waiting: session.waiting,
    level: session.level,
    is_available: session.is_available,
    percent_full: session.utilization,
  });
  if (matchedBefore !== matchesFilters(entry.course_type, entry.location, entry.level)) {
    scheduleRefresh();
    return;
  }
  const chip = document.querySelector(`.session[data-session-id="${id}"]`);
  if (chip) {
    chip.replaceWith(sessionChip(entry, true));
  }
  if (state.openSessionId === id) fillDetail(entry);
  markUpdated();
}

function matchesFilters(courseType, location, level) {
  if (state.course && courseType !== state.course) return false;
  if (state.location && location !== state.location) return false;
  switch (state.availability) {
    case "available": return level === "open" || level === "low";
    case "low": return level === "low";
    case "full": return level === "full";
    default: return true;
  }
}

// ---------------------------------------------------------------- rendering

function render(snapshot) {
  const calendar = $("#calendar");
  calendar.className = "calendar " + state.view;
  calendar.replaceChildren();
  const first = String(snapshot.start).slice(0, 10);
  const last = String(snapshot.end).slice(0, 10);
  const byDay = new Map();
  for (const entry of state.entries.values()) {
    if (!byDay.has(entry.date)) byDay.set(entry.date, []);
    byDay.get(entry.date).push(entry);
  }
  for (const list of byDay.values()) list.sort((a, b) => String(a.start).localeCompare(String(b.start)));

  if (state.view !== "day") {
    for (const name of ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]) {
      const head = document.createElement("div");
      head.className = "weekday";
      head.textContent = name;
      calendar.append(head);
    }
  }
  let gridStart = first;
  let gridEnd = last;
  if (state.view === "month") {
    gridStart = addDays(first, -weekdayIndex(first));
    gridEnd = addDays(last, 6 - weekdayIndex(last));
  }
  for (let day = gridStart; day <= gridEnd; day = addDays(day, 1)) {
    calendar.append(dayCell(day, byDay.get(day) || [], day < first || day > last));
  }
  $("#range-label").textContent = rangeLabel(first, last);
  renderLegend();
  renderFilterOptions();
  if (state.entries.size === 0) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "No sessions match in this period.";
    calendar.append(empty);
  }
}

function dayCell(day, entries, outside) {
  const cell = document.createElement("section");
  cell.className = "day-cell" + (outside ? " outside" : "") + (day === todayUTC() ? " today" : "")
    + (entries.length === 0 ? " no-sessions" : "");
  cell.dataset.day = day;
  const head = document.createElement("div");
  head.className = "day-head";
  const number = document.createElement("span");
  number.className = "day-number";
  number.textContent = String(parseDay(day).getUTCDate());
  const name = document.createElement("span");
  name.className = "day-name";
  name.textContent = shortDayFormat.format(parseDay(day));
  head.append(state.view === "day" ? dayFormat.format(parseDay(day)) : number, name);
  cell.append(head);
  if (!outside) for (const entry of entries) cell.append(sessionChip(entry, false));
  return cell;
}

function sessionChip(entry, changed) {
  const chip = document.createElement("button");
  chip.type = "button";
  chip.className = `session ${entry.level}` + (changed ? " changed" : "");
  chip.dataset.sessionId = entry.id.toLowerCase();
  chip.dataset.available = String(entry.available);
  chip.style.setProperty("--course", entry.color);
  const time = timeFormat.format(new Date(entry.start));
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = state.view === "month" ? `${time} ${abbreviation(entry.title)}` : `${time} ${entry.title} · ${entry.location}`;
  const spots = document.createElement("span");
  spots.className = "spots";
  spots.textContent = spotsText(entry);
  chip.title = `${entry.title}, ${entry.location}, ${time} UTC: ${spotsText(entry)} (${entry.percent_full}% full)`;
  chip.append(title, spots);
  chip.addEventListener("click", () => openDetail(entry.id.toLowerCase()));
  return chip;
}

/// "Emergency First Aid at Work" → "EFAW", "CPR and AED" → "CPR AED": month cells are narrow.
function abbreviation(title) {
  const words = title.split(/\s+/).filter((word) => !["and", "at", "of", "the", "&"].includes(word.toLowerCase()));
  if (words.some((word) => word.length > 1 && word === word.toUpperCase())) return words.join(" ");
  return words.map((word) => word[0].toUpperCase()).join("");
}

function spotsText(entry) {
  if (entry.level === "closed") return "Closed";
  if (entry.level === "full" || entry.available <= 0) return entry.waiting > 0 ? `Full · ${entry.waiting} waiting` : "Full";
  return `${entry.available} left`;
}

function rangeLabel(first, last) {
  if (state.view === "month") return monthFormat.format(parseDay(first));
  if (state.view === "day") return dayFormat.format(parseDay(first));
  return `${shortDayFormat.format(parseDay(first))} – ${shortDayFormat.format(parseDay(last))}`;
}

function renderLegend() {
  const legend = $("#legend");
  legend.replaceChildren();
  for (const [course, color] of [...state.courses.entries()].sort()) {
    const item = document.createElement("li");
    item.style.setProperty("--swatch", color);
    item.textContent = course;
    legend.append(item);
  }
  const low = document.createElement("li");
  low.className = "key-low";
  low.textContent = "3 or fewer left";
  const full = document.createElement("li");
  full.className = "key-full";
  full.textContent = "Full";
  legend.append(low, full);
}

function renderFilterOptions() {
  fillSelect($("#filter-course"), "All courses", [...state.courses.keys()].sort(), state.course);
  fillSelect($("#filter-location"), "All locations", [...state.locations].sort(), state.location);
  $("#filter-availability").value = state.availability;
}

function fillSelect(select, allLabel, values, selected) {
  select.replaceChildren(new Option(allLabel, ""), ...values.map((value) => new Option(value, value)));
  select.value = selected;
}

function showNotice(text) {
  const notice = $("#notice");
  notice.textContent = text;
  notice.hidden = false;
}

function hideNotice() {
  $("#notice").hidden = true;
}

// ---------------------------------------------------------------- detail and demo booking

function openDetail(id) {
  const entry = state.entries.get(id);
  if (!entry) return;
  state.openSessionId = id;
  $("#book-result").textContent = "";
  $("#book-form").hidden = !state.demo;
  $("#read-only").hidden = state.demo;
  fillDetail(entry);
  $("#detail").showModal();
}

function fillDetail(entry) {
  $("#detail").style.setProperty("--course", entry.color);
  $("#detail-title").textContent = entry.title;
  const start = new Date(entry.start);
  $("#detail-when").textContent = `${dayFormat.format(start)}, ${timeFormat.format(start)}–${timeFormat.format(new Date(entry.end))} UTC`;
  $("#detail-where").textContent = entry.location;
  $("#detail-available").textContent = spotsText(entry);
  $("#detail-counts").textContent = `of ${entry.capacity} seats · ${entry.booked} booked, ${entry.held} held`;
  const bookable = entry.level === "open" || entry.level === "low";
  $("#book-confirm").disabled = !bookable;
  $("#book-hold").disabled = !bookable;
  const waiting = [...state.line.values()].some((mine) => mine.session_id === entry.id.toLowerCase() && ["waiting", "offered"].includes(mine.status));
  $("#waitlist-form").hidden = !state.demo || entry.level !== "full" || waiting;
}

// ---------------------------------------------------------------- the visitor's own waitlist entries (demo mode)

/// Loads this visitor's entries and follows their private topic with a token minted for it.
async function followLine() {
  const customer = demoCustomer();
  try {
    const response = await fetch("/api/v1/waitlist?customer_id=" + encodeURIComponent(customer), { cache: "no-store" });
    if (response.ok) {
      for (const entry of (await response.json()).entries) state.line.set(entry.id, entry);
    }
    const minted = await fetch("/api/v1/tokens", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sub: customer, topics: ["user." + customer], ttl_seconds: 86400 }),
    });
    if (!minted.ok) return;
    state.privateToken = (await minted.json()).token;
    // From the calendar snapshot's id: what changed since is replayed, so nothing falls between the two reads.
    state.privateLastEventId = state.lastEventId;
    openPrivateStream();
  } catch {
    // The calendar works without it; the visitor's line shows again on the next load.
  }
  renderLine();
}

/// The visitor's private topic; reopened from its last id if it is refused (the fan-out restarting).
function openPrivateStream() {
  if (state.privateSource) state.privateSource.close();
  const customer = demoCustomer();
  const params = new URLSearchParams({ topic: "user." + customer, token: state.privateToken });
  if (state.privateLastEventId !== null) params.set("last_event_id", String(state.privateLastEventId));
  const source = new EventSource("/events?" + params);
  state.privateSource = source;
  source.addEventListener("waitlist.updated", (event) => {
    if (event.lastEventId) state.privateLastEventId = Number(event.lastEventId);
    applyLineUpdate(JSON.parse(event.data));
  });
  source.addEventListener("reset", () => {
    state.privateLastEventId = null;
    state.line.clear();
    followLine();
  });
  source.onerror = () => {
    if (state.privateSource === source && source.readyState === EventSource.CLOSED) setTimeout(openPrivateStream, 2000);
  };
}

/// One `waitlist.updated` event about the visitor's own entry.
function applyLineUpdate(update) {
  const entry = state.line.get(update.waitlist_id) || { id: update.waitlist_id, session_id: update.session_id };
  Object.assign(entry, { status: update.status, position: update.position, offer: update.offer });
  state.line.set(entry.id, entry);
  renderLine();
  const open = state.openSessionId && state.entries.get(state.openSessionId);
  if (open) fillDetail(open);
}

function renderLine() {
  const section = $("#my-line");
  section.replaceChildren();
  clearInterval(state.lineTimer);
  const live = [...state.line.values()].filter((entry) => ["waiting", "offered"].includes(entry.status));
  for (const entry of live) {
    const session = state.entries.get(String(entry.session_id).toLowerCase());
    const name = session ? `${session.title}, ${dayFormat.format(new Date(session.start))}` : "a full session";
    const row = document.createElement("div");
    row.className = `line-entry ${entry.status}`;
    row.dataset.waitlistId = entry.id;
    if (entry.status === "waiting") {
      row.textContent = `You are number ${entry.position} in line for ${name}.`;
    } else {
      const text = document.createElement("span");
      text.className = "offer-text";
      text.dataset.expiresAt = entry.offer && entry.offer.expires_at ? entry.offer.expires_at : "";
      const accept = document.createElement("button");
      accept.type = "button";
      accept.className = "offer-accept";
      accept.textContent = "Accept";
      accept.addEventListener("click", () => answerOffer(entry, "confirm"));
      const decline = document.createElement("button");
      decline.type = "button";
      decline.className = "offer-decline";
      decline.textContent = "Decline";
      decline.addEventListener("click", () => answerOffer(entry, "cancel"));
      row.append(text, accept, decline);
      text.textContent = offerText(name, text.dataset.expiresAt);
      text.dataset.name = name;
    }
    section.append(row);
  }
  section.hidden = live.length === 0;
  if (live.some((entry) => entry.status === "offered")) {
    state.lineTimer = setInterval(() => {
      for (const text of document.querySelectorAll("#my-line .offer-text")) text.textContent = offerText(text.dataset.name, text.dataset.expiresAt);
    }, 1000);
  }
}

function offerText(name, expiresAt) {
  if (!expiresAt) return `A seat is yours on ${name}.`;
  const left = Math.max(0, Math.round((new Date(expiresAt) - Date.now()) / 1000));
  return `A seat is held for you on ${name}: ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} left to accept.`;
}

async function answerOffer(entry, action) {
  if (!entry.offer) return;
  const response = await fetch(`/api/v1/bookings/${entry.offer.booking_id}/${action}`, {
    method: "POST",
    headers: { "Idempotency-Key": idempotencyKey() },
  });
  if (!response.ok) {
    showNotice(await problemText(response));
    return;
  }
  // The stream says so too; the page need not wait for it.
  entry.status = action === "confirm" ? "accepted" : "declined";
  renderLine();
}

async function joinWaitlist() {
  const id = state.openSessionId;
  const result = $("#book-result");
  result.className = "book-result";
  result.textContent = "Joining the waitlist…";
  const response = await fetch(`/api/v1/sessions/${id}/waitlist`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Idempotency-Key": idempotencyKey() },
    body: JSON.stringify({
      customer_id: demoCustomer(),
      adult_count: Number($("#book-adults").value) || 0,
      child_count: Number($("#book-children").value) || 0,
    }),
  });
  if (!response.ok) {
    result.className = "book-result error";
    result.textContent = await problemText(response);
    return;
  }
  const entry = await response.json();
  state.line.set(entry.id, entry);
  result.textContent = `You are number ${entry.position} in line.`;
  renderLine();
  fillDetail(state.entries.get(id));
}

function demoCustomer() {
  let id = localStorage.getItem("vacancy-demo-customer");
  if (!id) {
    id = "demo-" + Math.random().toString(36).slice(2, 10);
    localStorage.setItem("vacancy-demo-customer", id);
  }
  return id;
}

function idempotencyKey() {
  return self.crypto && crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

async function book(hold) {
  const id = state.openSessionId;
  const result = $("#book-result");
  result.className = "book-result";
  result.textContent = "Booking…";
  const body = {
    session_id: id,
    customer_id: demoCustomer(),
    adult_count: Number($("#book-adults").value) || 0,
    child_count: Number($("#book-children").value) || 0,
  };
  if (hold) body.hold_seconds = 600;
  try {
    const response = await fetch("/api/v1/bookings", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": idempotencyKey() },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      result.className = "book-result error";
      result.textContent = await problemText(response);
      return;
    }
    const booking = await response.json();
    result.textContent = booking.status === "held"
      ? `Held ${booking.seats} seat(s) until ${timeFormat.format(new Date(booking.expires_at))} UTC.`
      : `Booked ${booking.seats} seat(s). Reference ${booking.id.slice(0, 8)}.`;
  } catch (error) {
    result.className = "book-result error";
    result.textContent = `Could not book: ${error.message}`;
  }
}

// ---------------------------------------------------------------- controls

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (["month", "week", "day"].includes(params.get("view"))) state.view = params.get("view");
  if (/^\d{4}-\d{2}-\d{2}$/.test(params.get("date") || "")) state.date = params.get("date");
  state.course = params.get("course") || "";
  state.location = params.get("location") || "";
  if (["any", "available", "low", "full"].includes(params.get("availability"))) state.availability = params.get("availability");
}

function writeHash() {
  const params = new URLSearchParams({ view: state.view, date: state.date });
  if (state.course) params.set("course", state.course);
  if (state.location) params.set("location", state.location);
  if (state.availability !== "any") params.set("availability", state.availability);
  history.replaceState(null, "", "#" + params);
  for (const button of document.querySelectorAll("[data-view]")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === state.view));
  }
}

function move(direction) {
  if (state.view === "month") state.date = addMonths(state.date, direction);
  else state.date = addDays(state.date, state.view === "week" ? 7 * direction : direction);
  refresh();
}

function wireControls() {
  for (const button of document.querySelectorAll("[data-view]")) {
    button.addEventListener("click", () => {
      state.view = button.dataset.view;
      refresh();
    });
  }
  $("#previous").addEventListener("click", () => move(-1));
  $("#next").addEventListener("click", () => move(1));
  $("#today").addEventListener("click", () => {
    state.date = todayUTC();
    refresh();
  });
  $("#filter-course").addEventListener("change", (event) => {
    state.course = event.target.value;
    refresh();
  });
  $("#filter-location").addEventListener("change", (event) => {
    state.location = event.target.value;
    refresh();
  });
  $("#filter-availability").addEventListener("change", (event) => {
    state.availability = event.target.value;
    refresh();
  });
  $("#book-form").addEventListener("submit", (event) => {
    event.preventDefault();
    book(event.submitter && event.submitter.value === "hold");
  });
  $("#waitlist-join").addEventListener("click", () => joinWaitlist());
  $("#detail").addEventListener("close", () => {
    state.openSessionId = null;
  });
  window.addEventListener("hashchange", () => {
    readHash();
    refresh();
  });
  window.addEventListener("online", () => refresh());
}

async function start() {
  readHash();
  wireControls();
  try {
    const config = await (await fetch("/config.json", { cache: "no-store" })).json();
    state.demo = Boolean(config.demo);
  } catch {
    state.demo = false;
  }
  await refresh();
  if (state.demo) followLine();
}

start();
