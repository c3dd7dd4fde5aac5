"""The fairness scenario's hostile and idle clients, on the bare client of rawws.py.

Three roles, each a subcommand, each speaking JSON lines to the orchestrator (childio.py):

- ``fill``: fills rooms with history before a run (``--lines`` lines of ``--chars`` characters
  each); prints each room's epoch and top offset, which the attackers resume from;
- ``members``: idle members of one room (hello, join, read), spread over loopback addresses
  (at most 100 per address, the server's default per-address limit);
- ``attack``: ``--connections`` attackers from one address doing one ``--kind`` of attack, each
  connection within the documented inbound rate (``--rate`` per second, below the server's 20,
  never more than its burst of 40 at once). After ``ready`` they wait for ``go``, attack for
  ``--seconds``, stop sending and print their figures; an attacker whose connection the server
  closes connects again after ``RECONNECT_DELAY`` (an abuser would), counted in ``connects``.

The kinds (docs/benchmark.md, issue 18):

- ``history``: join the filled room, then ``history`` pages of 100 of its longest lines, reading;
- ``history-noread``: the same requests, never reading the replies (small receive buffer);
- ``resume``: join ``--rooms`` filled rooms each with ``since`` offset 0 of its epoch (a replay
  of every line), never reading (small receive buffer);
- ``presence``: join and leave ``--room`` in turn, each frame a presence change for its members;
- ``malformed``: frames that are not JSON, not objects, of unknown types or missing fields;
- ``sayflood``: ``say`` of ``--chars`` astral characters (4 bytes each in UTF-8), alternately
  into ``--room`` (the honest client's) and a room of its own group.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from childio import Commands, emit, run, set_priority
from rawws import RawConnection, Refused, Tally, connect

HOST = "127.0.0.1"
RECONNECT_DELAY = 0.5  # an attacker whose connection was closed tries again after this long
NOREAD_RCVBUF = 4096  # SO_RCVBUF of the attackers that never read (the kernel doubles it)
FILL_PER_CONNECTION = 36  # says per filler connection: with hello and join, within the burst of 40
PER_ADDRESS = 100  # the server's default ASGI_CHAT_MAX_CONNECTIONS_PER_ADDRESS
OFFSET_RE = re.compile(rb'"offset":(\d+)')
MALFORMED = (
    b"{not json",
    b'{"type":"say","room":',
    b"[1,2,3]",
    b'"just a string"',
    b'{"type":"shout","room":"lobby","text":"x"}',
    b'{"type":"history","room":"lobby","before":"soon","limit":-5}',
    b'{"type":"join"}',
    b"{" * 30 + b"}" * 30,
)


def dumps(frame: dict[str, object]) -> bytes:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode()


# --- fill ---------------------------------------------------------------------------------------


async def fill_batch(
    args: argparse.Namespace, room: str, user: str, first: int, count: int, tally: Tally
) -> tuple[str, int]:
    """One filler connection: hello, join, ``count`` says; once all are acked, the room's epoch and
    the highest offset acked (its top)."""
    loop = asyncio.get_running_loop()
    joined: asyncio.Future[bytes] = loop.create_future()
    offsets: list[int] = []
    all_acked = asyncio.Event()

    def on_frame(kind: str, peek: bytes) -> None:
        if kind == "joined" and not joined.done():
            joined.set_result(peek)
        elif kind == "ack" and (found := OFFSET_RE.search(peek)):
            offsets.append(int(found.group(1)))
            if len(offsets) >= count:
                all_acked.set()

    conn = await connect(HOST, args.port, tally, source=args.source, on_frame=on_frame)
    try:
        conn.send_text(dumps({"type": "hello", "user": user}))
        conn.send_text(dumps({"type": "join", "room": room}))
        epoch = str(json.loads((await asyncio.wait_for(joined, 30)).decode())["epoch"])
        for k in range(first, first + count):
            text = f"{room} line {k} ".ljust(args.chars, "abcdefghij"[k % 10])[: args.chars]
            conn.send_text(dumps({"type": "say", "room": room, "text": text}))
        await asyncio.wait_for(all_acked.wait(), 60)
    finally:
        conn.close()
    return epoch, max(offsets)


async def fill_room(args: argparse.Namespace, room: str, tally: Tally) -> dict[str, object]:
    """Say ``args.lines`` lines into ``room`` through short-lived connections, each within the burst.

    Each connection is the room's only member while it fills, so a line goes to one client (not
    to every filler); the room keeps its history after the last one leaves.
    """
    epoch, top, said = "", 0, 0
    while said < args.lines:
        count = min(FILL_PER_CONNECTION, args.lines - said)
        epoch, top = await fill_batch(args, room, f"filler-{room}-{said}", said + 1, count, tally)
        said += count
    return {"epoch": epoch, "top": top}


async def fill_main(args: argparse.Namespace) -> int:
    tally, started = Tally(), time.monotonic()
    rooms = await asyncio.wait_for(
        asyncio.gather(*(fill_room(args, room, tally) for room in args.rooms)), args.deadline
    )
    emit("result", rooms=dict(zip(args.rooms, rooms, strict=True)), seconds=time.monotonic() - started,
         tally=tally.as_dict())  # fmt: skip
    return 0


# --- members ------------------------------------------------------------------------------------


def addresses(first: str, count: int) -> list[str]:
    """``count`` loopback addresses from ``first`` on, one per PER_ADDRESS connections."""
    head, _, last = first.rpartition(".")
    return [f"{head}.{int(last) + k // PER_ADDRESS}" for k in range(count)]


async def members_main(args: argparse.Namespace) -> int:
    set_priority(args.nice)
    commands, tally = Commands(), Tally()
    conns: list[RawConnection] = []
    gate = asyncio.Semaphore(args.concurrency)  # joins in flight: a crowd arriving, not all at once

    async def member(k: int, source: str) -> None:
        async with gate:
            joined = asyncio.get_running_loop().create_future()

            def on_frame(kind: str, peek: bytes) -> None:
                if kind == "joined" and not joined.done():
                    joined.set_result(None)

            conn = await connect(HOST, args.port, tally, source=source, on_frame=on_frame)
            conns.append(conn)
            conn.send_text(dumps({"type": "hello", "user": f"idle{k}"}))
            conn.send_text(dumps({"type": "join", "room": args.room}))
            await asyncio.wait_for(joined, args.deadline)

    started = time.monotonic()
    sources = addresses(args.source, args.count)
    await asyncio.wait_for(asyncio.gather(*(member(k, a) for k, a in enumerate(sources))), args.deadline)
    emit("ready", seconds=time.monotonic() - started, presence_frames=tally.frames["presence"])
    before = tally.frames["presence"]
    await commands.wait_for("stop", within=args.deadline)
    still = sum(not c.closed.done() for c in conns)
    emit("result", tally=tally.as_dict(), presence_during=tally.frames["presence"] - before, open=still)
    await commands.wait_for("eof", within=args.deadline)
    return 0


# --- attack -------------------------------------------------------------------------------------


def nothing(i: int) -> list[bytes]:
    return []


def no_tick(i: int, n: int) -> bytes | None:
    return None


@dataclass
class Attack:
    """One kind of attack: what each connection sends before ``go``, at ``go``, and on each tick."""

    reads: bool
    prepare: Callable[[int], list[bytes]]  # hello, joins: before go (and again after a reconnect)
    opening: Callable[[int], list[bytes]] = nothing  # sent once when attacking starts (resume's joins)
    tick: Callable[[int, int], bytes | None] = no_tick  # the n-th paced frame of attacker i; None: none


def history_attack(args: argparse.Namespace, rooms: dict[str, dict[str, object]]) -> Attack:
    """Pages of the 100 latest lines of the filled room, read or (history-noread) not."""
    room, info = next(iter(rooms.items()))
    page = dumps({"type": "history", "room": room, "before": int(str(info["top"])) + 1, "limit": 100})
    join = dumps({"type": "join", "room": room})
    return Attack(args.kind == "history", lambda i: [hello(args, i), join], tick=lambda i, n: page)


def resume_attack(args: argparse.Namespace, rooms: dict[str, dict[str, object]]) -> Attack:
    """Every filled room joined from offset 0 of its epoch (a replay of all its lines), never read."""
    joins = [dumps({"type": "join", "room": r, "since": {"epoch": v["epoch"], "offset": 0}}) for r, v in rooms.items()]
    return Attack(False, lambda i: [hello(args, i)], opening=lambda i: joins)


def presence_attack(args: argparse.Namespace, rooms: dict[str, dict[str, object]]) -> Attack:
    """Join and leave the honest client's room in turn: each frame a presence change for its members."""
    join, leave = dumps({"type": "join", "room": args.room}), dumps({"type": "leave", "room": args.room})
    return Attack(True, lambda i: [hello(args, i)], tick=lambda i, n: join if n % 2 == 0 else leave)


