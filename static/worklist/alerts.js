// The charge technologists' board: opens /ws/alerts/, fetches the card of each
// changed alert, chimes and notifies on a new one (unless muted), confirms
// receipt to the server (time-to-notification), resyncs on a sequence gap or a
// reconnect, and polls while disconnected.

const cards = document.getElementById("alert-cards");
const statusEl = document.getElementById("live-status");
const muteButton = document.getElementById("alert-mute");
const notifyButton = document.getElementById("alert-notify");
const cardsUrl = cards.dataset.cardsUrl;
const boardUrl = cards.dataset.cardUrl;
const live = cards.dataset.live === "1";
const MUTE_KEY = "radtriage.alerts.muted";

let socket = null;
let lastSeq = null;
let epoch = null;
let retryMs = 500;
let pollTimer = null;
let audio = null;

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

function muted() {
  return localStorage.getItem(MUTE_KEY) === "1";
}

function showMute() {
  muteButton.setAttribute("aria-pressed", muted() ? "true" : "false");
  muteButton.textContent = muted() ? "Unmute chime" : "Mute chime";
}

muteButton.addEventListener("click", () => {
  localStorage.setItem(MUTE_KEY, muted() ? "0" : "1");
  showMute();
});
showMute();

// Browsers start audio only after a user gesture: unlock on the first one.
document.addEventListener("pointerdown", () => {
  if (!audio && window.AudioContext) audio = new AudioContext();
  if (audio && audio.state === "suspended") audio.resume();
}, { once: true });

function chime() {
  if (muted()) return;
  if (!audio && window.AudioContext) audio = new AudioContext();
  if (!audio) return;
  const start = audio.currentTime;
  for (const [i, freq] of [880, 660, 880].entries()) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, start + i * 0.25);
    gain.gain.exponentialRampToValueAtTime(0.3, start + i * 0.25 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + i * 0.25 + 0.22);
    osc.connect(gain).connect(audio.destination);
    osc.start(start + i * 0.25);
    osc.stop(start + i * 0.25 + 0.24);
  }
}

if ("Notification" in window && Notification.permission === "default") {
  notifyButton.hidden = false;
  notifyButton.addEventListener("click", async () => {
    await Notification.requestPermission();
    notifyButton.hidden = Notification.permission === "default";
  });
}

function notify(card) {
  if (muted() || !("Notification" in window) || Notification.permission !== "granted") return;
  // No PHI in the notification: it shows on the desktop, maybe a shared one.
  new Notification("Critical finding", {
    body: `${card.dataset.finding} suspected: alert #${card.dataset.id}`,
    tag: `alert-${card.dataset.id}`,
  });
}

function confirmReceipts() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  for (const card of cards.querySelectorAll("article.alert-card:not([data-delivered='1'])")) {
    socket.send(JSON.stringify({ type: "alerts.received", id: Number(card.dataset.id) }));
    card.dataset.delivered = "1";
  }
}

function refreshTimes() {
  for (const el of cards.querySelectorAll("time.since")) {
    const at = Date.parse(el.getAttribute("datetime"));
    if (Number.isNaN(at)) continue;
    const minutes = Math.max(0, Math.floor((Date.now() - at) / 60000));
    el.textContent = minutes < 60 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }
}

async function resync() {
  const query = window.location.search || "";
  const response = await fetch(`${cardsUrl}${query}`, { credentials: "same-origin" });
  if (!response.ok) return;
  const before = new Set([...cards.querySelectorAll("article.alert-card")].map((c) => c.id));
  cards.innerHTML = await response.text();
  if (window.htmx) window.htmx.process(cards);
  const fresh = [...cards.querySelectorAll("article.alert-card[data-status='open']")]
    .filter((c) => !before.has(c.id));
  if (fresh.length && before.size) {
    chime();
    fresh.forEach(notify);
  }
  refreshTimes();
  confirmReceipts();
}

async function applyDelta(delta) {
  const current = document.getElementById(`alert-${delta.id}`);
  if (current && Number(current.dataset.version) >= delta.version) return;
  if (delta.status === "resolved" && live) {
    current?.remove();
    return;
  }
  const response = await fetch(`${boardUrl}${delta.id}/`, { credentials: "same-origin" });
  if (!response.ok) return;
  const holder = document.createElement("div");
  holder.innerHTML = (await response.text()).trim();
  const fresh = holder.firstElementChild;
  if (!fresh) return;
  const existing = document.getElementById(`alert-${delta.id}`);
  if (existing) {
    if (Number(existing.dataset.version) >= Number(fresh.dataset.version)) return;
    existing.replaceWith(fresh);
  } else if (live) {
    cards.querySelector(".no-alerts")?.remove();
    cards.prepend(fresh);
    if (delta.status === "open") {
      chime();
      notify(fresh);
    }
  } else {
    return;
  }
  if (window.htmx) window.htmx.process(fresh);
  refreshTimes();
  confirmReceipts();
}

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${window.location.host}/ws/alerts/`);
  socket.addEventListener("open", () => {
    retryMs = 500;
    lastSeq = null;
    clearInterval(pollTimer);
    setStatus("live", "Live");
    resync();
  });
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type !== "alerts.delta") return;
    // Web processes share one counter, so a delta can overtake an older one;
    // the resync its gap started already covers the older one.
    if (lastSeq !== null && message.epoch === epoch && message.seq <= lastSeq) return;
    const gap = lastSeq !== null && (message.epoch !== epoch || message.seq !== lastSeq + 1);
    lastSeq = message.seq;
    epoch = message.epoch;
    if (gap) resync();
    else applyDelta(message);
  });
  socket.addEventListener("close", (event) => {
    // 4401: the session ended (logged out elsewhere, or expired): sign in again.
    if (event.code === 4401) {
      window.location.assign("/accounts/login/");
      return;
    }
    setStatus("offline", "Reconnecting… (refreshing every 10 s)");
    clearInterval(pollTimer);
    pollTimer = setInterval(resync, 10000);
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 15000);
  });
}

setInterval(refreshTimes, 15000);
refreshTimes();
connect();
