// What the three pages share: a WebSocket that reports its state (and, for the chat, comes back
// by itself), a status line, and the message list. An ES module: CSP allows scripts from this
// server only, and a module needs no globals.

// The WebSocket lives on the server that served this page: same host and port, ws: or wss:
// following the page's scheme. Never a hard-coded localhost:8000.
export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

// What a close code says (RFC 6455 section 7.4.1, IANA's registry), and no more than it says:
// uvicorn sends 1012, "service restart", both when it restarts and when it stops for good.
const CLOSE_MEANINGS = new Map([
  [1000, "normal closure"],
  [1001, "going away"],
  [1003, "text messages only"],
  [1005, "no code given"],
  [1008, "policy"],
  [1009, "message too big"],
  [1011, "server error"],
  [1012, "restart or stop"],
  [1013, "try again later"],
]);

// After these codes the same connection may well succeed a little later: going away (1001), lost
// without a close frame (1006, which is also how a browser reports a server that is down),
// server error (1011), service restart (1012), try again later (1013, a slow consumer). After
// the others (1008 policy, 1003 unsupported data, 1009 too big, 1000 normal) the server closed
// on purpose and would do it again, so the page says why and leaves the next step to the user.
const RETRY_CODES = new Set([1001, 1006, 1011, 1012, 1013]);
// Except one 1008: a client closed for its rate (the server's reason starts with this) is welcome
// back once it slows down, so a page that says so (retryRate: true) reconnects after it too.
const RATE_REASON = "too many messages";

// Capped exponential backoff with "equal jitter": the wait doubles with each failed attempt up
// to CAP_MS, and half of it is random, so the tabs a restart disconnected all at once do not
// all come back in the same instant.
const BASE_MS = 500;
const CAP_MS = 15000;
// A connection that stayed open this long was a success: the next drop starts the backoff over.
// (Resetting on every open would let a server that accepts and then closes at once be hammered.)
const STABLE_MS = 10000;

