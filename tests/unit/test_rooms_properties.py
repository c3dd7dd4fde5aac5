"""Property-based tests of the rooms engine (engine/rooms.py over the memory store, issue 11).

Hypothesis plays random interleavings of what three clients (two of them tabs of one person, one
uid) do in two rooms, with a person of the same name (another uid) on another process: join (live,
history K, resume from where they were, a foreign epoch, an offset above the top), say (sometimes
resending an id), leave, disconnect, stall (stop reading: the fake server's sends wait, so the
member's outbox fills, a join's replay pauses, and a full outbox drops the member), release (read
again), and let time pass (so empty rooms are forgotten and a resume reads as another epoch). A
join may also race a line from another process: said between the join's entering the room and its
reading the window, as a store on the network allows, so the line reaches the joiner both in its
window and in its joining buffer, and must come once. History, the byte budget, replay_max and the
outbox are all tiny, so that trimming, limits and drops happen often.

Each connection is a real :class:`~asgi_chat.engine.member.Member` over a real ``Session`` on the
suite's fake server (``tests.helpers.WebSocketClient``), whose ``sent`` is what the client got.
Afterwards, for each connection and room, what the client got is checked against the issue:

- the invariant: ``msg`` offsets strictly increase across replay and live, and where one is not
  the previous plus one (the previous being ``since.offset``, the first replayed one's
  predecessor for ``history``, or ``joined.offset`` when live only or reset), the ``gap`` frames
  just before it name exactly the skipped offsets;
- exactly the replay the issue describes for the room as the join saw it (its epoch, top and
  oldest retained offset), worked out here from those alone; then every live message, once, up
  to the room's top when the client left (unless its outbox was discarded: a drop, or a close
  while it was not reading; then what it got is a prefix of that);
- each ``msg`` is exactly what was said at that offset, by whom (name, uid, guest); presence
  events are consistent, per uid (never of one's own, always of a namesake's), and add up to the
  store's presence when the client left;
- and once everybody has gone: no member in any room, nobody present in the store, no task left.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from asgi_chat import Settings
from asgi_chat.asgi.errors import Disconnected
from asgi_chat.asgi.session import Session
from asgi_chat.engine.fanout import Fanout
from asgi_chat.engine.frames import msg as msg_frame
from asgi_chat.engine.member import Flow, Member
from asgi_chat.engine.people import Person
from asgi_chat.engine.policy import SlowConsumerPolicy
from asgi_chat.engine.replay import Window
from asgi_chat.engine.rooms import JoinRequest, Rooms
from asgi_chat.engine.stores.memory import MemoryStore
from asgi_chat.ops.metrics import Metrics
from tests.helpers import TIMEOUT, WebSocketClient
from tests.rooms_support import presence_of

ROOMS = ("r0", "r1")
ADA, BOB = Person("u-ada", "ada"), Person("u-bob", "bob", guest=True)
USERS = (ADA, BOB, ADA)  # client -> who: clients 0 and 2 are two tabs of one person (one uid)
# A person on another process, present in the store with no member here: another ada, so that
# ada's tabs are told of her (another uid) as of anyone else.
ELSEWHERE = Person("u-eve", "ada")
WALL_MS = 1_700_000_000_000
OUTBOX = 4  # a member with 4 lines waiting is dropped; a replay pauses once 2 are
IDLE = 100.0  # room_idle_seconds
SETTINGS = Settings(
    history_messages=3,
    history_max_bytes=1400,  # about 4 messages for the whole process
    replay_max=2,
    room_idle_seconds=IDLE,
    dedup_seconds=10**9,  # never expires here: an id used again is always a duplicate
)

Frame = dict[str, Any]
Item = tuple[Any, ...]  # what a client got of a room, without presence: ("msg", n), ("gap", a, b, why), ("reset", e)


@dataclass(frozen=True)
class Op:
    kind: str
    client: int
    room: str
    how: str  # for join: live, history, resume, foreign, ahead
    k: int
    say_id: str | None
    race: bool  # for join: meanwhile, between entering the room and reading its window, another process's user
    # enters and says a line (which a store on the network allows): the join must get it once, in order


ops = st.builds(
    Op,
    kind=st.sampled_from(
        ["say"] * 5 + ["join"] * 4 + ["disconnect", "stall"] * 2 + ["leave", "release", "tick", "unencodable"]
    ),
    client=st.integers(0, len(USERS) - 1),
    room=st.sampled_from(ROOMS),
    how=st.sampled_from(["resume"] * 3 + ["history"] * 2 + ["live", "foreign", "ahead"]),
    k=st.integers(0, 5),
    say_id=st.sampled_from([None, None, "k1", "k2"]),
    race=st.sampled_from([False, False, False, True]),
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class RecordingStore(MemoryStore):
    """The memory store, remembering the window each join read (what the replay is checked against)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(SETTINGS, clock=clock, wall_ms=lambda: WALL_MS)
        self.last_window: Window | None = None
        self.window_read = asyncio.Event()
        self.meanwhile: Callable[[], Awaitable[None]] | None = None  # what happens just before the next window

    async def window(self, room: str, after: int, limit: int) -> Window:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            await meanwhile()
        self.last_window = await super().window(room, after, limit)
        self.window_read.set()
        return self.last_window


