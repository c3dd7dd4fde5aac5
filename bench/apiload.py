"""The api scenario's publishers (issue 20): lines into one room over the HTTP API, or said on WebSockets.

One phase per process, bounded by ``--count`` lines and ``--seconds``, with ``--connections`` in
flight, one request (or say) outstanding on each:

- ``publish``: keep-alive HTTP/1.1 connections written by hand on asyncio streams (no client
  library: its cost would be measured too), each ``POST /api/v1/rooms/{room}/messages`` with
  ``Authorization: Bearer KEY`` and ``{"text": ...}``, the next sent once the answer is read;
  counts the 201s (and any other status);
- ``say``: ``/chat/ws`` connections (asgi-chat.v1 on the ``websockets`` library), each hello as
  ``s{k}``, join, then ``say`` with an id of its own, the next sent at its ``ack``; counts the acks.
  The sayers are members of the room: each gets a copy of every line, read and dropped unparsed.

Lines on stdout (childio.py): ``start`` once every connection is ready (the measured phase begins),
``end`` when it is over, then ``result``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path

from childio import emit, run
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

SUBPROTOCOL = Subprotocol("asgi-chat.v1")


class Budget:
    """Lines left to send, shared by the connections; stops at the count or the deadline."""

    def __init__(self, count: int, seconds: float) -> None:
        self.left, self.seconds, self.end = count, seconds, 0.0

    def start(self) -> None:
        self.end = time.monotonic() + self.seconds

    def take(self) -> bool:
        if self.left <= 0 or time.monotonic() >= self.end:
            return False
        self.left -= 1
        return True


def first_key(path: str) -> str:
    """The first key of a file of API keys (read when the arguments are parsed)."""
    return Path(path).read_text().split()[0]


async def read_response(reader: asyncio.StreamReader) -> int:
    """One HTTP/1.1 response (a Content-Length body): its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def publish(args: argparse.Namespace) -> dict[str, object]:
    key = args.key_file
    text = "x" * args.size
    body = json.dumps({"text": text}).encode()
    head = (
        f"POST /api/v1/rooms/{args.room}/messages HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    request = head + body
    conns = [await asyncio.open_connection("127.0.0.1", args.port) for _ in range(args.connections)]
    statuses: Counter[int] = Counter()
    budget = Budget(args.count, args.seconds)

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while budget.take():
            writer.write(request)
            statuses[await read_response(reader)] += 1

    # A warm-up request on each connection (not counted): the room exists, the paths are hot.
    for reader, writer in conns:
        writer.write(request)
        await read_response(reader)
    emit("start")
    budget.start()
    t0 = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(one(r, w) for r, w in conns)), args.seconds + 30)
    wall = time.monotonic() - t0
    emit("end")
    for _, writer in conns:
        writer.close()
    ok = statuses.get(201, 0)
    return {"mode": "publish", "lines": ok, "per_s": ok / wall, "seconds": wall,
            "other_statuses": {str(k): v for k, v in statuses.items() if k != 201}}  # fmt: skip


async def say(args: argparse.Namespace) -> dict[str, object]:
    text = "x" * args.size
    budget = Budget(args.count, args.seconds)
    acked = Counter[str]()
    run_id = os.urandom(3).hex()
    sockets = []
    for k in range(args.connections):
        ws = await connect(f"ws://127.0.0.1:{args.port}/chat/ws", subprotocols=[SUBPROTOCOL], max_size=None,
                           compression=None, open_timeout=30)  # fmt: skip
        await ws.send(json.dumps({"type": "hello", "user": f"s{k}"}))
        await ws.send(json.dumps({"type": "join", "room": args.room}))
        while not str(await asyncio.wait_for(ws.recv(), 30)).startswith('{"type":"joined"'):
            pass
        sockets.append(ws)

    async def one(k: int, ws: object) -> None:
        n = 0
        while budget.take():
            n += 1
            line_id = f"{run_id}-{k}-{n}"
            await ws.send(json.dumps({"type": "say", "room": args.room, "text": text, "id": line_id}))  # type: ignore[attr-defined]
            while True:
                frame = str(await ws.recv())  # type: ignore[attr-defined]
                if frame.startswith('{"type":"ack"'):
                    acked["ack"] += 1
                    break
                if frame.startswith('{"type":"error"'):
                    acked["error"] += 1
                    break

    emit("start")
    budget.start()
    t0 = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(one(k, ws) for k, ws in enumerate(sockets))), args.seconds + 30)
    wall = time.monotonic() - t0
    emit("end")
    for ws in sockets:
        await ws.close()
    return {"mode": "say", "lines": acked["ack"], "per_s": acked["ack"] / wall, "seconds": wall,
            "errors": acked["error"]}  # fmt: skip


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("mode", choices=("publish", "say"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--room", default="bench")
    parser.add_argument("--key-file", type=first_key, help="publish: the file of API keys (its first line is used)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--count", type=int, default=20000, help="lines at most")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds at most")
    parser.add_argument("--size", type=int, default=64, help="characters per line")
    args = parser.parse_args()
    try:
        result = await (publish(args) if args.mode == "publish" else say(args))
    except (OSError, TimeoutError, ValueError, IndexError) as exc:
        emit("result", error=f"{type(exc).__name__}: {exc}")
        return 1
    emit("result", **result)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
