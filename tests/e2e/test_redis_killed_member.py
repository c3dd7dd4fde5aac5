"""A process killed right after a join leaves no ghost member on Redis (issue 18, item 7).

The ENTER script used to set the users hash's expiry before HINCRBY made it, so the hash had
none until the process's first refresh: a worker killed 0.1 s after a join left a count that no
sweep could take back once its presence entry had expired, and every later joiner saw the member
for ever. Now every key gets its expiry in the script that makes it (stores/lua.py), the room's
``people`` hash too (issue 19: who each uid present is).

The member's process is real: a Python subprocess that opens a RedisStore, joins, says so on its
stdout and is killed with SIGKILL at once, before its first refresh: no EXIT, no goodbye.
"""

from __future__ import annotations

import asyncio
import sys
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
from tests.helpers import TIMEOUT
from tests.redis_support import RedisServer
from tests.store_support import Unmoderated

pytestmark = pytest.mark.redis

ROOM = "lobby"
PRESENCE_TIMEOUT = 0.6  # seconds: every process refreshes and sweeps every third of it
FAST = Timing(timeout=0.5, idle_ping=0.1, backoff_first=0.05, backoff_cap=0.2)

# The member's process: join, say so, and wait to be killed.
MEMBER = """
import asyncio, sys
from asgi_chat import Settings
from asgi_chat.engine.people import Person
from asgi_chat.engine.redis_link import RedisLink
from asgi_chat.engine.stores.redis import RedisStore

class Deaf:
    def message(self, *args): pass
    def presence(self, *args): pass
    def gap(self, *args): pass
    def reset(self, *args): pass
    def kicked(self, *args): pass
    def redacted(self, *args): pass
    def disconnected(self, *args): pass

async def main(url, room, user, timeout):
    store = RedisStore(RedisLink(url), Settings(presence_timeout=float(timeout)))
    await store.open(Deaf())
    await store.enter(room, Person("u:" + user, user))
    await store.window(room, 0, 0)
    print("joined", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:]))
"""


async def killed_right_after_joining(url: str, user: str) -> float:
    """Run the member's process until it has joined ROOM as ``user``, then SIGKILL it; when."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", MEMBER, url, ROOM, user, str(PRESENCE_TIMEOUT), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), TIMEOUT * 2) == b"joined\n"
    finally:
        process.kill()
        await process.wait()
    return asyncio.get_running_loop().time()


class Presences(Unmoderated):
    """A store's listener that queues the presence events it hears, in the order heard."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()  # (name, event), the uid checked

    def message(self, room: str, stored: Stored) -> None:
        pass

    def presence(self, room: str, person: Person, event: str) -> None:
        assert person == who(person.name), person  # the person as entered: uid, name, not a guest
        self.events.put_nowait((person.name, event))

    def gap(self, room: str, first: int, last: int, reason: str) -> None:
        pass

    def reset(self, room: str, epoch: str, offset: int) -> None:
        pass

    async def next(self) -> tuple[str, str]:
        return await asyncio.wait_for(self.events.get(), TIMEOUT)


def who(name: str) -> Person:
    """The person of that name here: uid ``u:<name>``, as the member's process enters it."""
    return Person("u:" + name, name)


@asynccontextmanager
async def opened(url: str, listener: Any = None) -> AsyncIterator[RedisStore]:
    store = RedisStore(RedisLink(url, FAST), Settings(presence_timeout=PRESENCE_TIMEOUT))
    await store.open(listener or Presences())
    try:
        yield store
    finally:
        await store.close()


async def test_a_member_killed_right_after_joining_is_announced_left_once_within_the_timeout(
    redis_server: RedisServer,
) -> None:
    heard = Presences()
    async with opened(redis_server.url, heard) as watcher, opened(redis_server.url) as late:
        await watcher.enter(ROOM, who("watcher"))
        await watcher.window(ROOM, 0, 0)
        assert await heard.next() == ("watcher", "join")

        killed = await killed_right_after_joining(redis_server.url, "ghost")
        assert await heard.next() == ("ghost", "join")
        assert await heard.next() == ("ghost", "leave")  # by the watcher's process, which sweeps
        elapsed = asyncio.get_running_loop().time() - killed
        assert elapsed < PRESENCE_TIMEOUT * 4 / 3 + 0.5, elapsed  # the deadline, then the next sweep
        assert await watcher.present(ROOM) == [who("watcher")]

        # Once: every sweep since, the watcher's and a later joiner's, announced nothing more.
        # The channel keeps the order, so a second leave would come before these two events.
        assert await late.enter(ROOM, who("late")) == [who("late"), who("watcher")]
        await late.exit(ROOM, who("late"))
        assert [await heard.next(), await heard.next()] == [("late", "join"), ("late", "leave")]


async def test_with_nobody_there_to_sweep_the_killed_member_expires_with_its_count(
    redis_server: RedisServer,
) -> None:
    async with Redis.from_url(redis_server.url) as admin, admin.pubsub() as expiries:
        await admin.config_set("notify-keyspace-events", "Ex")  # expired keys are told on a channel
        await expiries.subscribe("__keyevent@0__:expired")
        await killed_right_after_joining(redis_server.url, "ghost")

        here = f"asgi_chat:db0:room:{ROOM}:here".encode()
        async with asyncio.timeout(TIMEOUT):  # twice the presence timeout after the join
            while (event := await expiries.get_message(timeout=TIMEOUT)) is None or event["data"] != here:
                pass
        # The count and the person went with the entry: set in one script, they expire together.
        assert await admin.exists(f"asgi_chat:db0:room:{ROOM}:users", f"asgi_chat:db0:room:{ROOM}:people") == 0
        async with opened(redis_server.url) as late:
            assert await late.enter(ROOM, who("late")) == [who("late")]
