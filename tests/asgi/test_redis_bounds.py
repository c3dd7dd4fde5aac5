"""The Redis store's bounds hold for the whole deployment (issue 18, item 3): rooms, history
bytes and say ids, counted once for every process that shares the Redis (stores/bounds.py).

Two stores on one real redis-server stand for two processes, each on a link of its own. What
Redis holds is read back with a plain client and checked against what the store claims: the
byte count is exactly what the streams hold, a room's first retained offset is its stream's
first entry, a forgotten room leaves no key behind, and every key has an expiry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis

from asgi_chat import Settings
from asgi_chat.engine.link_policy import Timing
from asgi_chat.engine.people import Person
from asgi_chat.engine.redis_link import RedisLink
from asgi_chat.engine.replay import Stored
from asgi_chat.engine.stores import RoomLimit
from asgi_chat.engine.stores.bounds import OVERHEAD
from asgi_chat.engine.stores.redis import RedisStore
from asgi_chat.engine.stores.scripts import now_ms
from tests.asgi.test_rooms_redis import member, started
from tests.helpers import wait_until
from tests.redis_support import RedisServer
from tests.rooms_support import RoomsClient
from tests.store_support import Unmoderated

pytestmark = pytest.mark.redis

FAST = Timing(timeout=0.5, idle_ping=0.1, backoff_first=0.05, backoff_cap=0.2)
KEYS = "asgi_chat:db0:"
LINE = "x" * 50  # every line the same length, so every message counts the same


def person(name: str) -> Person:
    """``name``'s person, of uid ``u:<name>``: every body of theirs the same length."""
    return Person(f"u:{name}", name)


ADA = person("ada")


class Listener(Unmoderated):
    """What a store tells the rooms engine: here only the messages matter."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, Stored]] = []

    def message(self, room: str, stored: Stored) -> None:
        self.messages.append((room, stored))

    def presence(self, room: str, person: Person, event: str) -> None:
        pass

    def gap(self, room: str, first: int, last: int, reason: str) -> None:
        pass

    def reset(self, room: str, epoch: str, offset: int) -> None:
        pass


@asynccontextmanager
async def opened(url: str, **settings: Any) -> AsyncIterator[RedisStore]:
    store = RedisStore(RedisLink(url, FAST), Settings(**settings))
    await store.open(Listener())
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def deployment(url: str, **settings: Any) -> AsyncIterator[tuple[RedisStore, RedisStore, Redis]]:
    """Two processes' stores with the same settings, and a plain client to look into Redis."""
    async with opened(url, **settings) as a, opened(url, **settings) as b, Redis.from_url(url) as admin:
        yield a, b, admin


async def joined(store: RedisStore, room: str, user: Person = ADA) -> None:
    """Enter and read the window, as a join does (the feed here starts from it)."""
    await store.enter(room, user)
    await store.window(room, 0, 0)


async def say(store: RedisStore, room: str, count: int, user: Person = ADA) -> list[int]:
    return [(await store.append(room, user, LINE, None))[0] for _ in range(count)]


def bound(store: RedisStore, name: str) -> tuple[int, int, bool]:
    """(used, limit, full) of one of the store's bounds, as /healthz shows them."""
    [found] = [b for b in store.bounds() if b.name == name]
    return found.used, found.limit, found.full


def size() -> int:
    """What one of LINE's messages by ada counts against the budget: its body's bytes (its fields:
    ts, name, text, say id, uid, guest) and OVERHEAD."""
    return len(f'[{now_ms()},"ada","{LINE}",null,"u:ada",false]') + OVERHEAD


async def offsets(admin: Redis, room: str) -> list[int]:
    """The offsets a room's stream holds, ascending."""
    entries: Any = await admin.xrange(f"{KEYS}room:{room}:stream")
    return [int(entry_id.split(b"-")[0]) for entry_id, _ in entries]


