// Vacancy's live calendar: render a snapshot from /api/v1/calendar, then follow /events
// from the snapshot's last_event_id and update seat counts in place. Plain JavaScript,
// no build step. Each session is on its venue's clock: its `date` is the day it starts
// there, its times are `local_start`/`local_end`, and the zone's abbreviation is shown when
// it is not the visitor's own. Week and day views are a time grid; the month shows four
// sessions a day and "+N more". Arrow keys move between days, Enter goes into a day's
// sessions, Escape back out; PageUp/PageDown change the period.
"use strict";

const VISITOR_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const MONTH_SESSIONS_PER_DAY = 4;
const HOUR_PX = 44;              // the time grid's height of one hour
const POLL_MS = 5000;            // the fallback's pace while streaming is not possible
const STREAM_FAILURES_BEFORE_POLLING = 3;
const MAX_REOPEN_DELAY_MS = 15000;

const state = {
  view: "month",
  date: todayIn(VISITOR_ZONE),
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
  focusDay: null,          // the day that has the keyboard's focus (roving tabindex)
  nowTimer: null,
  grid: null,              // the time grid shown: its days, hours and the zone its now line reads
  presence: new Map(),     // topic → open streams following it, cluster-wide
};

const $ = (selector) => document.querySelector(selector);

// ---------------------------------------------------------------- days and venue clocks

// Days are civil dates (YYYY-MM-DD); their arithmetic is done on UTC midnights, which have
// no clock changes. Times of day come from each session's own local_start and local_end.

/// Today's date on the clock of `zone`.
function todayIn(zone) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" })
      .formatToParts(new Date()).map((part) => [part.type, part.value]));
  return `${parts.year}-${parts.month}-${parts.day}`;
}

/// Minutes since midnight on the clock of `zone`, now.
function minutesNowIn(zone) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-GB", { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
      .formatToParts(new Date()).map((part) => [part.type, part.value]));
  return Number(parts.hour) * 60 + Number(parts.minute);
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

// Formats of civil days (formatted as UTC midnights, so no zone shifts them).
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric", timeZone: "UTC" });
const monthFormat = new Intl.DateTimeFormat(undefined, { month: "long", year: "numeric", timeZone: "UTC" });
const shortDayFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
const clockFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const hourFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: "UTC" });

/// "09:00" from "2027-07-01T09:00:00+01:00": the venue's clock, as the API gives it.
function clockOf(localTime) {
  return String(localTime).slice(11, 16);
}

/// Minutes since the local midnight of `day` (past 24 h for a time on a later day).
function minutesOf(localTime, day) {
  const text = String(localTime);
  const days = (parseDay(text.slice(0, 10)) - parseDay(day)) / 86400000;
  return days * 1440 + Number(text.slice(11, 13)) * 60 + Number(text.slice(14, 16));
}

const abbreviations = new Map();
/// The short name of `zone` at `instant` ("BST", "EST", "GMT+14"), cached per zone and offset:
/// the visitor's locale's if it has a lettered one, else American or British English's (each
/// knows its own zones' letters), else the offset.
function zoneAbbreviation(zone, instant, localTime) {
  const key = zone + String(localTime).slice(19);
  if (!abbreviations.has(key)) {
    const names = [undefined, "en-US", "en-GB"].map((locale) => {
      const part = new Intl.DateTimeFormat(locale, { timeZone: zone, timeZoneName: "short" })
        .formatToParts(new Date(instant)).find((item) => item.type === "timeZoneName");
      return part ? part.value : zone;
    });
    abbreviations.set(key, names.find((name) => /^[A-Z]{2,5}$/.test(name)) || names[0]);
  }
  return abbreviations.get(key);
}

/// The venue's abbreviation when its zone is not the visitor's, else "".
function zoneNote(entry) {
  if (!entry.time_zone || entry.time_zone === VISITOR_ZONE) return "";
  return zoneAbbreviation(entry.time_zone, entry.start, entry.local_start);
}

/// "09:00–12:30" on the venue's clock, with the zone when it is not the visitor's.
function whenText(entry) {
  const note = zoneNote(entry);
  return `${clockOf(entry.local_start)}–${clockOf(entry.local_end)}` + (note ? ` ${note}` : "");
}

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
  loadPresence();
}