@dataclass
class Segment:
    """One join of one connection to one room, until it left."""

    room: str
    since: tuple[str, int] | None
    history: int | None
    window: Window | None = None  # what the join read
    end_top: int | None = None  # the room's top when the connection left it
    end_presence: list[str] | None = None  # the uids present in the store then, if the client had every frame by then


@dataclass
class Connection:
    client: int
    user: Person
    server: WebSocketClient
    member: Member
    rooms: set[str] = field(default_factory=set)  # as the endpoint's Connection.rooms
    segments: list[Segment] = field(default_factory=list)
    joining: asyncio.Task[None] | None = None  # a join waiting for the client to read its replay
    stalled: bool = False
    lost_tail: bool = False  # its outbox was discarded: what it got is a prefix of what it was sent

    def frames(self) -> list[Frame]:
        texts = [event.get("text") for event in self.server.sent if event["type"] == "websocket.send"]
        return [json.loads(text) for text in texts if isinstance(text, str)]

    def segments_with_frames(self) -> list[tuple[Segment, list[Frame]]]:
        """Each join of this connection with the frames it got of that room (each begins with joined)."""
        received: dict[str, list[list[Frame]]] = {room: [] for room in ROOMS}
        for frame in self.frames():
            runs = received[frame["room"]]
            if frame["type"] == "joined":
                runs.append([])
            assert runs, f"{frame} before any joined of its room"
            runs[-1].append(frame)
        pairs: list[tuple[Segment, list[Frame]]] = []
        for room in ROOMS:
            joins = [segment for segment in self.segments if segment.room == room]
            assert len(received[room]) <= len(joins)
            if len(received[room]) < len(joins):  # the joined frame of a later join never came
                assert self.lost_tail or self.stalled, "a joined frame is missing"
            pairs += zip(joins, received[room], strict=False)
        return pairs


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.store = RecordingStore(self.clock)
        self.rooms = Rooms(self.store, SETTINGS.replay_max)
        self.fanout = Fanout(SlowConsumerPolicy(OUTBOX, max_bytes=0, send_timeout=0), Metrics())
        self.connections: list[Connection] = []
        self.current: dict[int, Connection] = {}  # client -> its open connection
        self.published: dict[tuple[str, str, int], Frame] = {}  # (room, epoch, offset) -> its msg frame
        self.said: dict[tuple[str, str, str, str], int] = {}  # (room, epoch, uid, say id) -> offset
        self.lines = itertools.count()
        self.paused_joins = 0  # joins whose replay waited for a client that was not reading
        self.duplicates = 0  # says whose id was used before
        self.elsewhere: set[str] = set()  # the rooms ELSEWHERE is in
        self.races = 0  # joins that had a line said while they read the window
        self.unencodables = 0  # says the store refused whole (a lone surrogate in the text)

    # --- what the clients do ------------------------------------------------------------------

    async def run(self, op: Op) -> None:
        if op.kind == "tick":
            self.clock.now += IDLE * 1.5
            return
        if op.kind == "join":
            await self.join(await self.connection(op.client), op)
            return
        conn = self.current.get(op.client)
        if conn is None:
            return
        await self.settle(conn)
        # A say or a leave goes to the room asked for if the client is in it, else to one it is in.
        room = op.room if op.room in conn.rooms or not conn.rooms else sorted(conn.rooms)[0]
        if op.kind == "disconnect":
            await self.close(conn)
        elif op.kind == "stall" and not conn.stalled:
            conn.server.mode = "gate"
            conn.stalled = True
        elif op.kind == "release" and conn.stalled:
            await self.release(conn)
        elif conn.joining is not None:
            return  # the endpoint reads the next request once the join is done
        elif op.kind == "unencodable" and room in conn.rooms:
            await self.unencodable(conn.user, room)
        elif op.kind == "say" and room in conn.rooms:
            for n in range(1 + op.k // 2):  # a burst of 1 to 3 lines, so that history fills and trims
                await self.say(conn.user, room, op.say_id if n == 0 else None)
        elif op.kind == "leave" and room in conn.rooms:
            self.end_segment(conn, room)
            conn.rooms.discard(room)
            await self.rooms.leave(conn.member, conn.user, room)

    async def connection(self, client: int) -> Connection:
        conn = self.current.get(client)
        if conn is not None:
            return conn
        server = WebSocketClient()
        session = Session(server.scope, server.asgi_receive, server.asgi_send)
        server.feed({"type": "websocket.connect"})
        await session.wait_connect()
        await session.accept()
        conn = Connection(client, USERS[client], server, self.fanout.member(session, f"client {client}"))
        self.connections.append(conn)
        self.current[client] = conn
        return conn

    async def join(self, conn: Connection, op: Op) -> None:
        await self.settle(conn)
        if conn.joining is not None or op.room in conn.rooms:
            return  # the endpoint answers bad_request to a room already joined
        since: tuple[str, int] | None = None
        history: int | None = None
        if op.how == "history":
            history = op.k
        elif op.how == "resume":
            since = self.position(conn.client, op.room) or ("never-seen", op.k)
        elif op.how == "foreign":
            since = ("foreign", op.k)
        elif op.how == "ahead":
            state = self.store._rooms.get(op.room)
            since = (state.epoch, state.top + 1 + op.k) if state is not None else ("none", 1 + op.k)
        segment = Segment(op.room, since, history)
        conn.segments.append(segment)
        conn.rooms.add(op.room)
        if op.race:
            self.store.meanwhile = functools.partial(self.from_elsewhere, op.room)
        self.store.window_read.clear()
        task = asyncio.create_task(self.rooms.join(conn.member, conn.user, JoinRequest(op.room, since, history, None)))
        # The join runs without a pause up to its replay, which waits only for a client that stopped reading.
        read = asyncio.ensure_future(self.store.window_read.wait())
        await asyncio.wait({task, read}, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        read.cancel()
        if task.done():
            task.result()  # what the join raised, if it did
        assert self.store.window_read.is_set()
        segment.window = self.store.last_window
        if not conn.stalled:
            await asyncio.wait_for(task, TIMEOUT)
        elif not task.done():
            conn.joining = task
            self.paused_joins += 1

    async def say(self, user: Person, room: str, say_id: str | None) -> None:
        state = self.store._rooms[room]
        epoch, top = state.epoch, state.top
        text = f"line {next(self.lines)}"
        offset, new = await self.store.append(room, user, text, say_id)  # Rooms.say's step, without its ack
        key = (room, epoch, user.uid, say_id or "")  # an id is its uid's: a namesake's is another
        if say_id is not None and key in self.said:
            assert (offset, new, state.top) == (self.said[key], False, top), "a resent id was published again"
            self.duplicates += 1
            return
        assert (offset, new) == (top + 1, True)
        if say_id is not None:
            self.said[key] = offset
        self.published[(room, epoch, offset)] = json.loads(msg_frame(room, offset, WALL_MS, user, text, say_id))

    async def unencodable(self, user: Person, room: str) -> None:
        """A text no UTF-8 encoder takes (a lone surrogate), past the endpoint's check: the store
        refuses it whole, and the room's next line still takes the next offset."""
        state = self.store._rooms[room]
        top = state.top
        with pytest.raises(UnicodeEncodeError):
            await self.store.append(room, user, "half of \ud83d", None)
        assert state.top == top, "a say that failed took an offset"
        self.unencodables += 1

    async def from_elsewhere(self, room: str) -> None:
        """Another process's person enters ``room`` (once) and says a line there."""
        if room not in self.elsewhere:
            self.elsewhere.add(room)
            await self.store.enter(room, ELSEWHERE)
        await self.say(ELSEWHERE, room, None)
        self.races += 1

    async def release(self, conn: Connection) -> None:
        """The client reads again: what waited goes out, and a join waiting on it goes on."""
        assert conn.member.state is not Flow.ENDED
        conn.server.room.set()
        if conn.joining is not None:
            await asyncio.wait_for(conn.joining, TIMEOUT)
            conn.joining = None
        await asyncio.wait_for(conn.member.drained(), TIMEOUT)
        conn.server.mode = "ok"
        conn.server.room = asyncio.Event()
        conn.stalled = False

    async def settle(self, conn: Connection) -> None:
        if conn.joining is not None and conn.joining.done():
            await conn.joining
            conn.joining = None

    async def close(self, conn: Connection) -> None:
        """The connection ends: it leaves all its rooms, as the endpoint's leave_all does."""
        if conn.stalled or conn.member.state is Flow.ENDED:
            conn.lost_tail = True
        for room in sorted(conn.rooms):  # where each room stood as the connection went
            self.end_segment(conn, room)
        if conn.joining is not None:
            # A join cut short leaves its room itself, as if it never came; the endpoint forgets
            # the room too (its _join), so leave_all does not leave it a second time.
            conn.joining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await conn.joining
            if conn.joining.cancelled():  # (one that had ended, its member dropped, is in its room)
                conn.rooms.discard(conn.segments[-1].room)
            conn.joining = None
        for room in sorted(conn.rooms):
            await self.rooms.leave(conn.member, conn.user, room)
        conn.rooms.clear()
        await self.fanout.handed_out()  # as the endpoint's member does when it leaves
        conn.member.end(Disconnected(1000))
        del self.current[conn.client]

    async def drop_the_dropped(self) -> None:
        """A member the fan-out dropped (1013) is a connection that closes (which may drop another)."""
        while dropped := [conn for conn in self.current.values() if conn.member.state is Flow.ENDED]:
            assert dropped[0].stalled, "only a client that stopped reading is dropped"
            await self.close(dropped[0])

    def end_segment(self, conn: Connection, room: str) -> None:
        segment = [segment for segment in conn.segments if segment.room == room][-1]
        state = self.store._rooms[room]
        segment.end_top = state.top
        if not conn.stalled:
            segment.end_presence = sorted(state.users)

    def position(self, client: int, room: str) -> tuple[str, int] | None:
        """Where the client stands in ``room`` by what it got, as a client keeps it: its newest join's."""
        for conn in reversed([conn for conn in self.connections if conn.client == client]):
            mine = [
                follow(self, conn, segment, frames, complete=False)
                for segment, frames in conn.segments_with_frames()
                if segment.room == room
            ]
            if mine:
                return mine[-1].epoch, mine[-1].offset
        return None


@dataclass
class Reached:
    epoch: str
    offset: int  # the newest offset accounted for, by a msg or a gap (or the top a join began at)


def expected_replay(segment: Segment, window: Window) -> list[Item]:
    """What the issue says a join gets after ``joined``, from the window's bounds alone."""
    top, first = window.top, window.first
    if segment.since is None:
        k = segment.history or 0
        return [("msg", n) for n in range(max(first, top - k + 1), top + 1)] if k else []
    epoch, offset = segment.since
    if epoch != window.epoch or offset > top:
        return [("reset", window.epoch)]
    items: list[Item] = []
    start = offset + 1
    if start < first:
        items.append(("gap", start, first - 1, "trimmed"))
        start = first
    if top - start + 1 > SETTINGS.replay_max:
        items.append(("gap", start, top - SETTINGS.replay_max, "limit"))
        start = top - SETTINGS.replay_max + 1
    return items + [("msg", n) for n in range(start, top + 1)]


def follow(world: World, conn: Connection, segment: Segment, frames: list[Frame], *, complete: bool) -> Reached:
    """Check what ``conn`` got of one join (``frames``, from its ``joined``); where it got to."""
    window = segment.window
    assert window is not None
    room, joined = segment.room, frames[0]
    members = joined["members"]
    assert joined == {
        "type": "joined",
        "room": room,
        "epoch": window.epoch,
        "offset": window.top,
        "presence": [member["user"] for member in members],  # the names, as before people
        "count": len(members),
        "members": members,
    }
    assert members == sorted(members, key=lambda member: (member["user"], member["uid"]))
    assert conn.user.shown() in members
    present = {member["uid"] for member in members}
    assert len(present) == len(members)  # one entry per uid, whatever the names
    items: list[Item] = []
    for frame in frames[1:]:
        if frame["type"] == "presence":
            # With no window (these Rooms have none) each change is a frame of its own.
            ((change, people),) = [(key, frame[key]) for key in ("join", "leave") if frame[key]]
            [person] = people
            assert frame == presence_of(room, **{change: (person,)})
            assert person["uid"] != conn.user.uid, "presence of one's own uid (another tab) is not news"
            assert (change, person["uid"] in present) in (("join", False), ("leave", True)), (frame, present)
            present ^= {person["uid"]}
        elif frame["type"] == "msg":
            assert frame == world.published[(room, window.epoch, frame["offset"])]
            items.append(("msg", frame["offset"]))
        elif frame["type"] == "gap" and frame["reason"] == "reset":
            reset = {"type": "gap", "room": room, "reason": "reset", "epoch": window.epoch, "offset": window.top}
            assert frame == reset
            items.append(("reset", frame["epoch"]))
        else:
            assert frame["type"] == "gap", frame
            assert set(frame) == {"type", "room", "from", "to", "reason"}, frame
            items.append(("gap", frame["from"], frame["to"], frame["reason"]))
    offset = the_invariant(segment, window.top, items)
    # Exactly the replay, then the live messages one by one; of which a client whose outbox was
    # discarded, or that has not read everything yet, got a prefix.
    expected = expected_replay(segment, window)
    live = items[len(expected) :]
    assert items[: len(expected)] == expected[: len(items)]
    assert live == [("msg", n) for n in range(window.top + 1, window.top + 1 + len(live))]
    if complete:
        assert segment.end_top is not None
        assert len(live) == segment.end_top - window.top, "a live message missed without a gap"
        if segment.end_presence is not None:
            assert present == set(segment.end_presence)
    return Reached(window.epoch, offset)


def the_invariant(segment: Segment, top: int, items: list[Item]) -> int:
    """The issue's invariant, as it says it; the offset reached."""
    if items and items[0][0] == "reset":
        assert segment.since is not None
        previous, items = top, items[1:]
    elif segment.since is not None:
        previous = segment.since[1]
    elif items and items[0][0] == "msg" and items[0][1] <= top:
        previous = items[0][1] - 1  # history: the first replayed one's predecessor
    else:
        previous = top  # live only, or nothing to replay
    reasons: list[str] = []  # the gaps just before the next msg
    for item in items:
        assert item[0] != "reset", "a reset only comes first"
        if item[0] == "gap":
            assert item[1] == previous + 1, f"gap {item} after {previous}"
            assert item[2] >= item[1], f"gap {item} is empty"
            reasons.append(item[3])
            previous = item[2]
        else:
            assert item[1] == previous + 1, f"msg {item[1]} after {previous}: skipped with no gap"
            assert reasons in ([], ["trimmed"], ["limit"], ["trimmed", "limit"])
            reasons = []
            previous = item[1]
    return previous


async def scenario(script: list[Op]) -> World:
    world = World()
    await world.rooms.open()
    for op in script:
        await world.run(op)
        await world.fanout.handed_out()  # what the op offered is sent, queued or dropped by now
        await world.drop_the_dropped()
    for conn in list(world.current.values()):
        if conn.stalled:
            await world.release(conn)  # what it was sent reaches it
    for room in sorted(world.elsewhere):
        await world.store.exit(room, ELSEWHERE)
    for conn in list(world.current.values()):
        await world.close(conn)
    for conn in world.connections:
        for segment, frames in conn.segments_with_frames():
            follow(world, conn, segment, frames, complete=not conn.lost_tail)
    # Nobody left behind: no member in any room of this process, nobody present in the store.
    assert world.rooms._rooms == {}
    assert len(world.rooms) == 0
    assert all(not state.users for state in world.store._rooms.values())
    assert all(len(conn.member.outbox or ()) == 0 for conn in world.connections)
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if others:
        await asyncio.wait(others, timeout=TIMEOUT)
    assert all(task.done() for task in others), "a task outlived every connection"
    await world.rooms.close()
    return world


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=20, max_size=60))
def test_random_interleavings_keep_the_invariant_and_leave_nobody_behind(script: list[Op]) -> None:
    world = asyncio.run(scenario(script))
    for what in happened(world):  # pytest --hypothesis-show-statistics: how often each path ran
        event(what)