async def held(admin: Redis) -> int:
    """What every room's stream holds, counted as the budget counts it."""
    total = 0
    async for stream in admin.scan_iter(f"{KEYS}room:*:stream"):
        entries: Any = await admin.xrange(stream)
        total += sum(len(fields[b"d"]) + OVERHEAD for _, fields in entries)
    return total


async def counted(admin: Redis) -> int:
    return int(await admin.get(f"{KEYS}history:bytes") or 0)


async def room_keys(admin: Redis, room: str) -> list[bytes]:
    return [key async for key in admin.scan_iter(f"{KEYS}room:{room}:*")]


# --- rooms ------------------------------------------------------------------------------------------


async def test_past_the_cap_with_every_room_occupied_a_new_room_is_refused_on_every_process(
    redis_server: RedisServer,
) -> None:
    async with deployment(redis_server.url, max_rooms=3) as (a, b, admin):
        await joined(a, "one")
        await joined(a, "two")
        await joined(b, "three")
        for store in (a, b):
            with pytest.raises(RoomLimit):
                await store.enter("four", person("bob"))
        assert bound(b, "rooms") == (3, 3, True)
        assert await room_keys(admin, "four") == []  # a refused room leaves nothing behind
        assert await b.enter("one", person("bob")) == [ADA, person("bob")]  # rooms held may still be entered

        await a.exit("three", person("ada"))  # not a's: nothing changes
        await b.exit("three", person("ada"))  # empty, with no history: forgotten at once
        assert bound(b, "rooms") == (2, 3, False)
        assert await room_keys(admin, "three") == []
        assert await a.enter("four", person("bob")) == [person("bob")]


async def test_a_join_refused_by_the_deployments_cap_is_answered_too_many_rooms(redis_server: RedisServer) -> None:
    async with started(redis_server.url, max_rooms=1) as (a, _), started(redis_server.url, max_rooms=1) as (b, _):
        await member(a, "ada", "one")
        bob = await RoomsClient(b).open("bob")
        await bob.request("join", room="two", id="j")
        error = await bob.expect("error")
        assert (error["code"], error["id"]) == ("too_many_rooms", "j")
        assert (await bob.join("one"))["presence"] == ["ada", "bob"]


async def test_join_and_leave_churn_of_new_room_names_holds_no_slot_and_leaves_no_key(
    redis_server: RedisServer,
) -> None:
    # The lockout, on Redis: 476 rooms made with a cap of 50, each left for a day.
    async with deployment(redis_server.url, max_rooms=50) as (a, b, admin):
        for n in range(200):
            store = (a, b)[n % 2]
            await joined(store, f"churn-{n}", person("eve"))
            await store.exit(f"churn-{n}", person("eve"))
        assert await room_keys(admin, "churn-*") == []
        assert await admin.zcard(f"{KEYS}rooms") == 0
        assert bound(a, "rooms") == (0, 50, False)
        assert bound(b, "rooms") == (0, 50, False)


async def test_at_the_cap_the_room_empty_longest_gives_way_with_its_keys_and_history(
    redis_server: RedisServer,
) -> None:
    async with deployment(redis_server.url, max_rooms=3, dedup_seconds=600) as (a, b, admin):
        # Named in the order they empty: should two empty in the same millisecond, Redis orders
        # equal scores by name.
        for room in ("a-old", "b-mid", "c-busy"):
            await joined(a, room)
            assert await a.append(room, person("ada"), f"in {room}", "k") == (1, True)
        epoch = (await a.window("a-old", 0, 0)).epoch
        await a.exit("a-old", person("ada"))  # empty first
        await a.exit("b-mid", person("ada"))
        assert bound(a, "rooms") == (3, 3, True)

        await joined(b, "new", person("bob"))  # b never served a-old: it learns which room gives way
        assert bound(b, "rooms") == (3, 3, True)
        assert await room_keys(admin, "a-old") == []
        assert await offsets(admin, "b-mid") == [1]  # the room empty since later stays
        members: Any = await admin.zrange(f"{KEYS}history", 0, -1)
        assert [member.split()[0] for member in members] == [b"b-mid", b"c-busy"]
        assert await counted(admin) == await held(admin)

        await joined(a, "a-old")  # b-mid gives way in turn
        window = await a.window("a-old", 0, 10)
        assert window.epoch != epoch  # another history: a resume from the old one is a reset
        assert (window.top, window.newest) == (0, ())
        assert await a.append("a-old", person("ada"), "in a-old", "k") == (1, True)  # the old say id is void