def malformed_attack(args: argparse.Namespace, rooms: dict[str, dict[str, object]]) -> Attack:
    return Attack(True, lambda i: [hello(args, i)], tick=lambda i, n: MALFORMED[(i + n) % len(MALFORMED)])


def sayflood_attack(args: argparse.Namespace, rooms: dict[str, dict[str, object]]) -> Attack:
    """The longest text allowed, of 4-byte characters, into the honest client's room and one of 4 others."""
    text = "".join(random.choice("😀🚀🎉🐍𝄞𓂀🀄🌍") for _ in range(args.chars))

    def own_room(i: int) -> str:
        return f"flood-{(args.id_base + i) % 4}"

    def prepare(i: int) -> list[bytes]:
        return [
            hello(args, i),
            dumps({"type": "join", "room": args.room}),
            dumps({"type": "join", "room": own_room(i)}),
        ]

    def say(i: int, n: int) -> bytes:
        return dumps({"type": "say", "room": args.room if n % 2 == 0 else own_room(i), "text": text})

    return Attack(True, prepare, tick=say)


ATTACKS = {
    "history": history_attack,
    "history-noread": history_attack,
    "resume": resume_attack,
    "presence": presence_attack,
    "malformed": malformed_attack,
    "sayflood": sayflood_attack,
}


