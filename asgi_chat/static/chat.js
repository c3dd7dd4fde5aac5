"use strict";
const clientId = Date.now();
document.getElementById("ws-id").textContent = clientId;
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const ws = new WebSocket(`${scheme}//${location.host}/ws/${clientId}`);
ws.onmessage = (event) => {
  const item = document.createElement("li");
  item.textContent = event.data;
  document.getElementById("messages").appendChild(item);
};
document.getElementById("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("messageText");
  ws.send(input.value);
  input.value = "";
});
