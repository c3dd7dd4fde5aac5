// The echo page: the tutorial's first example (/ws answers "Message text was: ..."), with
// Connect and Disconnect and the connection's state in view.
import { Connection, appendReply, bindComposer, showState, socketUrl } from "./common.js";

const list = document.getElementById("messages");
const status = document.getElementById("status");
const connectButton = document.getElementById("connect");
const disconnectButton = document.getElementById("disconnect");
const sendButton = document.getElementById("send");

const connection = new Connection({
  url: () => socketUrl("/ws"),
  onMessage: (line) => appendReply(list, line),
  onState(state, detail) {
    showState(status, state, detail);
    connectButton.disabled = state !== "closed";
    disconnectButton.disabled = state === "closed";
    sendButton.disabled = state !== "connected";
  },
});

bindComposer(document.getElementById("form"), document.getElementById("messageText"), connection);
connectButton.addEventListener("click", () => connection.open());
disconnectButton.addEventListener("click", () => connection.close());

connection.open(); // as in the tutorial, the page connects as soon as it loads
