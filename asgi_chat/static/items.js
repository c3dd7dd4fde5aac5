"use strict";
let ws = null;
document.getElementById("connect").addEventListener("click", () => {
  const itemId = encodeURIComponent(document.getElementById("itemId").value);
  const token = document.getElementById("token").value;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${scheme}//${location.host}/items/${itemId}/ws`, ["bearer", token]);
  ws.onmessage = (event) => {
    const item = document.createElement("li");
    item.textContent = event.data;
    document.getElementById("messages").appendChild(item);
  };
});
document.getElementById("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("messageText");
  ws.send(input.value);
  input.value = "";
});
