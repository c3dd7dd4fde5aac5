"""Moderation on the Redis store (engine/stores/moderation.py, issue 19): kick, ban, mute, redact
and disconnect, for every process that shares the Redis.

Two stores on one real redis-server stand for two processes. What each tells its listener, and what
Redis holds (the room's presence, the ban and mute keys with their expiry, the stream), is checked
against the rules of stores/__init__.py: a kick takes the uid's presence out of the room on every
process with one leave, and every process hears it; a ban refuses the uid's enter everywhere, across
reconnects, until it ends; a mute refuses its append everywhere without taking an offset; a redacted
message reads as ``frames.redacted_msg`` at its offset in every read; a disconnect reaches every
process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis

from asgi_chat import Settings
from asgi_chat.engine import frames
from asgi_chat.engine.link_policy import Timing
from asgi_chat.engine.people import Person
from asgi_chat.engine.redis_link import RedisLink
from asgi_chat.engine.replay import Stored
from asgi_chat.engine.stores import Forbidden
from asgi_chat.engine.stores.bounds import OVERHEAD
from asgi_chat.engine.stores.records import body, digest
from asgi_chat.engine.stores.redis import RedisStore
from asgi_chat.engine.stores.scripts import now_ms
from tests.helpers import TIMEOUT
from tests.redis_support import RedisServer

pytestmark = pytest.mark.redis

FAST = Timing(timeout=0.5, idle_ping=0.1, backoff_first=0.05, backoff_cap=0.2)
KEYS = "asgi_chat:db0:room:"
ROOM = "lobby"
ALICE = Person("u-alice", "Alice")
BOB = Person("u-bob", "Bob")
CAROL = Person("u-carol", "Carol")
MEG = "u-meg"  # the moderator

Event = tuple[Any, ...]


class Heard:
    """What a store tells the rooms engine, in the order heard: presence, kicks, redactions,
    disconnects as events; messages by offset."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.messages: dict[int, str] = {}

    def message(self, room: str, stored: Stored) -> None:
        self.messages[stored.offset] = stored.frame

    def presence(self, room: str, person: Person, event: str) -> None:
        self.events.put_nowait(("presence", room, person, event))

    def gap(self, room: str, first: int, last: int, reason: str) -> None:
        self.events.put_nowait(("gap", room, first, last, reason))

    def reset(self, room: str, epoch: str, offset: int) -> None:
        pass

    def kicked(self, room: str, uid: str, by: str, reason: str) -> None:
        self.events.put_nowait(("kicked", room, uid, by, reason))

    def redacted(self, room: str, offset: int, by: str) -> None:
        self.events.put_nowait(("redacted", room, offset, by))

    def disconnected(self, uid: str, reason: str) -> None:
        self.events.put_nowait(("disconnected", uid, reason))

    async def next(self) -> Event:
        return await asyncio.wait_for(self.events.get(), TIMEOUT)


@asynccontextmanager
async def opened(url: str, **settings: Any) -> AsyncIterator[tuple[RedisStore, Heard]]:
    store = RedisStore(RedisLink(url, FAST), Settings(**settings))
    heard = Heard()
    await store.open(heard)
    try:
        yield store, heard
    finally:
        await store.close()


@asynccontextmanager
async def deployment(url: str, **settings: Any) -> AsyncIterator[tuple[RedisStore, Heard, RedisStore, Heard, Redis]]:
    """Two processes' stores, and a plain client to look into Redis."""
    async with (
        opened(url, **settings) as (a, heard_a),
        opened(url, **settings) as (b, heard_b),
        Redis.from_url(url) as admin,
    ):
        yield a, heard_a, b, heard_b, admin


async def joined(store: RedisStore, person: Person) -> None:
    """Enter ROOM and read its window, as a join does."""
    await store.enter(ROOM, person)
    await store.window(ROOM, 0, 0)


def key(kind: str, uid: str) -> str:
    return f"{KEYS}{ROOM}:{kind}:{digest(uid)}"


