// The items page: the tutorial's /items/{item_id}/ws, which needs a credential. The token goes
// in the "bearer" subprotocol (security.py), so it never lands in a URL, a log line or history.
import { Connection, appendReply, bindComposer, showState, socketUrl } from "./common.js";

const list = document.getElementById("messages");
const status = document.getElementById("status");
const fields = {
  itemId: document.getElementById("itemId"),
  token: document.getElementById("token"),
  q: document.getElementById("q"),
};
const connectButton = document.getElementById("connect");
const disconnectButton = document.getElementById("disconnect");
const sendButton = document.getElementById("send");

// A subprotocol must be an HTTP token (RFC 6455 4.1, RFC 7230 3.2.6 "tchar"), or the browser's
// WebSocket constructor throws a SyntaxError. Such a token is not sent in the URL instead: the
// whole point of the subprotocol is to keep it out of URLs, logs and history.
const TCHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// What the server's parse_int accepts (parsing.py): an optional sign and 1 to 18 digits.
const INTEGER = /^[+-]?[0-9]{1,18}$/;

// The reason the form cannot be used as it is, or "" when it can.
function problem(itemId, token, q) {
  if (itemId === "") return "enter an item ID";
  if (itemId.includes("/")) return "an item ID cannot contain “/”";
  if (token !== "" && !TCHARS.test(token)) {
    return "a token can hold only letters, digits and !#$%&'*+-.^_`|~ (it travels as a subprotocol)";
  }
  if (q !== "" && !INTEGER.test(q)) return "q must be a whole number";
  return "";
}

function url() {
  const itemId = encodeURIComponent(fields.itemId.value.trim());
  const q = fields.q.value.trim();
  return socketUrl(`/items/${itemId}/ws${q === "" ? "" : `?q=${encodeURIComponent(q)}`}`);
}

// No token: offer no subprotocol, so the server can still accept a "session" cookie (or say no).
function protocols() {
  const token = fields.token.value.trim();
  return token === "" ? [] : ["bearer", token];
}

const connection = new Connection({
  url,
  protocols,
  // A browser sees only close code 1006 after the server's HTTP 403.
  refused: "refused: check the token",
  onMessage: (line) => appendReply(list, line),
  onState(state, detail, close) {
    showState(status, state, detail);
    connectButton.disabled = state === "connecting"; // connected: Connect again with new values
    disconnectButton.disabled = state === "idle" || state === "closed";
    sendButton.disabled = state !== "connected";
    // No reconnect by itself here (a credential the server refused would be refused again), but
    // when the server or the network ended an open connection (not Disconnect), Connect says
    // what it will do: the same item, token and q, unless you change them first.
    connectButton.textContent = state === "closed" && close?.wasOpen ? "Reconnect" : "Connect";
  },
});

document.getElementById("connection").addEventListener("submit", (event) => {
  event.preventDefault();
  const reason = problem(fields.itemId.value.trim(), fields.token.value.trim(), fields.q.value.trim());
  if (reason) {
    connection.close();
    showState(status, "idle", reason);
    return;
  }
  connection.open();
});
disconnectButton.addEventListener("click", () => connection.close());
bindComposer(document.getElementById("form"), document.getElementById("messageText"), connection);
