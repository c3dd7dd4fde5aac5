"""The tutorial's chat as a bare ASGI loop: the floor of any ASGI app on the same server.

No framework, no hub, no limits, no checks: a list of the chat's ASGI ``send`` callables and a
broadcast that awaits each in turn, as the tutorial's ``ConnectionManager`` does, minus
Starlette. It has the tutorial's flaw (one client that stops reading stops everyone), so the
benchmark runs it in the fan-out scenario only: there it shows what the server's ASGI ``send``
costs per delivery when the app adds next to nothing, the floor that asgi_chat's hub is
measured against.

Served the same way as the others: ``uvicorn --app-dir bench raw_loop_app:app``.
"""

from __future__ import annotations

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope, WebSocketSendEvent

CHAT: list[ASGISendCallable] = []


async def broadcast(text: str) -> None:
    event: WebSocketSendEvent = {"type": "websocket.send", "text": text, "bytes": None}
    for send in list(CHAT):  # a copy: a client may leave while a send waits
        try:  # noqa: SIM105 (contextlib.suppress would add a context manager to every delivery)
            await send(event)
        except OSError:  # this client is gone (ASGI 2.4); its own loop will remove it
            pass


async def chat(client_id: int, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
    CHAT.append(send)
    try:
        while True:
            event = await receive()
            if event["type"] != "websocket.receive":
                return
            text = event.get("text") or ""
            await send({"type": "websocket.send", "text": f"You wrote: {text}", "bytes": None})
            await broadcast(f"Client #{client_id} says: {text}")
    finally:
        CHAT.remove(send)
        await broadcast(f"Client #{client_id} left the chat")


async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http":  # no pages here: every HTTP request is a 404
        await send({"type": "http.response.start", "status": 404, "headers": [], "trailers": False})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    await receive()  # websocket.connect
    prefix, _, tail = scope["path"].rpartition("/")
    if prefix == "/ws" and tail.isdigit():
        await chat(int(tail), receive, send)
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": "not found"})
