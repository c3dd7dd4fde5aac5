"""The fairness scenario's honest client: one person chatting in a room, on the ``websockets`` library.

It says hello, joins ``--room``, then says a short line ``--rate`` times a second, each with an
``id`` of its own (``s1``, ``s2``, ...), on a fixed schedule whether or not the previous one was
acknowledged (so a slow server cannot slow the measurement down with it), and times each from
just before its send to the arrival of the ``ack`` carrying its id. It reads every frame the
server sends, of any type or shape, and counts them; it never reconnects: if the server closes
it, that is reported (code and reason), and the lines not acknowledged by then count as such.

Lines on stdout (childio.py): ``ready`` after ``--warmup`` seconds of saying, then, after the
orchestrator's ``stop``, a ``result`` with every line's send time (CLOCK_MONOTONIC, shared by
every process of the machine, so the orchestrator can keep the lines of the attack's window) and
round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from childio import Commands, emit, run, set_priority
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

SUBPROTOCOL = Subprotocol("asgi-chat.v1")
TYPE_RE = re.compile(r'^\{"type":"([a-z_]+)"')


@dataclass
class Honest:
    """The lines said, their round trips, and everything else the connection saw."""

    sent: dict[str, float] = field(default_factory=dict)  # id -> send time (monotonic)
    rtt: dict[str, float] = field(default_factory=dict)  # id -> seconds from send to ack
    frames: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # every line acked (or the connection gone)
    closed: dict[str, object] | None = None  # code, reason and time, if the server closed it

    def on_frame(self, text: str) -> None:
        now = time.monotonic()
        match = TYPE_RE.match(text)
        kind = match.group(1) if match else "?"
        self.frames[kind] += 1
        if kind in ("ack", "error", "joined"):  # small frames: worth decoding
            frame = json.loads(text)
            if kind == "ack" and frame.get("id") in self.sent and frame["id"] not in self.rtt:
                self.rtt[frame["id"]] = now - self.sent[frame["id"]]
                if not self.pending():
                    self.settled.set()
            elif kind == "error":
                self.errors[str(frame.get("code"))] += 1
            elif kind == "joined":
                self.joined.set()

    def pending(self) -> int:
        return len(self.sent) - len(self.rtt)


async def read(ws: ClientConnection, honest: Honest) -> None:
    try:
        async for message in ws:
            honest.on_frame(message if isinstance(message, str) else message.decode(errors="replace"))
    except ConnectionClosed:
        pass
    honest.closed = {"code": ws.close_code, "reason": ws.close_reason, "t": time.monotonic()}
    honest.settled.set()  # no ack comes any more


async def say_loop(ws: ClientConnection, honest: Honest, room: str, rate: float) -> None:
    loop = asyncio.get_running_loop()
    due, n = loop.time(), 0
    run = os.urandom(3).hex()  # ids unique to this run: a say id used again would be deduplicated
    while honest.closed is None:
        n += 1
        line_id = f"s{n}-{run}"
        honest.sent[line_id] = time.monotonic()
        try:
            await ws.send(json.dumps({"type": "say", "room": room, "text": f"honest line {n}", "id": line_id}))
        except ConnectionClosed:
            return
        due += 1.0 / rate
        await asyncio.sleep(max(0.0, due - loop.time()))


async def main_async(args: argparse.Namespace) -> int:
    set_priority(args.nice)
    commands, honest = Commands(), Honest()
    uri = f"ws://{args.host}:{args.port}/chat/ws"
    async with connect(
        uri, subprotocols=[SUBPROTOCOL], compression=None, max_size=None, open_timeout=10, ping_interval=None,
        close_timeout=1,
    ) as ws:  # fmt: skip
        reader = asyncio.create_task(read(ws, honest))
        await ws.send(json.dumps({"type": "hello", "user": args.user}))
        await ws.send(json.dumps({"type": "join", "room": args.room}))
        await asyncio.wait_for(honest.joined.wait(), args.deadline)
        sayer = asyncio.create_task(say_loop(ws, honest, args.room, args.rate))
        await asyncio.sleep(args.warmup)  # the server's first-use costs, before anything is measured
        emit("ready")
        await commands.wait_for("stop", within=args.deadline)
        sayer.cancel()
        if honest.pending():
            honest.settled.clear()  # set by the ack that leaves none pending
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(honest.settled.wait(), args.grace)  # the last lines' acks, bounded
        end = time.monotonic()
        lines = [[t, honest.rtt.get(i)] for i, t in honest.sent.items()]
        emit("result", lines=lines, end=end, closed=honest.closed, frames=dict(honest.frames),
             errors=dict(honest.errors))  # fmt: skip
        await commands.wait_for("eof", within=args.deadline)
        reader.cancel()
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--room", default="lobby")
    parser.add_argument("--user", default="honest")
    parser.add_argument("--rate", type=float, default=10.0, help="lines per second")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of saying before ready")
    parser.add_argument("--grace", type=float, default=3.0, help="seconds to wait for the last acks after stop")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds any wait may take")
    parser.add_argument("--nice", type=int, default=0, help="this process's niceness (-5: ahead of the attackers)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run(lambda: main_async(args))


if __name__ == "__main__":
    sys.exit(main())
