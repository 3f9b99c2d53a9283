// The radiologist's worklist, live: applies websocket deltas in place, re-sorts,
// resyncs on reconnect or a sequence gap, polls while disconnected, and drives
// the table from the keyboard. No framework: htmx handles the row actions.

const table = document.querySelector("table.worklist");
const tbody = document.getElementById("worklist-rows");
const statusLine = document.getElementById("live-status");
const rowsUrl = table?.dataset.rowsUrl ?? "/worklist/rows/";
const POLL_MS = 15000;
const MAX_RETRY_MS = 30000;

let lastSeq = null;
let epoch = null;
let retryMs = 1000;
let pollTimer = null;
let syncing = null;

function setStatus(state, text) {
  if (!statusLine) return;
  statusLine.dataset.state = state;
  statusLine.textContent = text;
}

function rows() {
  return Array.from(tbody.querySelectorAll("tr.study"));
}

function focusedRowId() {
  const row = document.activeElement?.closest?.("tr.study");
  return row ? row.id : null;
}

function restoreFocus(id) {
  if (!id) return;
  const row = document.getElementById(id);
  if (row) focusRow(row);
}

function compare(a, b) {
  const score = Number(b.dataset.score) - Number(a.dataset.score);
  if (score !== 0) return score;
  const since = Date.parse(a.dataset.since || "9999") - Date.parse(b.dataset.since || "9999");
  if (since !== 0) return since;
  return Number(a.dataset.id) - Number(b.dataset.id);
}

function sortRows() {
  const focused = focusedRowId();
  const sorted = rows().sort(compare);
  sorted.forEach((row) => tbody.appendChild(row));
  const empty = tbody.querySelector("tr.empty");
  if (empty && sorted.length) empty.remove();
  restoreFocus(focused);
}

function parseRow(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.querySelector("tr.study");
}

async function resync() {
  // One resync at a time; a second request waits for the running one.
  if (syncing) return syncing;
  syncing = (async () => {
    const focused = focusedRowId();
    const response = await fetch(rowsUrl, { credentials: "same-origin" });
    if (response.ok) {
      tbody.innerHTML = await response.text();
      window.htmx?.process(tbody);
      updateWaiting();
      restoreFocus(focused);
      tbody.dataset.synced = String(Date.now());
    }
  })().finally(() => {
    syncing = null;
  });
  return syncing;
}

async function applyUpsert(upsert) {
  const current = document.getElementById(`study-${upsert.id}`);
  if (current && Number(current.dataset.version) >= upsert.version) {
    // Same content, new score (waiting time): re-sort only.
    current.dataset.score = String(upsert.priority_score);
    const score = current.querySelector(".score");
    if (score) score.textContent = String(Math.round(upsert.priority_score));
    return;
  }
  const response = await fetch(`${rowsUrl}${upsert.id}/`, { credentials: "same-origin" });
  const existing = document.getElementById(`study-${upsert.id}`);
  if (response.status === 204 || response.status === 404) {
    existing?.remove();
    return;
  }
  if (!response.ok) return;
  const fresh = parseRow(await response.text());
  if (!fresh) return;
  if (existing) {
    if (Number(existing.dataset.version) > Number(fresh.dataset.version)) return;
    const hadFocus = existing.contains(document.activeElement);
    existing.replaceWith(fresh);
    if (hadFocus) focusRow(fresh);
  } else {
    tbody.appendChild(fresh);
  }
  window.htmx?.process(fresh);
  fresh.classList.add("flash");
}

async function handle(message) {
  if (message.type === "worklist.resync") {
    await resync();
    return;
  }
  if (message.type !== "worklist.delta") return;
  const gap = lastSeq !== null && (message.epoch !== epoch || message.seq !== lastSeq + 1);
  lastSeq = message.seq;
  epoch = message.epoch;
  if (gap) {
    await resync();
    return;
  }
  for (const id of message.removed) document.getElementById(`study-${id}`)?.remove();
  await Promise.all(message.upserted.map(applyUpsert));
  sortRows();
  updateWaiting();
}

function startPolling() {
  if (pollTimer === null) pollTimer = setInterval(resync, POLL_MS);
}

function stopPolling() {
  if (pollTimer !== null) clearInterval(pollTimer);
  pollTimer = null;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/worklist/`);
  socket.addEventListener("open", () => {
    retryMs = 1000;
    lastSeq = null;
    stopPolling();
    setStatus("live", "Live");
    // Whatever changed while we were away (or since the page was rendered).
    resync();
  });
  socket.addEventListener("message", (event) => {
    handle(JSON.parse(event.data));
  });
  socket.addEventListener("close", (event) => {
    // 4401: the session ended (logged out elsewhere, or expired): sign in again.
    if (event.code === 4401) {
      window.location.assign("/accounts/login/");
      return;
    }
    setStatus("offline", "Offline: refreshing every 15 s, reconnecting…");
    startPolling();
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
  });
}

// --- live waiting time ---------------------------------------------------------

function waitingText(minutes) {
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

function updateWaiting() {
  const now = Date.now();
  for (const time of tbody.querySelectorAll("time.waiting")) {
    const since = Date.parse(time.getAttribute("datetime"));
    if (!Number.isNaN(since)) time.textContent = waitingText(Math.max(0, Math.floor((now - since) / 60000)));
  }
}

// --- keyboard --------------------------------------------------------------------

function focusRow(row) {
  for (const other of tbody.querySelectorAll('tr.study[tabindex="0"]')) other.tabIndex = -1;
  row.tabIndex = 0;
  row.focus();
}

function move(step) {
  const all = rows();
  if (!all.length) return;
  const current = document.activeElement?.closest?.("tr.study");
  const index = current ? all.indexOf(current) : -1;
  const next = all[Math.min(Math.max(index + step, 0), all.length - 1)];
  focusRow(next);
}

document.addEventListener("keydown", (event) => {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.target;
  if (target.closest?.("input, select, textarea, [contenteditable]")) return;
  const row = target.closest?.("tr.study");
  switch (event.key) {
    case "j":
    case "ArrowDown":
      move(1);
      break;
    case "k":
    case "ArrowUp":
      move(-1);
      break;
    case "Enter":
      if (!row || target !== row) return;
      row.querySelector("a.open")?.click();
      break;
    case "c":
      if (!row) return;
      row.querySelector("button.claim")?.click();
      break;
    case "r":
      if (!row) return;
      row.querySelector("button.release")?.click();
      break;
    default:
      return;
  }
  event.preventDefault();
});

if (table && tbody) {
  const first = rows()[0];
  if (first) first.tabIndex = 0;
  updateWaiting();
  setInterval(updateWaiting, 30000);
  connect();
  // For tests and the curious: the live state, read-only.
  window.radtriageWorklist = { resync, handle, get lastSeq() { return lastSeq; } };
}