def hello(args: argparse.Namespace, i: int) -> bytes:
    return dumps({"type": "hello", "user": f"{args.kind}{args.id_base + i}"})


def make_attack(args: argparse.Namespace) -> Attack:
    rooms: dict[str, dict[str, object]] = json.loads(args.rooms_json) if args.rooms_json else {}
    return ATTACKS[args.kind](args, rooms)


class Attackers:
    """``args.connections`` attackers from ``args.source``, each paced at ``args.rate`` frames/s."""

    def __init__(self, args: argparse.Namespace, attack: Attack) -> None:
        self.args = args
        self.attack = attack
        self.tally = Tally()
        self.go = asyncio.Event()
        self.stop_at = float("inf")  # loop time at which sending stops, once go is set
        self.ready = 0
        self.all_ready = asyncio.Event()
        self.current: dict[int, RawConnection] = {}  # each attacker's latest connection

    def finished(self) -> bool:
        return self.go.is_set() and asyncio.get_running_loop().time() >= self.stop_at

    async def open(self, i: int) -> RawConnection:
        reads = self.attack.reads
        conn = await connect(HOST, self.args.port, self.tally, source=self.args.source, read=reads,
                             rcvbuf=0 if reads else NOREAD_RCVBUF)  # fmt: skip
        for frame in self.attack.prepare(i):
            conn.send_text(frame)
        self.current[i] = conn
        return conn

    def count_ready(self) -> None:
        self.ready += 1
        if self.ready >= self.args.connections:
            self.all_ready.set()

    async def one(self, i: int) -> None:
        """One attacker: connect, prepare, then (after go) pace its frames; again if it is closed."""
        counted = False
        while not self.finished():
            try:
                conn = await self.open(i)
            except (Refused, OSError, TimeoutError) as error:
                if not isinstance(error, Refused):  # a refusal is counted by its status in rawws
                    self.tally.refused[type(error).__name__] += 1
                await asyncio.sleep(RECONNECT_DELAY)
                continue
            if not counted:
                counted = True
                self.count_ready()
            await self.go.wait()
            await self.pace(conn, i)
            if self.finished():
                return  # kept open until the orchestrator's eof
            conn.close()  # the server closed it: start again (a new connection, with new limits)
            await asyncio.sleep(RECONNECT_DELAY)

    async def pace(self, conn: RawConnection, i: int) -> None:
        loop = asyncio.get_running_loop()
        for opening in self.attack.opening(i):
            conn.send_text(opening)
        interval = 1.0 / self.args.rate
        due = loop.time() + random.uniform(0, interval)  # spread the attackers over each interval
        n = 0
        while not conn.closed.done() and loop.time() < self.stop_at:
            frame = self.attack.tick(i, n)
            if frame is None:  # nothing paced (resume): wait for the end or the server's close
                await asyncio.wait({conn.closed}, timeout=max(0.0, self.stop_at - loop.time()))
                return
            await asyncio.sleep(max(0.0, due - loop.time()))
            if conn.closed.done() or loop.time() >= self.stop_at:
                return
            conn.send_text(frame)
            n += 1
            # Never catch up by more than a few frames after a stall of this process: the pace
            # stays below the server's 20/s on average and far inside its burst of 40.
            due = max(due + interval, loop.time() - 4 * interval)


