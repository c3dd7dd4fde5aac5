"""People on the Redis store (engine/stores/redis.py, issue 19): presence and say ids per uid,
for every process that shares the Redis.

Two stores on one real redis-server stand for two processes. What they tell their listeners, and
what Redis holds (the room's ``users`` and ``people`` hashes, the presence messages on its
channel), is checked against the rules of stores/__init__.py: presence is counted per uid (two
people of one name are two presences, one person on two processes is one), each person shown as
entered last, and a say id is its uid's alone.
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
from asgi_chat.engine.link_policy import Timing
from asgi_chat.engine.people import Person
from asgi_chat.engine.redis_link import RedisLink
from asgi_chat.engine.replay import Stored
from asgi_chat.engine.stores.redis import RedisStore
from asgi_chat.engine.stores.scripts import now_ms
from tests.helpers import TIMEOUT
from tests.redis_support import RedisServer
from tests.store_support import Unmoderated

pytestmark = pytest.mark.redis

FAST = Timing(timeout=0.5, idle_ping=0.1, backoff_first=0.05, backoff_cap=0.2)
KEYS = "asgi_chat:db0:room:"
ROOM = "lobby"
ALICE = Person("u-alice", "Alice")
OTHER_ALICE = Person("guest:aaaaaaaaaaaaaaaa", "Alice", guest=True)  # the same name, another uid
BOB = Person("u-bob", "bob")


class Heard(Unmoderated):
    """What a store tells the rooms engine: presence events and messages, in the order heard."""

    def __init__(self) -> None:
        self.presences: asyncio.Queue[tuple[Person, str]] = asyncio.Queue()
        self.messages: list[Stored] = []

    def message(self, room: str, stored: Stored) -> None:
        self.messages.append(stored)

    def presence(self, room: str, person: Person, event: str) -> None:
        self.presences.put_nowait((person, event))

    def gap(self, room: str, first: int, last: int, reason: str) -> None:
        pass

    def reset(self, room: str, epoch: str, offset: int) -> None:
        pass

    async def next(self) -> tuple[Person, str]:
        return await asyncio.wait_for(self.presences.get(), TIMEOUT)


@asynccontextmanager
async def opened(url: str, **settings: Any) -> AsyncIterator[tuple[RedisStore, Heard]]:
    store = RedisStore(RedisLink(url, FAST), Settings(**settings))
    heard = Heard()
    await store.open(heard)
    try:
        yield store, heard
    finally:
        await store.close()


async def joined(store: RedisStore, person: Person) -> list[Person]:
    """Enter ROOM and read its window, as a join does; the room's people as the join saw them."""
    people = await store.enter(ROOM, person)
    await store.window(ROOM, 0, 0)
    return people


async def test_one_uid_on_two_processes_is_one_presence_announced_once(redis_server: RedisServer) -> None:
    async with opened(redis_server.url) as (a, heard), opened(redis_server.url) as (b, _):
        assert await joined(a, BOB) == [BOB]
        assert await heard.next() == (BOB, "join")
        assert await joined(a, ALICE) == [ALICE, BOB]  # sorted by name: "Alice" < "bob"
        assert await heard.next() == (ALICE, "join")
        assert await joined(b, ALICE) == [ALICE, BOB]  # her second connection, on the other process
        await a.exit(ROOM, ALICE)  # one of two: she is still here, on b
        assert await a.present(ROOM) == [ALICE, BOB]
        await b.exit(ROOM, ALICE)  # the last one: her leave, carrying who she is
        assert await heard.next() == (ALICE, "leave")  # the next event: no second join of hers came before it
        assert await a.present(ROOM) == [BOB]


async def test_two_people_of_one_name_on_two_processes_are_two_presences(redis_server: RedisServer) -> None:
    async with opened(redis_server.url) as (a, heard_a), opened(redis_server.url) as (b, heard_b):
        await joined(a, ALICE)
        assert await heard_a.next() == (ALICE, "join")
        assert await joined(b, OTHER_ALICE) == sorted([ALICE, OTHER_ALICE], key=lambda person: person.uid)
        for heard in (heard_a, heard_b):  # each process hears her join, a namesake's, through Redis
            assert await heard.next() == (OTHER_ALICE, "join")
        await b.exit(ROOM, OTHER_ALICE)
        assert await heard_a.next() == (OTHER_ALICE, "leave")
        assert await a.present(ROOM) == [ALICE]