// ---------------------------------------------------------------- who is watching

/// The topics the stream follows: the visible days, and the open session's own while its
/// detail is shown (so this visitor counts among its viewers).
function streamTopics() {
  const topics = [...state.topics];
  if (state.openSessionId) topics.push(sessionTopic(state.openSessionId));
  return topics.slice(0, 32);
}

function sessionTopic(id) {
  return "availability.session." + id.toLowerCase();
}

/// Fetches the current counts of what is followed; `presence` events keep them up to date.
async function loadPresence() {
  const topics = streamTopics();
  if (!topics.length) return;
  const params = new URLSearchParams();
  for (const topic of topics) params.append("topic", topic);
  try {
    const response = await fetch("/api/v1/presence?" + params, { cache: "no-store" });
    if (!response.ok) return;
    const answer = await response.json();
    for (const [topic, watching] of Object.entries(answer.topics)) state.presence.set(topic, watching);
    paintPresence();
  } catch {
    // Counts are a nicety: without them the calendar works the same.
  }
}

function viewingText(count) {
  return count > 0 ? `${count} viewing` : "";
}

/// Writes "N viewing" on each visible day and on the open session's detail.
function paintPresence() {
  // A month's day cells, or a week's or day's column labels (their cells' heads are hidden).
  for (const place of document.querySelectorAll(".day-cell[data-day] .day-head, .grid-day-label[data-day]")) {
    const day = place.dataset.day || place.closest("[data-day]").dataset.day;
    const count = state.presence.get("availability." + day) || 0;
    let badge = place.querySelector(".viewing");
    if (!badge && count > 0) {
      badge = document.createElement("span");
      badge.className = "viewing";
      place.append(" ", badge);
    }
    if (badge) badge.textContent = viewingText(count);
  }
  const detail = $("#detail-viewing");
  if (detail) detail.textContent = state.openSessionId ? viewingText(state.presence.get(sessionTopic(state.openSessionId)) || 0) : "";
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
  for (const topic of streamTopics()) params.append("topic", topic);
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
  source.addEventListener("presence", (event) => {
    const { topic, watching } = JSON.parse(event.data);
    state.presence.set(topic, watching);
    paintPresence();
  });
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
    // Same place in the grid, same focus; new counts and styles.
    const fresh = sessionChip(entry, true);
    fresh.style.cssText = chip.style.cssText;
    const focused = document.activeElement === chip;
    fresh.tabIndex = chip.tabIndex;
    chip.replaceWith(fresh);
    if (focused) fresh.focus();
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
  calendar.replaceChildren();
  const first = String(snapshot.start).slice(0, 10);
  const last = String(snapshot.end).slice(0, 10);
  const byDay = new Map();
  for (const entry of state.entries.values()) {
    if (!byDay.has(entry.date)) byDay.set(entry.date, []);
    byDay.get(entry.date).push(entry);
  }
  for (const list of byDay.values()) list.sort((a, b) => String(a.start).localeCompare(String(b.start)));
  state.range = { first, last };
  if (!state.focusDay || state.focusDay < first || state.focusDay > last) state.focusDay = first <= state.date && state.date <= last ? state.date : first;
  if (state.view === "month") renderMonth(calendar, first, last, byDay);
  else renderGrid(calendar, first, last, byDay);
  $("#range-label").textContent = rangeLabel(first, last);
  renderLegend();
  renderFilterOptions();
  if (state.entries.size === 0) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "No sessions match in this period.";
    calendar.append(empty);
  }
  if (state.keyboardFocus) {
    state.keyboardFocus = false;
    const cell = calendar.querySelector(`[data-day="${state.focusDay}"]`);
    if (cell) cell.focus();
  }
}

// ---------------------------------------------------------------- keyboard