def ts_of(frame: str) -> int:
    return int(json.loads(frame)["ts"])


# --- kick and ban ----------------------------------------------------------------------------------


async def test_a_kick_takes_the_uid_out_on_every_process_with_one_leave_and_both_hear_it(
    redis_server: RedisServer,
) -> None:
    async with deployment(redis_server.url) as (a, heard_a, b, heard_b, admin):
        await joined(a, ALICE)
        assert await heard_a.next() == ("presence", ROOM, ALICE, "join")
        await joined(a, BOB)
        assert await heard_a.next() == ("presence", ROOM, BOB, "join")
        await joined(b, ALICE)  # her second connection, on the other process: no second join

        await a.kick(ROOM, ALICE.uid, MEG, "spam")
        for heard in (heard_a, heard_b):  # her one leave, then the kick, on each process
            assert await heard.next() == ("presence", ROOM, ALICE, "leave")
            assert await heard.next() == ("kicked", ROOM, ALICE.uid, MEG, "spam")

        # Her presence is gone from Redis, both processes' entries, and from each feed here.
        assert await admin.zrange(f"{KEYS}{ROOM}:here", 0, -1) == [f"{a.process} {BOB.uid}".encode()]
        assert await admin.hgetall(f"{KEYS}{ROOM}:users") == {BOB.uid.encode(): b"1"}
        assert await admin.hkeys(f"{KEYS}{ROOM}:people") == [BOB.uid.encode()]
        assert await a.present(ROOM) == [BOB] == await b.present(ROOM)
        assert ALICE.uid not in a._served[ROOM].users
        assert ROOM not in b._served  # nobody left here: no feed, no subscription

        # Her connections' exits do nothing: the next event is Carol's join, not a second leave of
        # hers (the channel keeps the order: it would have come first).
        await a.exit(ROOM, ALICE)
        await b.exit(ROOM, ALICE)
        await joined(b, CAROL)
        for heard in (heard_a, heard_b):
            assert await heard.next() == ("presence", ROOM, CAROL, "join")
        # A kick is no ban: she may come back at once.
        assert await a.enter(ROOM, ALICE) == [ALICE, BOB, CAROL]


async def test_a_kick_that_empties_a_room_without_history_forgets_it(redis_server: RedisServer) -> None:
    async with deployment(redis_server.url) as (a, heard_a, _b, _, admin):
        async with opened(redis_server.url) as (gone, _):  # a process that goes without a word
            await joined(gone, ALICE)
        assert await admin.hkeys(f"{KEYS}{ROOM}:users") == [ALICE.uid.encode()]
        await a.kick(ROOM, ALICE.uid, MEG, "")  # the kick itself forgets the room it empties
        assert [key async for key in admin.scan_iter(f"{KEYS}{ROOM}:*")] == []
        assert await admin.zscore("asgi_chat:db0:rooms", ROOM) is None
        assert heard_a.events.empty()  # a serves no member there: it heard nothing


async def test_a_kick_that_empties_a_room_with_history_leaves_it_idle(redis_server: RedisServer) -> None:
    async with deployment(redis_server.url) as (a, _, b, heard_b, admin):
        await joined(b, ALICE)
        await b.append(ROOM, ALICE, "hello", None)
        await a.kick(ROOM, ALICE.uid, MEG, "")
        assert [(await heard_b.next())[0] for _ in range(3)] == ["presence", "presence", "kicked"]
        score = await admin.zscore("asgi_chat:db0:rooms", ROOM)
        assert score is not None
        assert score <= now_ms()  # empty since now: the idle sweep's to forget
        assert await admin.xlen(f"{KEYS}{ROOM}:stream") == 1


