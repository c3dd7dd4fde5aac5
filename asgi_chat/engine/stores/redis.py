"""The Redis store: one set of rooms for every process and host that shares a Redis server.

::

    say ──▶ APPEND (Lua: offset, XADD to the room's stream, PUBLISH, one atomic step)
                                                   │
    every process serving the room: the link's listener ◀── pub/sub ──┘
        ──▶ received ──▶ in offset order ──▶ Rooms.message
                     └── a hole? XRANGE the stream; what it no longer holds: gap "lost"

Offsets are assigned by Redis, so a room has one sequence for all processes, and its history (a
Redis Stream: at least ``history_messages`` kept) outlives every app process: a deploy that
restarts them all loses nothing, clients resume from Redis. The bounds (rooms, history bytes, say
ids) hold for the whole deployment, kept by the same scripts (bounds.py); :meth:`RedisStore.bounds`
shows them as of the latest reply, each script's and the presence task's.

What each process keeps is only what it serves: the rooms with members here (:class:`Feed`:
their local connections per uid, the epoch and the last offset delivered here). A process
subscribes to a room's channel while it has members in it, and a join waits for that
subscription to be confirmed before it reads the room's window (the rooms engine buffers what
arrives meanwhile and merges by offset), and gets the window once the feed here has handed over
everything it holds (:meth:`RedisStore.window`). A message whose offset is not the last plus
one, or a pub/sub connection that comes back, is caught up from the stream; an epoch that changed
(the room's meta gone: Redis flushed or restarted empty) is a ``reset`` for the members here. A
say returns once its own message has come back here that way, so that its ``ack`` follows its
``msg``.

Presence across processes: each process keeps one entry per (room, uid) it serves, refreshed
every third of ``presence_timeout``; a person's join and leave are announced by the Lua script
that takes their uid's count across processes from 0 to 1 or 1 to 0, so exactly once, carrying
the person as JSON (records.py); the room's ``people`` hash shows each uid present. A process that
dies without a word stops refreshing, and the first process alive to sweep after the deadline
(every third of the timeout) announces the leave, once, within about 1.33 x the timeout; if
none is there to sweep, the entry and the count expire together, so a later joiner never sees it.

What Redis holds of a message is its fields (time, name, text, say id, uid, guest), not a frame: the script
numbers it, and each process that delivers it encodes its ``msg`` frame once (engine/frames.py),
so no frame is ever cut open to put an offset in. Entries of an older version, whose field ``f`` is
the frame itself, and its ``m`` messages on a room's channel are still read (lua.py lists both).

The pub/sub connection, its reconnection and the store's health are the process's one
:class:`~asgi_chat.engine.redis_link.RedisLink`, shared with the tutorial chat's broker. It tells
the store of each confirmed subscription to a room's channel: after a reconnection (``again``),
the room is caught up from its stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable
from functools import partial
from typing import Any

from ..link_policy import describe
from ..people import Person
from ..redis_link import LinkUnavailable, RedisLink, cancel_all
from ..replay import Stored, Window
from . import Bound, RoomLimit, RoomSummary, StoreListener, StoreSettings, StoreUnavailable, listed, records
from .feed import Feed
from .moderation import Moderated
from .scripts import Scripts, forbidden, now_ms


class RedisStore(Moderated):  # kick, ban, mute, redact, disconnect: moderation.py
    def __init__(self, link: RedisLink, settings: StoreSettings) -> None:
        self.link = link
        self.settings = settings
        self.process = secrets.token_hex(8)  # this process, in its presence entries
        self._scripts = Scripts(link, settings)
        self._prefix = self._scripts.prefix
        self._listener: StoreListener | None = None
        self._served: dict[str, Feed] = {}
        self._presence: asyncio.Task[None] | None = None
        self._control_ready = asyncio.Event()  # the control channel's subscription is confirmed

    def bounds(self) -> tuple[Bound, ...]:
        return self._scripts.bounds

    @property
    def healthy(self) -> bool:
        return self._presence is not None and self.link.healthy

    # --- life cycle -----------------------------------------------------------------------

    async def open(self, listener: StoreListener) -> None:
        if self._presence is not None:
            return
        self._listener = listener
        try:
            await self.link.open()
        except LinkUnavailable as error:
            raise StoreUnavailable(str(error)) from None
        await self._follow_control()  # or the link closed again, and StoreUnavailable
        self._presence = asyncio.create_task(self._keep_presence(), name="asgi_chat rooms presence")

    async def close(self) -> None:
        if self._presence is None:
            return
        await cancel_all((self._presence,))
        self._presence = None
        for room in list(self._served):
            await self.link.unsubscribe(self._channel(room))
        self._served.clear()
        await self._unfollow_control()
        await self.link.close()

    def _channel(self, room: str) -> str:
        return f"{self._prefix}{room}"

    # --- presence -------------------------------------------------------------------------

    async def enter(self, room: str, person: Person) -> list[Person]:
        served = self._served.get(room)
        if served is None:
            served = self._served[room] = Feed(room, self._listener, partial(self._range, room))
            await self._subscribe(room, served)
        uid = person.uid
        served.users[uid] += 1
        shown_before = served.people.get(uid)
        served.people[uid] = person
        try:
            if served.users[uid] == 1:
                await self._enter(room, person, self.settings.max_rooms)
            elif shown_before != person:  # present here already, under another name: shown as this one now
                await self._enter(room, person, 0)
            people = await self.present(room)
        except BaseException:
            await self.exit(room, person)
            raise
        return people

    async def present(self, room: str) -> list[Person]:
        # Entries of processes that stopped refreshing are swept first: none of their people shows.
        reply = await self._scripts.run_rooms("REAP", room, [], [])
        self._scripts.counted(reply[2:5])
        return listed(records.person(shown) for shown in reply[1])

    async def rooms(self, after: str, limit: int) -> list[RoomSummary]:
        """From the deployment's ``rooms`` set (lua.py), by name; people as the ``users`` hash counts
        them (entries of a process that died go at the next sweep, within 1.33 x presence_timeout)."""
        held = await self._scripts.call(lambda client: client.zrange(self._scripts.globals[0], 0, -1))
        names = sorted(name for name in (raw.decode() for raw in held) if name > after)[:limit]

        async def summaries(client: Any) -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                for name in names:
                    meta, users = self._scripts.keys(name, "meta", "users")
                    pipe.hget(meta, "top")
                    pipe.hlen(users)
                return list(await pipe.execute())

        replies = await self._scripts.call(summaries) if names else []
        tops, counts = replies[0::2], replies[1::2]
        return [
            RoomSummary(name, int(count), int(top or 0)) for name, top, count in zip(names, tops, counts, strict=True)
        ]

    async def _enter(self, room: str, person: Person, limit: int) -> None:
        """Be present (again) as ``person``; a room new to the deployment counts against ``limit``."""
        timeout_ms = int(self.settings.presence_timeout * 1000)
        entry, deadline = f"{self.process} {person.uid}", now_ms() + timeout_ms
        args: list[object] = [entry, person.uid, records.shown(person), deadline, 2 * timeout_ms, limit]
        reply = await self._scripts.run_rooms("ENTER", room, args, [], self._scripts.held(room, "ban", person.uid))
        if reply[0] == b"banned":
            raise forbidden("banned from", room, int(reply[1]))
        if reply[0] != b"ok":  # full: every room held has members (or others kept taking the idle ones)
            raise RoomLimit(f"all {self.settings.max_rooms} rooms the deployment may hold have members")
        self._scripts.counted(reply[2:5])

    async def _subscribe(self, room: str, served: Feed) -> None:
        """Subscribe to the room's channel and wait until Redis confirms it."""
        channel = self._channel(room)
        try:
            await self.link.subscribe(channel, self)
            async with asyncio.timeout(self.link.timing.open_timeout):
                await served.confirmed.wait()
        except (LinkUnavailable, TimeoutError) as error:
            if self._served.get(room) is served:
                del self._served[room]
                await self.link.unsubscribe(channel)
            where = self.link.shown_url
            raise StoreUnavailable(f"cannot subscribe to room {room} at {where}: {describe(error)}") from None

    async def exit(self, room: str, person: Person) -> None:
        served = self._served.get(room)
        uid = person.uid
        if served is None or not served.users[uid]:
            return
        served.users[uid] -= 1
        if not served.users[uid]:
            del served.users[uid]
            served.people.pop(uid, None)
            await self._exit(room, uid)
        await self._unserved(room, served)

    async def _keep_presence(self) -> None:
        """Every third of the timeout: forget idle rooms, refresh this process's presence entries
        and sweep expired ones. The counts of each reply keep :meth:`bounds` up to date."""
        while True:
            with contextlib.suppress(StoreUnavailable):
                await self._scripts.sweep()
            await asyncio.sleep(self.settings.presence_timeout / 3)
            for room, served in list(self._served.items()):
                with contextlib.suppress(StoreUnavailable):
                    for person in list(served.people.values()):
                        await self._refresh(room, served, person)
                    await self.present(room)

    # --- history --------------------------------------------------------------------------

    async def window(self, room: str, after: int, limit: int) -> Window:
        """The room's window, once the feed here has handed over every message it holds.

        A window read while the room's feed here is running (another member here) may hold
        messages still on their way through pub/sub. Handed over now, they reach the joiner's
        buffer, where rooms.py drops what the window holds; handed over after its replay, they
        would reach it live, a second time. Usually a moment: they were published before the
        window was read. If pub/sub is slow or down, the feed takes them from the stream.
        """
        window = await self._window(room, after, limit)
        feed = self._served.get(room)
        if feed is not None:
            await feed.handed_over(window.epoch, window.top, self.link.timing.open_timeout)
        return window

    async def _window(self, room: str, after: int, limit: int) -> Window:
        """The WINDOW script's reply; the feed here starts from it, or learns of a reset."""
        args: list[object] = [secrets.token_hex(8), self._scripts.keep_ms, after, limit]
        reply = await self._scripts.run("WINDOW", self._scripts.keys(room, "meta", "stream", "redacted"), args)
        epoch, top, first = reply[0].decode(), int(reply[1]), int(reply[2])
        newest = records.stored_tail(room, reply[3:])
        newest.reverse()
        feed = self._served.get(room)
        if feed is not None and feed.last is None:  # the first join here: live from this top
            feed.start(epoch, top)
        elif feed is not None and epoch != feed.epoch:
            # The room's history is gone and this read is the first to see it: the members here
            # hear of the reset now, not at the next message, and catch up on the new epoch.
            await feed.reset(epoch, top)
        return Window(epoch, top, first, tuple(newest))

    async def _range(self, room: str, first: int, last: int) -> list[Stored]:
        return await self._scripts.read(room, "XRANGE", f"{first}-0", f"{last}-0")

    async def before(self, room: str, before: int, limit: int) -> list[Stored]:
        return list(reversed(await self._scripts.read(room, "XREVRANGE", f"({before}-0", "-", limit)))

    async def append(self, room: str, person: Person, text: str, say_id: str | None) -> tuple[int, bool]:
        # Deduplicated per uid: one person's say ids never pre-empt another's.
        say = records.say_field(room, person.uid, say_id) if say_id is not None and self.settings.dedup_seconds else ""
        body = records.body(now_ms(), person, text, say_id)
        epoch, offset, published = await self._scripts.append(room, person.uid, body, say)
        await self._heard_here(room, epoch, offset)
        return offset, published

    async def _heard_here(self, room: str, epoch: str, offset: int) -> None:
        """Wait until the members here have been handed ``offset`` (its pub/sub copy, or the
        stream's), as the memory store's append has: the sender's ``msg`` comes before its ``ack``.

        A moment at most: the script that replies has published already, and the copy comes on
        the subscription's own connection. Bounded all the same: with that connection down, the
        feed catches up only once it is back, and an ack that waited ``open_timeout`` for that
        goes out without its msg having come first.
        """
        feed = self._served.get(room)
        if feed is not None:  # else no member here: nobody for the order to matter to
            await feed.reached_within(epoch, offset, self.link.timing.open_timeout)

    # --- what the link hands on (redis_link.Subscriber) -----------------------------------

    async def confirmed(self, channel: str, again: bool) -> None:
        room = channel.removeprefix(self._prefix)
        served = self._served.get(room)
        if served is None:
            return
        served.confirmed.set()
        if again and served.last is not None:  # resubscribed after an outage: catch up
            # Each served room catches up once its own subscription is confirmed, so that
            # nothing published between the catch-up's read and the subscription is missed.
            await _as_outage(self._catch_up(room, served))

    async def received(self, channel: str, data: bytes) -> None:
        room = channel.removeprefix(self._prefix)
        if room in self._served:
            await _as_outage(self._published(room, data.decode()))

    async def _published(self, room: str, data: str) -> None:
        kind, rest = data.split(" ", 1)
        if kind == "p":  # "p <event> <person as JSON>"
            event, shown = rest.split(" ", 1)
            if self._listener is not None:
                self._listener.presence(room, records.person(shown), event)
            return
        if await self._moderated(room, kind, rest):  # "k", "r": moderation.py
            return
        epoch, offset, fields = rest.split(" ", 2)
        # "d": the message's fields, encoded here; "m": a process of an older version, with its frame.
        made = records.frame if kind == "d" else records.older_frame
        frame = made(room, int(offset), fields)
        await self._served[room].deliver(epoch, int(offset), frame)

    async def _catch_up(self, room: str, served: Feed) -> None:
        """After an outage: the room's epoch and top now, and what was published meanwhile.

        Redis unreachable again is an outage for the link (see :func:`_as_outage`): it
        resubscribes, and this runs again, rather than leaving the room behind until its next
        message.
        """
        for person in list(served.people.values()):  # Redis may have come back empty: be present again now
            await self._refresh(room, served, person)
        window = await self._window(room, 0, 0)  # a new epoch is a reset, told by _window() itself
        if served.last is not None and window.top > served.last:
            await served.fill(window.top)


async def _as_outage(work: Awaitable[None]) -> None:
    """Redis failed the store while the link's listener waited on it: an outage for the link,
    which reconnects and confirms each room's subscription again, so its catch-up runs anew."""
    try:
        await work
    except StoreUnavailable as error:
        raise LinkUnavailable(str(error)) from None