/// Arrow keys move between days (a week up or down), Home and End to the week's ends,
/// PageUp and PageDown by a period, Enter or Space into a day's sessions (or, for a month
/// day without any, to that day), Escape back to the day, and "t" to today.
function onCalendarKey(event) {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.target;
  const cell = target.closest("[data-day]");
  if (!cell || cell.classList.contains("outside")) return;
  const day = cell.dataset.day;
  if (target !== cell) {
    const items = [...cell.querySelectorAll(".session, .more")];
    const index = items.indexOf(target);
    if (event.key === "Escape") focusDay(day);
    else if (event.key === "ArrowDown" && items[index + 1]) items[index + 1].focus();
    else if (event.key === "ArrowUp" && items[index - 1]) items[index - 1].focus();
    else return;
    event.preventDefault();
    return;
  }
  const steps = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -7, ArrowDown: 7, Home: -weekdayIndex(day), End: 6 - weekdayIndex(day) };
  if (event.key in steps) {
    focusDay(addDays(day, steps[event.key]));
  } else if (event.key === "PageUp" || event.key === "PageDown") {
    const direction = event.key === "PageUp" ? -1 : 1;
    focusDay(state.view === "month" ? addMonths(day, direction) : addDays(day, (state.view === "week" ? 7 : 1) * direction));
  } else if (event.key === "Enter" || event.key === " ") {
    const first = cell.querySelector(".session, .more");
    if (first) first.focus();
    else if (state.view === "month") openDay(day);
  } else if (event.key === "t") {
    focusDay(todayIn(VISITOR_ZONE));
  } else {
    return;
  }
  event.preventDefault();
}

/// Gives `day` the keyboard's focus, moving to its period first when it is not shown.
function focusDay(day) {
  state.focusDay = day;
  if (state.range && day >= state.range.first && day <= state.range.last) {
    for (const cell of document.querySelectorAll("#calendar [data-day]")) {
      if (!cell.classList.contains("outside")) cell.tabIndex = cell.dataset.day === day ? 0 : -1;
    }
    const cell = document.querySelector(`#calendar [data-day="${day}"]`);
    if (cell) cell.focus();
    return;
  }
  state.date = day;
  state.keyboardFocus = true;
  refresh();
}

/// The month: a cell a day, at most four sessions in it and "+N more" that opens the day.
function renderMonth(calendar, first, last, byDay) {
  calendar.className = "calendar month";
  for (const name of ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]) {
    const head = document.createElement("div");
    head.className = "weekday";
    head.textContent = name;
    head.setAttribute("aria-hidden", "true");
    calendar.append(head);
  }
  const gridStart = addDays(first, -weekdayIndex(first));
  const gridEnd = addDays(last, 6 - weekdayIndex(last));
  for (let day = gridStart; day <= gridEnd; day = addDays(day, 1)) {
    const entries = byDay.get(day) || [];
    const outside = day < first || day > last;
    const cell = dayCell(day, entries, outside);
    if (!outside) {
      for (const entry of entries.slice(0, MONTH_SESSIONS_PER_DAY)) cell.append(sessionChip(entry, false));
      if (entries.length > MONTH_SESSIONS_PER_DAY) {
        const more = document.createElement("button");
        more.type = "button";
        more.className = "more";
        more.textContent = `+${entries.length - MONTH_SESSIONS_PER_DAY} more`;
        more.setAttribute("aria-label", `${entries.length - MONTH_SESSIONS_PER_DAY} more sessions on ${dayFormat.format(parseDay(day))}`);
        more.addEventListener("click", () => openDay(day));
        cell.append(more);
      }
    }
    calendar.append(cell);
  }
}

function dayCell(day, entries, outside) {
  const cell = document.createElement("section");
  cell.className = "day-cell" + (outside ? " outside" : "") + (day === todayIn(VISITOR_ZONE) ? " today" : "")
    + (entries.length === 0 ? " no-sessions" : "");
  cell.dataset.day = day;
  if (!outside) {
    cell.tabIndex = day === state.focusDay ? 0 : -1;
    cell.setAttribute("aria-label", `${dayFormat.format(parseDay(day))}, ${entries.length} session${entries.length === 1 ? "" : "s"}`);
  }
  const head = document.createElement("div");
  head.className = "day-head";
  const number = document.createElement("span");
  number.className = "day-number";
  number.textContent = String(parseDay(day).getUTCDate());
  const name = document.createElement("span");
  name.className = "day-name";
  name.textContent = shortDayFormat.format(parseDay(day));
  head.append(number, name);
  cell.append(head);
  return cell;
}

