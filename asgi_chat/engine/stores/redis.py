"""The Redis store: one set of rooms for every process and host that shares a Redis server.

::

    say ──▶ APPEND (Lua: offset, XADD to the room's stream, PUBLISH, one atomic step)
                                   │
    every process serving the room: listener ◀── pub/sub ──┘ ──▶ in offset order ──▶ Rooms.message
                                   └── a hole? XRANGE the stream; what it no longer holds: gap "lost"

Offsets are assigned by Redis, so a room has one sequence for all processes, and its history (a
Redis Stream, trimmed with ``MAXLEN ~``: at least ``history_messages`` kept) outlives every app
process: a deploy that restarts them all loses nothing, clients resume from Redis.

What each process keeps is only what it serves: the rooms with members here (:class:`Feed`:
their local connections per user, the epoch and the last offset delivered here). A process
subscribes to a room's channel while it has members in it, and a join waits for that
subscription to be confirmed before it reads the room's window (the rooms engine buffers what
arrives meanwhile and merges by offset). A message whose offset is not the last plus one, or a
pub/sub connection that comes back, is caught up from the stream; an epoch that changed (the
room's meta gone: Redis flushed or restarted empty) is a ``reset`` for the members here. A say
returns once its own message has come back here that way, so that its ``ack`` follows its ``msg``.

Presence across processes: each process keeps one entry per (room, user) it serves, refreshed
every third of ``presence_timeout``; a user's join and leave are announced by the Lua script
that takes their count across processes from 0 to 1 or 1 to 0, so exactly once. A process that
dies without a word stops refreshing, and the first process alive to sweep after the deadline
(every third of the timeout) announces the leave, once, within about 1.33 x the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import secrets
import time
from functools import partial
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from ...ops.settings import Settings
from ..brokers.redis import Timing, cancel_all, redis_client
from ..brokers.wire import backoff_delay, describe, redact_url
from ..replay import Stored, Window
from . import Encoder, StoreListener, StoreUnavailable, lua
from .feed import Feed

logger = logging.getLogger("asgi_chat")

OFFSET_MARK = '"offset":0,'  # where the frame template takes the offset Redis assigns


class RedisStore:
    def __init__(self, url: str, settings: Settings, encode: Encoder, timing: Timing | None = None) -> None:
        self.url = url
        self.shown_url = redact_url(url)
        self.settings = settings
        self.timing = timing or Timing()
        self.process = secrets.token_hex(8)
        self._encode = encode
        self._listener: StoreListener | None = None
        self._served: dict[str, Feed] = {}
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._tasks: tuple[asyncio.Task[None], ...] = ()
        self._subscribed = asyncio.Event()
        self._healthy = False
        self._prefix = ""
        self._scripts: dict[str, Any] = {}

    @property
    def healthy(self) -> bool:
        return self._healthy

    # --- life cycle -----------------------------------------------------------------------

    async def open(self, listener: StoreListener) -> None:
        if self._tasks:
            return
        self._listener = listener
        client = self._client = redis_client(self.url, self.timing)
        self._prefix = f"asgi_chat:db{client.connection_pool.connection_kwargs.get('db', 0)}:room:"
        self._scripts = {name: client.register_script(getattr(lua, name)) for name in lua.SCRIPTS}
        self._subscribed = asyncio.Event()
        self._tasks = (
            asyncio.create_task(self._listen(redis_client(self.url, self.timing)), name="asgi_chat rooms listener"),
            asyncio.create_task(self._keep_presence(), name="asgi_chat rooms presence"),
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timing.open_timeout):
                await self._subscribed.wait()
        if not self._healthy:
            await self.close()
            raise StoreUnavailable(f"cannot use Redis at {self.shown_url} for the rooms: is redis-server running?")

    async def close(self) -> None:
        await cancel_all(self._tasks)
        if self._client is not None:
            await self._client.aclose()
        self._tasks, self._client, self._pubsub, self._healthy = (), None, None, False

    # --- keys and calls -------------------------------------------------------------------

    def _keys(self, room: str, *names: str) -> list[str]:
        return [f"{self._prefix}{room}:{name}" for name in names]

    def _channel(self, room: str) -> str:
        return f"{self._prefix}{room}"

    async def _run(self, script: str, keys: list[str], args: list[object]) -> Any:
        """Run a Lua script; an unreachable Redis is StoreUnavailable, for the client to hear."""
        try:
            return await self._scripts[script](keys=keys, args=args)
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"Redis at {self.shown_url}: {describe(error)}") from None

    def _idle_ms(self) -> int:
        return int(self.settings.room_idle_seconds * 1000) or 1 << 40

    # --- presence -------------------------------------------------------------------------

    async def enter(self, room: str, user: str) -> list[str]:
        served = self._served.get(room)
        if served is None:
            served = self._served[room] = Feed(room, self._listener, partial(self._range, room))
            await self._subscribe(room, served)
        served.users[user] += 1
        try:
            if served.users[user] == 1:
                await self._enter(room, user)
            await self._run("REAP", self._keys(room, "here", "users"), [_now_ms(), self._channel(room)])
            users = await self._call(lambda client: client.hkeys(self._keys(room, "users")[0]))
        except BaseException:
            await self.exit(room, user)
            raise
        return sorted(name.decode() for name in users)

    async def _enter(self, room: str, user: str) -> None:
        timeout_ms = int(self.settings.presence_timeout * 1000)
        entry, deadline = f"{self.process} {user}", _now_ms() + timeout_ms
        args: list[object] = [entry, user, deadline, self._channel(room), 2 * timeout_ms, self._idle_ms()]
        await self._run("ENTER", self._keys(room, "here", "users", "meta", "stream"), args)

    async def _subscribe(self, room: str, served: Feed) -> None:
        """Subscribe to the room's channel and wait until Redis confirms it."""
        try:
            if self._pubsub is None:
                raise StoreUnavailable("not connected to Redis")
            await self._pubsub.subscribe(self._channel(room))
            async with asyncio.timeout(self.timing.open_timeout):
                await served.confirmed.wait()
        except (RedisError, OSError, TimeoutError, StoreUnavailable) as error:
            self._served.pop(room, None)
            raise StoreUnavailable(f"cannot subscribe to room {room} at {self.shown_url}: {describe(error)}") from None

    async def exit(self, room: str, user: str) -> None:
        served = self._served.get(room)
        if served is None or not served.users[user]:
            return
        served.users[user] -= 1
        if not served.users[user]:
            del served.users[user]
            # Unreachable now: the entry expires, and a process alive announces the leave then.
            with contextlib.suppress(StoreUnavailable):
                await self._run(
                    "EXIT", self._keys(room, "here", "users"), [f"{self.process} {user}", user, self._channel(room)]
                )
        if not served.users and self._served.get(room) is served:
            del self._served[room]
            if self._pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(self._channel(room))

    async def _keep_presence(self) -> None:
        """Refresh this process's presence entries and sweep expired ones, every third of the timeout."""
        while True:
            await asyncio.sleep(self.settings.presence_timeout / 3)
            for room, served in list(self._served.items()):
                with contextlib.suppress(StoreUnavailable):
                    for user in list(served.users):
                        await self._enter(room, user)
                    await self._run("REAP", self._keys(room, "here", "users"), [_now_ms(), self._channel(room)])

    # --- history --------------------------------------------------------------------------

    async def window(self, room: str, after: int, limit: int) -> Window:
        args: list[object] = [secrets.token_hex(8), self._idle_ms(), after, limit]
        reply = await self._run("WINDOW", self._keys(room, "meta", "stream"), args)
        epoch, top, first = reply[0].decode(), int(reply[1]), int(reply[2])
        newest = _stored(reply[3:])
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
        (stream,) = self._keys(room, "stream")
        entries = await self._call(lambda client: client.xrange(stream, f"{first}-0", f"{last}-0"))
        return [_entry(entry_id, fields) for entry_id, fields in entries]

    async def before(self, room: str, before: int, limit: int) -> list[Stored]:
        (stream,) = self._keys(room, "stream")
        entries = await self._call(lambda client: client.xrevrange(stream, f"({before}-0", "-", count=limit))
        return [_entry(entry_id, fields) for entry_id, fields in reversed(entries)]

    async def append(self, room: str, user: str, text: str, say_id: str | None) -> tuple[int, bool]:
        head, tail = self._encode(room, 0, _now_ms(), user, text, say_id).split(OFFSET_MARK, 1)
        keys = [*self._keys(room, "meta", "stream"), self._say_key(room, user, say_id)]
        dedup_ms = int(self.settings.dedup_seconds * 1000)
        args: list[object] = [secrets.token_hex(8), self._idle_ms(), head + '"offset":', tail]
        args += [self.settings.history_messages or 1 << 40, dedup_ms or 1, self._channel(room)]
        epoch, offset, published = await self._run("APPEND", keys, args)
        await self._heard_here(room, epoch.decode(), int(offset))
        return int(offset), bool(published)

    async def _heard_here(self, room: str, epoch: str, offset: int) -> None:
        """Wait until the members here have been handed ``offset`` (its pub/sub copy, or the
        stream's), as the memory store's append has: the sender's ``msg`` comes before its ``ack``.

        A moment at most: the script that replies has published already, and the copy comes on
        the subscription's own connection. Bounded all the same: with that connection down, the
        feed catches up only once it is back, and an ack that waited ``open_timeout`` for that
        goes out without its msg having come first.
        """
        feed = self._served.get(room)
        if feed is None:  # no member here: nobody for the order to matter to
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timing.open_timeout):
                await feed.reached(epoch, offset)

    def _say_key(self, room: str, user: str, say_id: str | None) -> str:
        if say_id is None or not self.settings.dedup_seconds:
            return ""
        digest = hashlib.sha1(f"{user}\0{say_id}".encode(), usedforsecurity=False).hexdigest()
        return self._keys(room, f"say:{digest}")[0]

    async def _call(self, command: Any) -> Any:
        if self._client is None:
            raise StoreUnavailable("not connected to Redis")
        try:
            return await command(self._client)
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"Redis at {self.shown_url}: {describe(error)}") from None

    # --- the listener ---------------------------------------------------------------------

    async def _listen(self, subscriber: Redis) -> None:
        """Follow the served rooms' channels until close(); every failure is an outage to wait out."""
        attempt = 0
        try:
            while True:
                try:
                    async with subscriber.pubsub() as pubsub:
                        await pubsub.subscribe(
                            f"{self._prefix}process:{self.process}", *map(self._channel, self._served)
                        )
                        self._pubsub = pubsub
                        await self._relay(pubsub)
                except Exception as error:  # nothing but close() may end this loop
                    if self._healthy:
                        attempt = 0  # that connection worked: the next outage starts with short waits
                    self._went_down(error)
                await asyncio.sleep(
                    backoff_delay(attempt, self.timing.backoff_first, self.timing.backoff_cap, random.random())
                )
                attempt += 1
        finally:
            await subscriber.aclose()

    async def _relay(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            message = await pubsub.get_message(timeout=self.timing.idle_ping)
            if message is not None:
                await self._receive(message)
                heard = loop.time()
            elif loop.time() - heard > self.timing.idle_ping + self.timing.timeout:
                raise TimeoutError(f"no reply from Redis for {loop.time() - heard:.1f} s")
            else:
                await pubsub.ping()

    async def _receive(self, message: dict[str, Any]) -> None:
        channel = message["channel"].decode() if isinstance(message.get("channel"), bytes) else ""
        room = channel.removeprefix(self._prefix)
        if message["type"] == "subscribe":
            await self._confirmed(room)
        elif message["type"] == "message" and room in self._served:
            await self._published(room, message["data"].decode())

    async def _confirmed(self, room: str) -> None:
        served = self._served.get(room)
        if served is not None:
            served.confirmed.set()
            if self._healthy and served.last is not None:  # resubscribed after an outage: catch up
                await self._catch_up(room, served)
        elif not self._healthy and room.startswith("process:"):  # our own channel: connected
            # Each served room catches up once its own subscription is confirmed (above), so that
            # nothing published between the catch-up's read and the subscription is missed.
            self._came_up()

    async def _published(self, room: str, data: str) -> None:
        kind, rest = data.split(" ", 1)
        if kind == "p":
            event, user = rest.split(" ", 1)
            if self._listener is not None:
                self._listener.presence(room, user, event)
            return
        epoch, offset, frame = rest.split(" ", 2)
        await self._served[room].deliver(epoch, int(offset), frame)

    async def _catch_up(self, room: str, served: Feed) -> None:
        """After an outage: the room's epoch and top now, and what was published meanwhile.

        Redis unreachable again is an outage for the listener (StoreUnavailable ends ``_relay``):
        it resubscribes, and this runs again, rather than leaving the room behind until its next
        message.
        """
        for user in list(served.users):  # Redis may have come back empty: be present again now
            await self._enter(room, user)
        window = await self.window(room, 0, 0)  # a new epoch is a reset, told by window() itself
        if served.last is not None and window.top > served.last:
            await served.fill(window.top)

    def _came_up(self) -> None:
        if self._subscribed.is_set():
            logger.warning("rooms on Redis up again at %s", self.shown_url)
        self._healthy = True
        self._subscribed.set()

    def _went_down(self, error: BaseException) -> None:
        self._pubsub = None
        for served in self._served.values():
            served.confirmed.clear()
        if self._healthy:
            self._healthy = False
            logger.warning("rooms on Redis down: %s; members stay connected, reconnecting", describe(error))
        self._subscribed.set()  # open() waits for the first attempt either way


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _entry(entry_id: bytes, fields: dict[bytes, bytes]) -> Stored:
    frame = fields[b"f"].decode()
    return Stored(int(entry_id.split(b"-", 1)[0]), frame, len(frame))


def _stored(flat: list[Any]) -> list[Stored]:
    """WINDOW's tail: offset, frame, offset, frame, ..."""
    return [Stored(int(flat[i]), flat[i + 1].decode(), len(flat[i + 1])) for i in range(0, len(flat), 2)]