export function backoffDelay(attempt) {
  const ceiling = Math.min(CAP_MS, BASE_MS * 2 ** attempt);
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

// The server's own reason when it gave one (asgi_chat's are written for people), else what the
// code says. 1006 is the browser's own code for a connection that ended without a close frame.
export function describeClose(code, reason) {
  if (reason) return `${reason} (${code})`;
  if (code === 1006) return "connection lost (1006)";
  const meaning = CLOSE_MEANINGS.get(code);
  return `the server closed the connection (${meaning ? `${code}: ${meaning}` : code})`;
}

// A browser reports a handshake the server refused (HTTP 403) exactly like a server that is
// down: close code 1006 and nothing else. Asking for this page again tells the two apart.
async function serverAnswers() {
  try {
    await fetch(location.pathname, { method: "HEAD", cache: "no-store" });
    return true;
  } catch {
    return false;
  }
}

/**
 * One WebSocket at a time, opened with open() and closed with close(). It reports
 * onState(state, detail, close): state is "connecting", "connected", "reconnecting" or "closed",
 * detail a sentence for the status line, and close ({code, reason, wasOpen}) is given when a
 * WebSocket has just closed.
 *
 * url() and protocols() are asked again before every attempt, so a reconnect uses what the
 * page holds now. With reconnect: true a drop with one of RETRY_CODES is retried after
 * backoffDelay() ("reconnecting", with waiting true until the attempt starts; retryNow() starts
 * it at once); with retryRate: true, a 1008 for the rate too, and retryCodes adds codes of the
 * page's own protocol that mean "come back" (4001, a token expired, on the rooms page). refused
 * is the detail shown when the server refuses the handshake.
 *
 * prepare(), when given, runs before every attempt and the WebSocket opens once it resolves: the
 * rooms page fetches a fresh token there. If it throws, the attempt failed without a socket: the
 * error's message is the detail, and the backoff retries it unless the error says retry: false.
 */
export class Connection {
  #options;
  #socket = null;
  #timer = null;
  #attempt = 0;
  #openedAt = 0;
  #generation = 0; // bumped by every attempt and every stop: a prepare() that outlived its attempt is ignored

  constructor({
    url,
    protocols = () => [],
    reconnect = false,
    retryRate = false,
    retryCodes = [],
    prepare = null,
    refused,
    onMessage,
    onState,
  }) {
    const retry = new Set([...RETRY_CODES, ...retryCodes]);
    this.#options = { url, protocols, reconnect, retryRate, retry, prepare, refused, onMessage, onState };
    // Back online: no reason to sit out the rest of a backoff.
    window.addEventListener("online", () => {
      if (this.#timer !== null) this.#retryNow();
    });
  }

  get connected() {
    return this.#socket?.readyState === WebSocket.OPEN;
  }

  // True while a reconnect waits out its backoff: the time to offer "retry now".
  get waiting() {
    return this.#timer !== null;
  }

  // Start the waiting reconnect now (a person who knows the server is back need not wait).
  retryNow() {
    if (this.#timer !== null) this.#retryNow();
  }

  open() {
    this.#stop();
    this.#attempt = 0;
    this.#report("connecting", "");
    this.#connect();
  }

  close() {
    this.#stop();
    this.#report("closed", "you disconnected");
  }

  send(text) {
    if (!this.connected) return false;
    this.#socket.send(text);
    return true;
  }

  async #connect() {
    this.#openedAt = 0;
    const generation = ++this.#generation;
    if (this.#options.prepare) {
      try {
        await this.#options.prepare();
      } catch (error) {
        if (generation === this.#generation) this.#failed(error);
        return;
      }
      if (generation !== this.#generation) return; // open(), close() or another attempt meanwhile
    }
    let socket;
    try {
      socket = new WebSocket(this.#options.url(), this.#options.protocols());
    } catch (error) {
      // A SyntaxError: a URL or a subprotocol the browser will not send (RFC 6455 4.1).
      this.#report("closed", error.message);
      return;
    }
    this.#socket = socket;
    socket.addEventListener("open", () => {
      this.#openedAt = Date.now();
      this.#report("connected", "");
    });
    socket.addEventListener("message", (event) => {
      if (typeof event.data === "string") this.#options.onMessage(event.data);
    });
    socket.addEventListener("close", (event) => {
      // A socket replaced by open() or ended by close() has nothing more to say.
      if (socket === this.#socket) this.#closed(event, this.#openedAt !== 0);
    });
  }

  async #closed({ code, reason }, wasOpen) {
    const socket = this.#socket;
    let detail = describeClose(code, reason);
    if (code === 1006 && !wasOpen) {
      const answers = await serverAnswers();
      detail = answers ? (this.#options.refused ?? "refused by the server") : "cannot reach the server";
    }
    if (socket !== this.#socket) return; // the user acted while we asked the server
    if (wasOpen && Date.now() - this.#openedAt > STABLE_MS) this.#attempt = 0;
    const rate = this.#options.retryRate && code === 1008 && reason.startsWith(RATE_REASON);
    this.#socket = null;
    if (!this.#options.reconnect || !(this.#options.retry.has(code) || rate)) {
      this.#report("closed", detail, { code, reason, wasOpen });
      return;
    }
    this.#retryLater(detail, { code, reason, wasOpen });
  }

  // prepare() failed: no socket was opened. Retried like a lost connection unless it says not to.
  #failed(error) {
    const detail = error?.message || String(error);
    if (!this.#options.reconnect || error?.retry === false) this.#report("closed", detail);
    else this.#retryLater(detail, null);
  }

  #retryLater(detail, close) {
    const delay = backoffDelay(this.#attempt++);
    this.#timer = setTimeout(() => this.#retryNow(), delay);
    const seconds = Math.max(1, Math.round(delay / 1000));
    this.#report("reconnecting", `${detail}; retrying in ${seconds} s`, close);
  }

  #retryNow() {
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#report("reconnecting", "trying again now");
    this.#connect();
  }

  #stop() {
    this.#generation += 1;
    clearTimeout(this.#timer);
    this.#timer = null;
    const socket = this.#socket;
    this.#socket = null;
    if (socket !== null && socket.readyState <= WebSocket.OPEN) socket.close(1000);
  }

  #report(state, detail, close = null) {
    this.#options.onState(state, detail, close);
  }
}

const STATE_LABELS = {
  idle: "Not connected",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting",
  closed: "Closed",
};

// The status line: data-state ("idle" before the first connect, or one of Connection's states)
// drives its colour (style.css) and lets tests wait for a state.
export function showState(element, state, detail) {
  element.dataset.state = state;
  element.textContent = detail ? `${STATE_LABELS[state]} — ${detail}` : STATE_LABELS[state];
}

// Add a line to the message list. who, if given, is shown as a label above the text; the item's
// textContent stays `${who} ${text}`, the line exactly as the server sent it. The list scrolls to
// the newest line unless the reader has scrolled up to read older ones; force (the reader's own
// line) scrolls anyway.
export function appendMessage(list, { who = "", text, kind }, force = false) {
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const item = document.createElement("li");
  item.className = kind;
  if (who) {
    const label = document.createElement("span");
    label.className = "who";
    label.textContent = who;
    item.append(label, " ");
  }
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text; // never innerHTML: a message is text, whatever it looks like
  item.append(body);
  list.append(item);
  if (atBottom || force) list.scrollTop = list.scrollHeight;
  return item;
}

// A reply such as "Message text was: hi": the label before the first ": " apart from the rest.
export function appendReply(list, line) {
  const match = /^([^:]*:) (.*)$/s.exec(line);
  const parts = match ? { who: match[1], text: match[2] } : { text: line };
  appendMessage(list, { ...parts, kind: "theirs" });
}

// Enter or Send sends the box's text. An empty (or blank) box sends nothing, and while the
// connection is down the text stays in the box for later.
export function bindComposer(form, input, connection) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    if (text.trim() === "") return;
    if (connection.send(text)) input.value = "";
    input.focus();
  });
}