/// Week and day: hours down the side, each session placed and sized by its local times,
/// sessions that overlap side by side, and the current time marked on today.
function renderGrid(calendar, first, last, byDay) {
  calendar.className = `calendar ${state.view} grid`;
  const days = [];
  for (let day = first; day <= last; day = addDays(day, 1)) days.push(day);
  // The hours shown: 08:00–18:00 at least, stretched to every session of the period and,
  // when today is shown, to the time it is now.
  const pageZone = pageTimeZone();
  const today = todayIn(pageZone);
  let from = 8 * 60;
  let to = 18 * 60;
  if (days.includes(today)) {
    const now = minutesNowIn(pageZone);
    from = Math.min(from, Math.floor(now / 60) * 60);
    to = Math.max(to, Math.min(24 * 60, Math.floor(now / 60) * 60 + 60));
  }
  for (const day of days) {
    for (const entry of byDay.get(day) || []) {
      from = Math.min(from, Math.floor(minutesOf(entry.local_start, day) / 60) * 60);
      to = Math.max(to, Math.min(24 * 60, Math.ceil(minutesOf(entry.local_end, day) / 60) * 60));
    }
  }
  from = Math.max(0, from);
  calendar.style.setProperty("--days", String(days.length));
  calendar.style.setProperty("--grid-height", `${((to - from) / 60) * HOUR_PX}px`);

  const head = document.createElement("div");
  head.className = "grid-head";
  head.append(document.createElement("div"));
  for (const day of days) {
    const label = document.createElement("div");
    label.className = "grid-day-label" + (day === todayIn(VISITOR_ZONE) ? " today" : "");
    label.textContent = state.view === "day" ? dayFormat.format(parseDay(day)) : shortDayFormat.format(parseDay(day));
    label.dataset.day = day;
    head.append(label);
  }
  const body = document.createElement("div");
  body.className = "grid-body";
  const hours = document.createElement("div");
  hours.className = "hours";
  hours.setAttribute("aria-hidden", "true");
  for (let minute = from; minute < to; minute += 60) {
    const hour = document.createElement("div");
    hour.className = "hour";
    hour.textContent = hourFormat.format(new Date(Date.UTC(2000, 0, 1, minute / 60)));
    hours.append(hour);
  }
  body.append(hours);
  for (const day of days) {
    const entries = byDay.get(day) || [];
    const column = dayCell(day, entries, false);
    column.classList.add("day-column");
    for (const { entry, lane, lanes } of layOut(entries, day)) {
      const chip = sessionChip(entry, false);
      const start = Math.max(from, minutesOf(entry.local_start, day));
      const end = Math.min(to, Math.max(start + 30, minutesOf(entry.local_end, day)));
      chip.style.top = `${((start - from) / 60) * HOUR_PX}px`;
      chip.style.height = `${((end - start) / 60) * HOUR_PX - 2}px`;
      chip.style.left = `calc(${(lane / lanes) * 100}% + 2px)`;
      chip.style.width = `calc(${100 / lanes}% - 4px)`;
      column.append(chip);
    }
    if (day === today) {
      const now = minutesNowIn(pageZone);
      if (now >= from && now <= to) {
        const line = document.createElement("div");
        line.className = "now-line";
        line.style.top = `${((now - from) / 60) * HOUR_PX}px`;
        line.title = `now, ${hourFormat.format(new Date(Date.UTC(2000, 0, 1, 0, now)))}`;
        column.append(line);
      }
    }
    body.append(column);
  }
  calendar.append(head, body);
  state.grid = { first, last, from, to, zone: pageZone, today };
  scheduleNowLine();
}

/// Moves the now line every minute (redrawing the grid only when the day turns), without
/// touching the rest of the page, so the keyboard's focus stays where it is.
function scheduleNowLine() {
  clearTimeout(state.nowTimer);
  state.nowTimer = setTimeout(() => {
    const grid = state.grid;
    if (state.view === "month" || !grid) return;
    if (todayIn(grid.zone) !== grid.today) return render({ start: grid.first, end: grid.last });
    const line = document.querySelector(".now-line");
    const now = minutesNowIn(grid.zone);
    if (line && now <= grid.to) line.style.top = `${((now - grid.from) / 60) * HOUR_PX}px`;
    scheduleNowLine();
  }, 60000);
}

