// The chat page: the tutorial's /ws/{client_id} chat, with a client id that survives reconnects
// and reloads, a visible connection state, and a reconnect after a drop or a server restart.
import { Connection, appendMessage, bindComposer, describeClose, showState, socketUrl } from "./common.js";

const ID_KEY = "asgi_chat.client_id";

const list = document.getElementById("messages");
const status = document.getElementById("status");
const input = document.getElementById("messageText");
const sendButton = document.getElementById("send");
const reconnectButton = document.getElementById("reconnect");
const retryButton = document.getElementById("retry");

// A fresh six-digit id, kept in sessionStorage: that storage belongs to one tab, survives a
// reload, and is gone when the tab closes. The tutorial used Date.now(); six digits read better.
function newClientId() {
  const id = 100000 + (crypto.getRandomValues(new Uint32Array(1))[0] % 900000);
  try {
    sessionStorage.setItem(ID_KEY, String(id));
  } catch {
    // Storage disabled: the id lasts as long as the page, which is still one id per tab.
  }
  return id;
}

function rememberedClientId() {
  let stored = null;
  try {
    stored = sessionStorage.getItem(ID_KEY);
  } catch {
    // as above
  }
  return /^[0-9]{1,15}$/.test(stored ?? "") ? Number(stored) : newClientId();
}

// A tab opened with "Duplicate tab" or window.open() starts with a copy of its opener's
// sessionStorage, id included. Each tab holds a Web Lock named after its id for as long as it
// lives; a tab that cannot take its lock has a twin, and picks a new id. navigator.locks exists
// only in a secure context (https:, or http: on localhost); elsewhere twins keep one id.
async function claim(id) {
  if (!navigator.locks) return id;
  for (;;) {
    const held = await new Promise((resolve) => {
      navigator.locks.request(`${ID_KEY}.${id}`, { ifAvailable: true }, (lock) => {
        resolve(lock !== null);
        // The lock is held until this callback's promise settles: never, so until the tab goes.
        return lock === null ? undefined : new Promise(() => {});
      });
    });
    if (held) return id;
    id = newClientId();
  }
}

const clientId = await claim(rememberedClientId());
document.getElementById("ws-id").textContent = clientId;
document.title = `Chat #${clientId} · asgi_chat`;

// The server's lines (endpoints.py): "You wrote: m" to the sender alone, "Client #id says: m"
// to everyone (the sender included) and "Client #id left the chat".
const WROTE = /^(You wrote:) (.*)$/s;
const SAYS = /^(Client #(\d+) says:) (.*)$/s;
const LEFT = /^Client #\d+ left the chat$/;

function show(line) {
  let match;
  if ((match = WROTE.exec(line))) {
    appendMessage(list, { who: match[1], text: match[2], kind: "mine" }, true);
  } else if ((match = SAYS.exec(line))) {
    // Everyone's copy of my own line is mine too; "echo" marks it as the broadcast copy.
    const kind = Number(match[2]) === clientId ? "mine echo" : "theirs";
    appendMessage(list, { who: match[1], text: match[3], kind });
  } else if (LEFT.test(line)) {
    appendMessage(list, { text: line, kind: "notice" });
  } else {
    appendMessage(list, { text: line, kind: "theirs" });
  }
}

// Notes from the page itself (not from the server) mark where the conversation had a gap.
function note(text) {
  appendMessage(list, { text, kind: "notice local" });
}

let connectedBefore = false;
const connection = new Connection({
  url: () => socketUrl(`/ws/${clientId}`),
  reconnect: true,
  onMessage: show,
  onState(state, detail, close) {
    showState(status, state, detail);
    sendButton.disabled = state !== "connected";
    reconnectButton.hidden = state !== "closed";
    retryButton.hidden = !connection.waiting; // while a reconnect waits out its backoff
    if (close?.wasOpen) note(`Disconnected: ${describeClose(close.code, close.reason)}`);
    if (state === "connected" && connectedBefore) note("Reconnected; anything said while away was missed");
    if (state === "connected") connectedBefore = true;
  },
});

bindComposer(document.getElementById("form"), input, connection);
reconnectButton.addEventListener("click", () => connection.open());
retryButton.addEventListener("click", () => connection.retryNow());

connection.open();
