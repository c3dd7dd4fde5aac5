"""One order for a ``say``'s answers, on both stores: the sender gets its own ``msg``, then its ``ack``.

Why this order (engine/stores/__init__.py): it is the one both stores can keep. The memory store
hands the message to every member within ``append``; on Redis the message comes back through the
room's pub/sub subscription, later than the script's reply or sooner, and the say waits until it
has (engine/stores/feed.py, ``Feed.reached``). The other order could only be kept by holding the
sender's own copy back while the others get theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from asgi_chat import ChatApp, Settings, create_app
from asgi_chat.endpoints import protocol
from asgi_chat.engine.brokers.redis import Timing
from asgi_chat.engine.stores.redis import RedisStore
from tests.redis_support import running_redis
from tests.rooms_support import Frame, RoomsClient

ROOM = "lobby"
# As in tests/asgi/test_rooms_redis.py: outages noticed and waited out in tenths of a second.
FAST = Timing(timeout=0.5, idle_ping=0.1, backoff_first=0.05, backoff_cap=0.2)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None for the memory store, else the URL of a real redis-server of the test's own."""
    if request.param == "memory":
        yield None
        return
    with running_redis(tmp_path) as server:
        yield server.url


@asynccontextmanager
async def started(url: str | None) -> AsyncIterator[ChatApp]:
    settings = Settings(rate_per_second=0)
    store = None if url is None else RedisStore(url, settings, protocol.msg, FAST)
    app = create_app(settings, store=store)
    await app.startup()
    try:
        yield app
    finally:
        await app.shutdown()


async def member(app: ChatApp, user: str) -> RoomsClient:
    client = await RoomsClient(app).open(user)
    await client.join(ROOM)
    return client


def said(frame: Frame) -> tuple[Any, ...]:
    """What the order is about: the frame's type, its say id and its offset."""
    return frame["type"], frame.get("id"), frame.get("offset")


async def test_the_sender_gets_its_msg_then_its_ack(store_url: str | None) -> None:
    async with started(store_url) as app:
        ada = await member(app, "ada")
        for n in range(1, 21):  # all queued at once: the app takes them one by one
            await ada.say(ROOM, f"line {n}", id=f"s{n}")
        frames = await ada.frames(40)
        assert [said(frame) for frame in frames] == [
            (kind, f"s{n}", n) for n in range(1, 21) for kind in ("msg", "ack")
        ]
        await ada.disconnect()


async def test_two_senders_each_get_their_msg_before_their_ack(store_url: str | None) -> None:
    async with started(store_url) as app:
        ada = await member(app, "ada")
        bob = await member(app, "bob")
        assert (await ada.expect("presence"))["user"] == "bob"
        for n in range(1, 11):
            await ada.say(ROOM, f"ada {n}", id=f"a{n}")
            await bob.say(ROOM, f"bob {n}", id=f"b{n}")
        for client, prefix in ((ada, "a"), (bob, "b")):
            frames = await client.frames(30)  # 20 lines, and 10 acks of its own
            seen: set[int] = set()
            for frame in frames:
                if frame["type"] == "msg":
                    seen.add(frame["offset"])
                else:
                    assert frame["type"] == "ack", frame
                    assert frame["id"].startswith(prefix), frame
                    assert frame["offset"] in seen, (frame, "before its msg")
            assert sorted(seen) == list(range(1, 21))
        for client in (ada, bob):
            await client.disconnect()


async def test_a_resent_say_id_gets_its_ack_alone(store_url: str | None) -> None:
    async with started(store_url) as app:
        ada = await member(app, "ada")
        await ada.say(ROOM, "hello", id="k")
        assert [said(frame) for frame in await ada.frames(2)] == [("msg", "k", 1), ("ack", "k", 1)]
        await ada.say(ROOM, "hello", id="k")  # its ack was lost, say: the first offset, no second msg
        await ada.say(ROOM, "next", id="k2")
        assert [said(frame) for frame in await ada.frames(3)] == [("ack", "k", 1), ("msg", "k2", 2), ("ack", "k2", 2)]
        await ada.disconnect()


@pytest.mark.redis
async def test_on_redis_the_ack_waits_for_a_late_pubsub_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The script's reply comes first and the subscription's copy is held back: the ack waits."""
    held = asyncio.Event()
    published = RedisStore._published

    async def late(store: RedisStore, room: str, data: str) -> None:
        if data.startswith("m "):  # a message, not presence
            await held.wait()
        await published(store, room, data)

    monkeypatch.setattr(RedisStore, "_published", late)
    with running_redis(tmp_path) as server:
        async with started(server.url) as app:
            ada = await member(app, "ada")
            await ada.say(ROOM, "hello", id="k")
            assert await ada.nothing()  # no ack before its msg
            held.set()
            assert [said(frame) for frame in await ada.frames(2)] == [("msg", "k", 1), ("ack", "k", 1)]
            await ada.disconnect()