/// The zone the grid's "now" is read on: the one every shown session shares, else the visitor's.
function pageTimeZone() {
  const zones = new Set([...state.entries.values()].map((entry) => entry.time_zone).filter(Boolean));
  return zones.size === 1 ? [...zones][0] : VISITOR_ZONE;
}

/// Sessions of one day in lanes: overlapping ones side by side, each group as wide as it needs.
function layOut(entries, day) {
  const sorted = [...entries].sort((a, b) => minutesOf(a.local_start, day) - minutesOf(b.local_start, day));
  const placed = [];
  let group = [];
  let laneEnds = [];
  let groupEnd = -Infinity;
  const close = () => {
    for (const item of group) item.lanes = laneEnds.length;
    group = [];
    laneEnds = [];
  };
  for (const entry of sorted) {
    const start = minutesOf(entry.local_start, day);
    const end = Math.max(start + 30, minutesOf(entry.local_end, day));
    if (start >= groupEnd) close();
    let lane = laneEnds.findIndex((laneEnd) => laneEnd <= start);
    if (lane === -1) {
      lane = laneEnds.length;
      laneEnds.push(end);
    } else {
      laneEnds[lane] = end;
    }
    groupEnd = group.length === 0 ? end : Math.max(groupEnd, end);
    const item = { entry, lane, lanes: 1 };
    group.push(item);
    placed.push(item);
  }
  close();
  return placed;
}

function sessionChip(entry, changed) {
  const chip = document.createElement("button");
  chip.type = "button";
  chip.className = `session ${entry.level}` + (changed ? " changed" : "");
  chip.dataset.sessionId = entry.id.toLowerCase();
  chip.dataset.available = String(entry.available);
  chip.dataset.timeZone = entry.time_zone || "";
  chip.tabIndex = -1;
  chip.style.setProperty("--course", entry.color);
  const note = zoneNote(entry);
  const time = clockOf(entry.local_start) + (note ? ` ${note}` : "");
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = state.view === "month" ? `${time} ${abbreviation(entry.title)}` : `${whenText(entry)} ${entry.title} · ${entry.location}`;
  const spots = document.createElement("span");
  spots.className = "spots";
  spots.textContent = spotsText(entry);
  chip.title = `${entry.title}, ${entry.location}, ${whenText(entry)}: ${spotsText(entry)} (${entry.percent_full}% full)`;
  chip.append(title, spots);
  chip.addEventListener("click", () => openDetail(entry.id.toLowerCase()));
  return chip;
}

function openDay(day) {
  state.view = "day";
  state.date = day;
  state.focusDay = day;
  refresh();
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
  // Follow the session's own topic while its detail is open (resuming from the last id, so
  // nothing is missed), and show how many others have it open.
  paintPresence();
  openStream();
  loadPresence();
}

function fillDetail(entry) {
  $("#detail").style.setProperty("--course", entry.color);
  $("#detail-title").textContent = entry.title;
  const zone = entry.time_zone && entry.time_zone !== VISITOR_ZONE ? ` (${entry.time_zone} time)` : "";
  $("#detail-when").textContent = `${dayFormat.format(parseDay(entry.date))}, ${whenText(entry)}${zone}`;
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
    const name = session ? `${session.title}, ${dayFormat.format(parseDay(session.date))} at ${clockOf(session.local_start)}` : "a full session";
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
    const until = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: VISITOR_ZONE })
      .format(new Date(booking.expires_at));
    result.textContent = booking.status === "held"
      ? `Held ${booking.seats} seat(s) until ${until} (your time).`
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
    state.date = todayIn(VISITOR_ZONE);
    state.focusDay = state.date;
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
  $("#calendar").addEventListener("keydown", onCalendarKey);
  $("#detail").addEventListener("close", () => {
    const wasOpen = state.openSessionId;
    state.openSessionId = null;
    paintPresence();
    if (wasOpen) openStream();
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
