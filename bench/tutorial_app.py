"""The FastAPI tutorial's chat, as documented, for the benchmark only.

This is the "Handling disconnections and multiple clients" example of FastAPI's
WebSockets tutorial (https://fastapi.tiangolo.com/advanced/websockets/): a
``ConnectionManager`` keeping a list of connections, whose ``broadcast`` awaits each
``send_text`` in turn, plus the tutorial's first example, the echo endpoint on ``/ws``.
The HTML page is left out: the benchmark never fetches it. Only type annotations were
added (the project runs ``mypy --strict`` on ``bench/``).

Served the same way as asgi_chat: ``uvicorn --app-dir bench tutorial_app:app``.
"""

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()


class ConnectionManager:
    def __init__(self) -> None:
        self.active_connections: list[WebSocket] = []

    async def connect(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.active_connections.append(websocket)

    def disconnect(self, websocket: WebSocket) -> None:
        self.active_connections.remove(websocket)

    async def send_personal_message(self, message: str, websocket: WebSocket) -> None:
        await websocket.send_text(message)

    async def broadcast(self, message: str) -> None:
        for connection in self.active_connections:
            await connection.send_text(message)


manager = ConnectionManager()


@app.websocket("/ws")
async def echo_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        data = await websocket.receive_text()
        await websocket.send_text(f"Message text was: {data}")


@app.websocket("/ws/{client_id}")
async def websocket_endpoint(websocket: WebSocket, client_id: int) -> None:
    await manager.connect(websocket)
    try:
        while True:
            data = await websocket.receive_text()
            await manager.send_personal_message(f"You wrote: {data}", websocket)
            await manager.broadcast(f"Client #{client_id} says: {data}")
    except WebSocketDisconnect:
        manager.disconnect(websocket)
        await manager.broadcast(f"Client #{client_id} left the chat")
