"""The same chat written directly on the ``websockets`` library: the Python ceiling.

No ASGI, no framework: ``websockets.asyncio.server.serve`` on uvloop, with the library's
``broadcast()`` (which writes each copy synchronously, without backpressure). The
protocol is asgi_chat's:

- ``/ws/{client_id}``: each text message ``m`` from client X is answered ``You wrote: m``
  and then broadcast as ``Client #X says: m`` to every chat client, X included; when X
  leaves, the others get ``Client #X left the chat``.
- ``/ws``: echo, each text message ``m`` is answered ``Message text was: m``.

Library defaults otherwise (permessage-deflate offered back when the client asks, the
same settings as uvicorn's). Run: ``python bench/websockets_app.py --port 8001``.
"""

from __future__ import annotations

import argparse

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

CHAT: set[ServerConnection] = set()


async def chat(websocket: ServerConnection, client_id: int) -> None:
    CHAT.add(websocket)
    try:
        async for message in websocket:
            await websocket.send(f"You wrote: {message!s}")
            broadcast(CHAT, f"Client #{client_id} says: {message!s}")
    except ConnectionClosed:
        pass
    finally:
        CHAT.discard(websocket)
        broadcast(CHAT, f"Client #{client_id} left the chat")


async def echo(websocket: ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(f"Message text was: {message!s}")


async def handler(websocket: ServerConnection) -> None:
    assert websocket.request is not None
    path = websocket.request.path.partition("?")[0]
    if path == "/ws":
        await echo(websocket)
        return
    prefix, _, tail = path.rpartition("/")
    if prefix == "/ws" and tail.isdigit():
        await chat(websocket, int(tail))
        return
    await websocket.close(1008, "not found")


async def main(host: str, port: int, backlog: int) -> None:
    async with serve(handler, host, port, backlog=backlog) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--backlog", type=int, default=8192)
    args = parser.parse_args()
    uvloop.run(main(args.host, args.port, args.backlog))