async def test_redis_keeps_people_by_uid_and_announces_them_as_json(redis_server: RedisServer) -> None:
    async with (
        opened(redis_server.url) as (a, _),
        opened(redis_server.url) as (b, _),
        Redis.from_url(redis_server.url) as admin,
        admin.pubsub() as channel,
    ):
        await channel.subscribe(f"{KEYS}{ROOM}")
        await joined(a, ALICE)
        await joined(b, OTHER_ALICE)
        renamed = Person(ALICE.uid, "Alice L.")  # her token's name changed: her uid did not
        assert await joined(b, renamed) == [OTHER_ALICE, renamed]  # shown as entered last, still one presence
        users: Any = await admin.hgetall(f"{KEYS}{ROOM}:users")
        assert users == {ALICE.uid.encode(): b"2", OTHER_ALICE.uid.encode(): b"1"}  # processes per uid
        people: Any = await admin.hgetall(f"{KEYS}{ROOM}:people")
        assert {uid.decode(): json.loads(shown) for uid, shown in people.items()} == {
            ALICE.uid: renamed.shown(),
            OTHER_ALICE.uid: OTHER_ALICE.shown(),
        }
        assert await admin.pttl(f"{KEYS}{ROOM}:people") > 0  # it expires with users (the ghost fix)
        await b.exit(ROOM, OTHER_ALICE)
        published: list[str] = []
        while len(published) < 3:  # the subscription's confirmation, then what was published
            message = await channel.get_message(ignore_subscribe_messages=True, timeout=TIMEOUT)
            if message is not None:
                published.append(message["data"].decode())
        kinds = [text.split(" ", 2) for text in published]
        assert [(kind, event) for kind, event, _ in kinds] == [("p", "join"), ("p", "join"), ("p", "leave")]
        announced = [json.loads(person) for _, _, person in kinds]
        assert announced == [ALICE.shown(), OTHER_ALICE.shown(), OTHER_ALICE.shown()]
        assert OTHER_ALICE.uid.encode() not in await admin.hkeys(f"{KEYS}{ROOM}:people")


async def test_a_say_id_is_one_uids_on_every_process(redis_server: RedisServer) -> None:
    async with (
        opened(redis_server.url, dedup_seconds=600) as (a, _),
        opened(redis_server.url, dedup_seconds=600) as (b, _),
    ):
        await joined(a, ALICE)
        await joined(b, OTHER_ALICE)
        assert await a.append(ROOM, ALICE, "hers", "k") == (1, True)
        assert await b.append(ROOM, OTHER_ALICE, "the namesake's, the same id", "k") == (2, True)  # not pre-empted
        assert await b.append(ROOM, ALICE, "hers, resent through b", "k") == (1, False)  # hers, on any process
        assert await a.append(ROOM, OTHER_ALICE, "resent", "k") == (2, False)


async def test_presence_kept_by_the_version_before_people_is_shown_by_its_name_and_swept(
    redis_server: RedisServer,
) -> None:
    """Across the upgrade, a process of the previous version left its entry (keyed by name, no
    ``people``): it is listed as the uid of that name, not a guest, and its leave told so."""
    async with opened(redis_server.url) as (a, heard), Redis.from_url(redis_server.url) as admin:
        await joined(a, BOB)
        assert await heard.next() == (BOB, "join")
        old = Person("olduser", "olduser")
        deadline = now_ms() + 60_000
        await admin.zadd(f"{KEYS}{ROOM}:here", {"0123456789abcdef olduser": deadline})
        await admin.hset(f"{KEYS}{ROOM}:users", "olduser", 1)
        assert await a.present(ROOM) == [BOB, old]
        await admin.zadd(f"{KEYS}{ROOM}:here", {"0123456789abcdef olduser": now_ms() - 1})  # its process died
        assert await a.present(ROOM) == [BOB]  # swept, and its leave announced once
        assert await heard.next() == (old, "leave")