async def test_a_ban_refuses_the_enter_on_the_other_process_across_reconnects_until_unbanned(
    redis_server: RedisServer,
) -> None:
    async with deployment(redis_server.url) as (a, _, b, heard_b, admin):
        await joined(a, BOB)
        await joined(a, ALICE)
        await a.kick(ROOM, ALICE.uid, MEG, "flood", ban_seconds=60)
        assert 59_000 < await admin.pttl(key("ban", ALICE.uid)) <= 60_000

        with pytest.raises(Forbidden, match=f"banned from room {ROOM} for 60 more seconds"):
            await b.enter(ROOM, ALICE)
        # Refused before anything changed: no presence, no feed here, nothing announced.
        assert await admin.hkeys(f"{KEYS}{ROOM}:users") == [BOB.uid.encode()]
        assert ROOM not in b._served
        # A reconnect (a process of its own, a new enter) is banned too.
        async with opened(redis_server.url) as (c, _):
            with pytest.raises(Forbidden, match="banned"):
                await c.enter(ROOM, ALICE)

        await a.unban(ROOM, ALICE.uid)
        assert await admin.exists(key("ban", ALICE.uid)) == 0
        assert await b.enter(ROOM, ALICE) == [ALICE, BOB]
        assert await heard_b.next() == ("presence", ROOM, ALICE, "join")


async def test_a_ban_ends_by_itself_when_its_key_expires(redis_server: RedisServer) -> None:
    async with deployment(redis_server.url) as (a, _, b, _, admin), admin.pubsub() as expiries:
        await admin.config_set("notify-keyspace-events", "Ex")  # expired keys are told on a channel
        await expiries.subscribe("__keyevent@0__:expired")
        await joined(a, ALICE)
        await a.kick(ROOM, ALICE.uid, MEG, "", ban_seconds=0.3)
        assert 0 < await admin.pttl(key("ban", ALICE.uid)) <= 300  # the key carries the ban's length
        with pytest.raises(Forbidden, match="for 1 more seconds"):
            await b.enter(ROOM, ALICE)

        banned = key("ban", ALICE.uid).encode()
        async with asyncio.timeout(TIMEOUT):
            while (event := await expiries.get_message(timeout=TIMEOUT)) is None or event["data"] != banned:
                pass
        assert await b.enter(ROOM, ALICE) == [ALICE]


# --- mute ------------------------------------------------------------------------------------------


async def test_a_mute_refuses_says_on_every_process_without_taking_an_offset(redis_server: RedisServer) -> None:
    async with deployment(redis_server.url) as (a, _, b, _, admin):
        for store in (a, b):
            await joined(store, ALICE)
        await joined(a, BOB)
        assert await a.append(ROOM, ALICE, "one", None) == (1, True)

        await b.mute(ROOM, ALICE.uid, 60)
        assert 59_000 < await admin.pttl(key("mute", ALICE.uid)) <= 60_000
        for store in (a, b):
            with pytest.raises(Forbidden, match=f"muted in room {ROOM} for 60 more seconds"):
                await store.append(ROOM, ALICE, "two", "say-2")
        assert await a.append(ROOM, BOB, "bob's", None) == (2, True)  # no offset was taken: 2 is Bob's
        assert await admin.hget(f"{KEYS}{ROOM}:meta", "top") == b"2"

        await a.unmute(ROOM, ALICE.uid)
        assert await admin.exists(key("mute", ALICE.uid)) == 0
        assert await b.append(ROOM, ALICE, "two", "say-2") == (3, True)  # the say id was not spent either


# --- redact ----------------------------------------------------------------------------------------


