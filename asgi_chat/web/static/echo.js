// The echo page: the tutorial's first example (/ws answers "Message text was: ..."), with
// Connect and Disconnect, the connection's state in view, and a reconnect after a drop or a
// server restart, as on the chat page (Disconnect stops it; "Retry now" cuts its wait short).
import { Connection, appendReply, bindComposer, showState, socketUrl } from "./common.js";

const list = document.getElementById("messages");
const status = document.getElementById("status");
const connectButton = document.getElementById("connect");
const disconnectButton = document.getElementById("disconnect");
const sendButton = document.getElementById("send");
const retryButton = document.getElementById("retry");

const connection = new Connection({
  url: () => socketUrl("/ws"),
  reconnect: true,
  onMessage: (line) => appendReply(list, line),
  onState(state, detail) {
    showState(status, state, detail);
    connectButton.disabled = state !== "closed";
    disconnectButton.disabled = state === "closed";
    sendButton.disabled = state !== "connected";
    retryButton.hidden = !connection.waiting;
  },
});

bindComposer(document.getElementById("form"), document.getElementById("messageText"), connection);
connectButton.addEventListener("click", () => connection.open());
disconnectButton.addEventListener("click", () => connection.close());
retryButton.addEventListener("click", () => connection.retryNow());

connection.open(); // as in the tutorial, the page connects as soon as it loads