def happened(world: World) -> set[str]:
    seen = {f"gap {frame['reason']}" for conn in world.connections for frame in conn.frames() if frame["type"] == "gap"}
    if world.fanout.metrics.slow_consumer_disconnects:
        seen.add("a slow consumer dropped")
    if world.paused_joins:
        seen.add("a replay paused")
    if world.duplicates:
        seen.add("a duplicate say id")
    if world.races:
        seen.add("a line said while a join read its window")
    if world.unencodables:
        seen.add("a say the store refused whole")
    return seen


def briefly(conn: Connection, room: str) -> list[str]:
    """What ``conn`` got of ``room``, a word or three per frame."""
    words = {"joined": ("offset",), "msg": ("offset",), "gap": ("from", "to", "reason")}

    def brief(frame: Frame) -> str:
        if frame["type"] == "presence":  # "presence u-bob leave": each change by uid, as the frame lists them
            changes = [f"{person['uid']} {key}" for key in ("join", "leave") for person in frame[key]]
            return " ".join(["presence", *changes])
        return " ".join(str(frame.get(key)) for key in ("type", *words[frame["type"]]))

    return [brief(frame) for frame in conn.frames() if frame["room"] == room]


def test_a_scripted_run_exercises_trimming_limits_resets_stalls_and_drops() -> None:
    """One run through every path the properties are about, so that a change that makes the
    random runs miss them (a model that never stalls, a store that never trims) cannot go unseen."""

    def op(kind: str, client: int, room: str = "r0", how: str = "", k: int = 0, race: bool = False) -> Op:
        return Op(kind, client, room, how, k, None, race)

    script = [
        op("join", 0, how="live"),
        op("join", 1, how="live"),
        *[op("say", 1)] * 6,  # history 3: offsets 1 to 3 trimmed
        op("disconnect", 0),
        Op("say", 1, "r0", "", 0, "k1", False),
        Op("say", 1, "r0", "", 0, "k1", False),  # a duplicate: not published again
        op("join", 0, how="resume"),  # from 6: 7 replayed
        op("stall", 0),
        *[op("say", 1)] * 6,  # 8 to 13: client 0's outbox overflows, it is dropped
        op("join", 0, how="resume"),  # from 7, with 11 to 13 retained: trimmed 8-10, limit 11, then 12 and 13
        op("join", 2, "r1", how="live"),
        op("stall", 2),
        op("join", 2, how="history", k=3),  # 11 to 13, paused once 2 wait
        *[op("say", 1)] * 2,  # 14 and 15 reach client 2 through its joining buffer
        op("release", 2),
        op("leave", 1),
        op("disconnect", 0),
        op("disconnect", 2),
        op("tick", 0),
        op("join", 0, "r1", how="live"),  # r0 has been empty and silent for long enough: forgotten
        op("join", 0, how="resume"),  # from r0's old epoch: reset
        op("join", 1, "r1", how="history", k=3, race=True),  # eve's line 1 comes in the window and the buffer
    ]
    world = asyncio.run(scenario(script))
    gaps = [
        (frame["reason"], frame.get("from"), frame.get("to"))
        for conn in world.connections
        for frame in conn.frames()
        if frame["type"] == "gap"
    ]
    assert gaps == [("trimmed", 8, 10), ("limit", 11, 11), ("reset", None, None)]
    assert world.fanout.metrics.slow_consumer_disconnects == 1
    assert world.paused_joins == 1
    tab = next(conn for conn in world.connections if conn.client == 2)
    # The tab's join paused in its replay (11 to 13) while 14 and 15 were said, then bob left.
    assert briefly(tab, "r0") == ["joined 13", "msg 11", "msg 12", "msg 13", "msg 14", "msg 15", "presence u-bob leave"]
    # The other ada entered and said line 1 while bob's join read its window: bob's window has it,
    # and so has his joining buffer, and he gets it once; her presence came after his joined, so
    # he is told.
    bob = world.connections[1]
    assert briefly(bob, "r1") == ["joined 1", "msg 1", "presence u-eve join", "presence u-eve leave"]
    # Ada (client 0, her last connection) was in r1 as the other ada came and went: a namesake,
    # she is told of her as of bob.
    ada = next(conn for conn in reversed(world.connections) if conn.client == 0)
    assert briefly(ada, "r1") == [
        "joined 0",
        "presence u-bob join",
        "presence u-eve join",
        "msg 1",
        "presence u-eve leave",
        "presence u-bob leave",
    ]
    assert (world.duplicates, world.races, len(world.published)) == (1, 1, 16)