# --- history bytes ----------------------------------------------------------------------------------


async def test_past_the_budget_the_oldest_messages_go_first_whichever_room_and_process(
    redis_server: RedisServer,
) -> None:
    budget = 10 * size() + size() // 2  # ten messages fit
    async with deployment(redis_server.url, history_max_bytes=budget) as (a, b, admin):
        await joined(a, "early")
        await joined(b, "late", person("bob"))
        assert await say(a, "early", 6) == [1, 2, 3, 4, 5, 6]
        assert await say(b, "late", 6, person("bob")) == [1, 2, 3, 4, 5, 6]  # b trims a room it does not serve
        assert await offsets(admin, "early") == [3, 4, 5, 6]
        assert await offsets(admin, "late") == [1, 2, 3, 4, 5, 6]
        window = await a.window("early", 0, 10)
        assert (window.first, window.top) == (3, 6)  # the first retained offset is exact
        assert [stored.offset for stored in window.newest] == [3, 4, 5, 6]

        await say(a, "early", 4)  # the oldest now are early's own
        assert await offsets(admin, "early") == [7, 8, 9, 10]
        await say(a, "early", 2)  # then late's, which a does not serve
        assert await offsets(admin, "late") == [3, 4, 5, 6]
        assert (await b.window("late", 0, 0)).first == 3
        assert await counted(admin) == await held(admin) == 10 * size()
        assert bound(a, "history_bytes") == (10 * size(), budget, False)


async def test_an_idle_room_whose_history_the_budget_took_is_forgotten(redis_server: RedisServer) -> None:
    async with deployment(redis_server.url, history_max_bytes=5 * size(), max_rooms=10) as (a, b, admin):
        await joined(a, "quiet")
        await say(a, "quiet", 1)
        await a.exit("quiet", person("ada"))
        await joined(b, "loud", person("bob"))
        assert bound(b, "rooms") == (2, 10, False)
        await say(b, "loud", 6, person("bob"))
        assert bound(b, "rooms") == (1, 10, False)
        assert await room_keys(admin, "quiet") == []


async def test_a_rooms_own_trim_keeps_the_byte_count_exact(redis_server: RedisServer) -> None:
    async with opened(redis_server.url, history_messages=5) as store, Redis.from_url(redis_server.url) as admin:
        await joined(store, "room")
        await say(store, "room", 105)  # up to 5 + 100 kept: trimmed a hundred at a time
        assert len(await offsets(admin, "room")) == 105
        await say(store, "room", 1)
        assert await offsets(admin, "room") == [102, 103, 104, 105, 106]
        assert (await store.window("room", 0, 0)).first == 102
        assert await counted(admin) == await held(admin) == 5 * size()
        assert await admin.zcard(f"{KEYS}history") == 5


async def test_says_racing_on_two_processes_keep_the_count_exact_and_every_room_whole(
    redis_server: RedisServer,
) -> None:
    budget = 40 * size()
    rooms = [f"room-{n}" for n in range(8)]
    async with deployment(redis_server.url, history_max_bytes=budget) as (a, b, admin):
        for n, room in enumerate(rooms):
            await joined((a, b)[n % 2], room)

        async def talk(store: RedisStore, mine: list[str]) -> None:
            for n in range(40):
                await say(store, mine[n % len(mine)], 1)

        await asyncio.gather(talk(a, rooms[0::2]), talk(b, rooms[1::2]), talk(a, rooms[:4]), talk(b, rooms[4:]))
        assert await counted(admin) == await held(admin)
        assert budget - size() < await counted(admin) <= budget
        for room in rooms:  # what a room keeps is one run of offsets, up to its top
            kept = await offsets(admin, room)
            top = int(await admin.hget(f"{KEYS}room:{room}:meta", "top") or 0)
            assert kept == list(range(top - len(kept) + 1, top + 1)), (room, kept)