async def test_a_redacted_message_reads_as_removed_everywhere_at_its_offset(redis_server: RedisServer) -> None:
    async with deployment(redis_server.url) as (a, heard_a, b, heard_b, admin):
        await joined(a, ALICE)
        await joined(b, BOB)
        for text in ("one", "two", "three"):
            await a.append(ROOM, ALICE, text, None)
        original = heard_a.messages[2]
        removed = frames.redacted_msg(ROOM, 2, ts_of(original))

        assert await b.redact(ROOM, 2, MEG) is True
        for heard in (heard_a, heard_b):
            while (event := await heard.next())[0] == "presence":
                pass
            assert event == ("redacted", ROOM, 2, MEG)
        assert await admin.hgetall(f"{KEYS}{ROOM}:redacted") == {b"2": MEG.encode()}
        assert await admin.xlen(f"{KEYS}{ROOM}:stream") == 3  # the entry stays: the sequence is whole

        for store in (a, b):
            window = await store.window(ROOM, 0, 10)  # WINDOW
            assert [stored.frame for stored in window.newest] == [heard_a.messages[1], removed, heard_a.messages[3]]
            before = await store.before(ROOM, 4, 10)  # XREVRANGE, now READ
            assert [stored.frame for stored in before] == [heard_a.messages[1], removed, heard_a.messages[3]]
            assert [stored.frame for stored in await store.before(ROOM, 3, 1)] == [removed]
        assert '"text"' not in removed
        assert '"uid"' not in removed

        # A resume, as the feed fills a hole from the stream (XRANGE, now READ): the removed line
        # at its place, then what follows.
        feed = b._served[ROOM]
        feed.last = 1
        heard_b.messages.clear()
        await feed.fill(3)
        assert heard_b.messages == {2: removed, 3: heard_a.messages[3]}
        assert [stored.frame for stored in await b._range(ROOM, 1, 3)][1] == removed

        assert await a.redact(ROOM, 2, MEG) is True  # again: done already, told no second time
        await a.disconnect("nobody", "")  # a marker: whatever a heard before it, it has heard
        assert await heard_a.next() == ("disconnected", "nobody", "")


async def test_a_redaction_of_a_message_not_retained_does_nothing(redis_server: RedisServer) -> None:
    one = len(body(now_ms(), ALICE, "x", None)) + OVERHEAD
    async with deployment(redis_server.url, history_max_bytes=2 * one) as (a, heard_a, b, _, admin):
        assert await a.redact(ROOM, 1, MEG) is False  # no such room
        await joined(a, ALICE)
        assert await heard_a.next() == ("presence", ROOM, ALICE, "join")
        for _ in range(3):
            await b.append(ROOM, ALICE, "x", None)
        entries: Any = await admin.xrange(f"{KEYS}{ROOM}:stream")
        assert [entry_id for entry_id, _ in entries] == [b"2-0", b"3-0"]

        for offset in (1, 4, 0, -1):  # trimmed, not said yet, none
            assert await b.redact(ROOM, offset, MEG) is False
        assert await admin.exists(f"{KEYS}{ROOM}:redacted") == 0
        await b.disconnect("nobody", "")  # a marker: nothing was told before it
        assert await heard_a.next() == ("disconnected", "nobody", "")


async def test_a_redaction_goes_with_its_message_and_its_room(redis_server: RedisServer) -> None:
    one = len(body(now_ms(), ALICE, "x", None)) + OVERHEAD
    async with deployment(redis_server.url, history_max_bytes=2 * one) as (a, _, _b, _, admin):
        await joined(a, ALICE)
        for _ in range(2):
            await a.append(ROOM, ALICE, "x", None)
        assert await a.redact(ROOM, 1, MEG) is True
        assert await admin.pttl(f"{KEYS}{ROOM}:redacted") > 0  # it expires, as the stream does
        await a.append(ROOM, ALICE, "x", None)  # offset 1 is evicted: its redaction goes with it
        assert await admin.exists(f"{KEYS}{ROOM}:redacted") == 0


# --- disconnect ------------------------------------------------------------------------------------


async def test_a_disconnect_reaches_every_process(redis_server: RedisServer) -> None:
    async with deployment(redis_server.url) as (a, heard_a, _b, heard_b, _):
        await a.disconnect(ALICE.uid, "token revoked")
        for heard in (heard_a, heard_b):
            assert await heard.next() == ("disconnected", ALICE.uid, "token revoked")