async def attack_main(args: argparse.Namespace) -> int:
    set_priority(args.nice)
    commands = Commands()
    attackers = Attackers(args, make_attack(args))
    tasks = [asyncio.create_task(attackers.one(i)) for i in range(args.connections)]
    try:
        await asyncio.wait_for(attackers.all_ready.wait(), args.deadline)
    except TimeoutError:
        emit("result", error=f"only {attackers.ready} of {args.connections} attackers connected",
             tally=attackers.tally.as_dict())  # fmt: skip
        return 1
    emit("ready", connected=attackers.ready, tally=attackers.tally.as_dict())
    if await commands.wait_for("go", within=args.deadline) != "go":
        return 1
    loop = asyncio.get_running_loop()
    started, cpu0, sent0 = time.monotonic(), time.process_time(), attackers.tally.sent
    attackers.stop_at = loop.time() + args.seconds
    attackers.go.set()
    await asyncio.sleep(args.seconds)
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu0
    sent = attackers.tally.sent - sent0
    emit("end")
    emit("result", seconds=elapsed, cpu_pct=100 * cpu / elapsed, connections=args.connections,
         sent_per_s=sent / elapsed, open_at_end=sum(not c.closed.done() for c in attackers.current.values()),
         tally=attackers.tally.as_dict())  # fmt: skip
    await commands.wait_for("eof", within=args.deadline)
    for task in tasks:
        task.cancel()
    return 0


# --- command line -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="role", required=True)
    for role in ("fill", "members", "attack"):
        p = sub.add_parser(role)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--source", default="127.0.1.2", help="loopback address the connections come from")
        p.add_argument("--deadline", type=float, default=120.0, help="seconds any wait may take")
        p.add_argument("--nice", type=int, default=0, help="this process's niceness")
    fill, members, attack = (sub.choices[r] for r in ("fill", "members", "attack"))
    fill.add_argument("--rooms", nargs="+", required=True)
    fill.add_argument("--lines", type=int, default=1000)
    fill.add_argument("--chars", type=int, default=4000)
    members.add_argument("--room", default="lobby")
    members.add_argument("--count", type=int, default=500)
    members.add_argument("--concurrency", type=int, default=50)
    attack.add_argument("--kind", required=True, choices=tuple(ATTACKS))
    attack.add_argument("--connections", type=int, default=50)
    attack.add_argument("--id-base", type=int, default=0, help="first attacker's number (names, rooms)")
    attack.add_argument("--rate", type=float, default=18.0, help="frames per second per connection")
    attack.add_argument("--seconds", type=float, default=10.0)
    attack.add_argument("--room", default="lobby", help="the honest client's room")
    attack.add_argument("--rooms-json", default="", help="fill's result: {room: {epoch, top}}")
    attack.add_argument("--chars", type=int, default=4000)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "fill":
        return run(lambda: fill_main(args))
    if args.role == "members":
        return run(lambda: members_main(args))
    return run(lambda: attack_main(args))


if __name__ == "__main__":
    sys.exit(main())