async def test_what_redis_holds_for_the_rooms_stays_within_the_history_budget(redis_server: RedisServer) -> None:
    # The issue: one address within every other limit added 187 MB of history in 20 s.
    budget = 512 * 1024
    text = "y" * 500
    async with opened(redis_server.url, history_max_bytes=budget) as store, Redis.from_url(redis_server.url) as admin:
        for room in ("a", "b", "c", "d"):
            await joined(store, room)
        for n in range(3000):  # about 1.6 MB of bodies, three times the budget
            await store.append("abcd"[n % 4], person("ada"), text, None)
        assert await counted(admin) <= budget
        used = [await admin.memory_usage(key, samples=0) or 0 async for key in admin.scan_iter(f"{KEYS}*")]
        assert sum(used) < budget * 1.25, used  # OVERHEAD counts about what Redis spends per message


# --- say ids ----------------------------------------------------------------------------------------


async def test_past_dedup_max_the_oldest_say_ids_are_forgotten_first(redis_server: RedisServer) -> None:
    async with deployment(redis_server.url, dedup_max=3, dedup_seconds=600) as (a, b, admin):
        await joined(a, "room")
        await joined(b, "room", person("bob"))
        for n in range(5):
            assert await a.append("room", person("ada"), "hi", f"k{n}") == (n + 1, True)
        assert await b.append("room", person("ada"), "hi", "k4") == (5, False)  # remembered, across processes
        assert await b.append("room", person("ada"), "hi", "k0") == (6, True)  # the oldest, forgotten
        assert (await admin.hlen(f"{KEYS}says"), await admin.zcard(f"{KEYS}says:expiry")) == (3, 3)
        assert bound(a, "say_ids") == (3, 3, True)
        assert bound(b, "say_ids") == (3, 3, True)


# --- the presence task ------------------------------------------------------------------------------


async def test_the_presence_task_forgets_idle_rooms_and_counts_expired_say_ids_out(
    redis_server: RedisServer,
) -> None:
    settings = {"presence_timeout": 0.3, "room_idle_seconds": 0.3, "dedup_seconds": 0.3}
    async with opened(redis_server.url, **settings) as store, Redis.from_url(redis_server.url) as admin:
        await joined(store, "room")
        await store.append("room", person("ada"), "hi", "k")
        await store.exit("room", person("ada"))  # empty, with history: held until idle long enough
        assert [bound(store, name)[0] for name in ("rooms", "say_ids")] == [1, 1]
        await wait_until(lambda: [b.used for b in store.bounds()] == [0, 0, 0])  # no say, no call
        assert await room_keys(admin, "room") == []
        assert await admin.zcard(f"{KEYS}history") == 0


# --- expiry -----------------------------------------------------------------------------------------


async def test_every_key_has_an_expiry_from_the_moment_it_exists(redis_server: RedisServer) -> None:
    # Issue 18, item 7: a users hash made without one kept a killed process's member for ever.
    async with opened(redis_server.url, dedup_seconds=600) as store, Redis.from_url(redis_server.url) as admin:
        await joined(store, "room")  # long before the presence task's first refresh
        await store.append("room", person("ada"), "first", "k")  # the stream is made by this say
        keys = [key async for key in admin.scan_iter(f"{KEYS}*")]
        for name in ("meta", "stream", "here", "users", "people"):
            assert f"{KEYS}room:room:{name}".encode() in keys
        ttls = {key: await admin.pttl(key) for key in keys}
        assert all(ttl > 0 for ttl in ttls.values()), ttls
