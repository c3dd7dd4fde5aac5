"""One order for a ``say``'s answers, on both stores: the sender gets its own ``msg``, then its ``ack``.

Why this order (engine/stores/__init__.py): it is the one both stores can keep. The memory store
hands the message to every member on a step of its own on the event loop, which ``append`` waits
for; on Redis the message comes back through the room's pub/sub subscription, later than the
script's reply or sooner, and the say waits until it has (engine/stores/feed.py,
``Feed.reached``). The other order could only be kept by holding the sender's own copy back while
the others get theirs.

And one way for a say, on both stores: the store never calls the rooms back from inside the say,
and a say that fails (a text with no UTF-8) takes no offset.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from asgi_chat import ChatApp, Settings, create_app
from asgi_chat.engine.link_policy import Timing
from asgi_chat.engine.redis_link import RedisLink
from asgi_chat.engine.replay import Stored
from asgi_chat.engine.rooms import Rooms
from asgi_chat.engine.stores.redis import RedisStore
from tests.redis_support import running_redis
from tests.rooms_support import Frame, RoomsClient, presence_of

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
    store = None if url is None else RedisStore(RedisLink(url, FAST), settings)
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
        assert await ada.expect("presence") == presence_of(ROOM, join=("bob",))
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


async def test_a_say_travels_one_way_the_engine_is_not_called_back_from_within_it(
    store_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """endpoint -> Rooms.say -> store.append, and back; the store hands the message to the rooms
    (Rooms.message) on a turn of its own, never from inside the say's own call."""
    within_say: list[bool] = []
    message = Rooms.message

    def noted(rooms: Rooms, room: str, stored: Stored) -> None:
        frame: FrameType | None = sys._getframe()
        while frame is not None and frame.f_code is not Rooms.say.__code__:
            frame = frame.f_back
        within_say.append(frame is not None)
        message(rooms, room, stored)

    monkeypatch.setattr(Rooms, "message", noted)
    async with started(store_url) as app:
        ada = await member(app, "ada")
        for n in range(1, 4):
            await ada.say(ROOM, f"line {n}", id=f"s{n}")
        assert [said(frame) for frame in await ada.frames(6)] == [
            (kind, f"s{n}", n) for n in range(1, 4) for kind in ("msg", "ack")
        ]
        assert within_say == [False, False, False]
        await ada.disconnect()


async def test_a_say_whose_text_has_no_utf8_takes_no_offset(store_url: str | None) -> None:
    """A lone surrogate (JSON's "\\ud800") cannot be encoded: the say is refused at the edge as
    ``bad_request``, takes no offset, and the connection stays open; nobody sees a hole."""
    async with started(store_url) as app:
        ada = await member(app, "ada")
        bob = await member(app, "bob")
        assert await ada.expect("presence") == presence_of(ROOM, join=("bob",))
        await ada.say(ROOM, "one", id="a1")
        assert [said(frame) for frame in await ada.frames(2)] == [("msg", "a1", 1), ("ack", "a1", 1)]
        assert said(await bob.frame()) == ("msg", "a1", 1)
        await ada.send_text('{"type":"say","room":"lobby","text":"lone \\ud800","id":"bad"}')
        assert await ada.frame() == {
            "type": "error",
            "code": "bad_request",
            "message": "text is not valid Unicode: it holds a lone surrogate",
            "id": "bad",
        }
        await bob.say(ROOM, "two", id="b2")
        before, ack = await bob.until("ack")
        assert [said(frame) for frame in before if frame["type"] != "presence"] == [("msg", "b2", 2)]
        assert said(ack) == ("ack", "b2", 2)
        assert said(await ada.frame()) == ("msg", "b2", 2)
        await ada.say(ROOM, "three", id="a3")  # ada's connection goes on
        assert [said(frame) for frame in await ada.frames(2)] == [("msg", "a3", 3), ("ack", "a3", 3)]
        await bob.disconnect()


async def test_the_largest_position_a_client_may_send_is_answered_alike_on_both_stores(
    store_url: str | None,
) -> None:
    """2**53 - 1, the largest whole number a request may carry: a resume from it is a reset (it is
    above the top) and history before it is the latest page, on either store, never ``unavailable``;
    one more is a ``bad_request`` before the store is asked."""
    async with started(store_url) as app:
        ada = await member(app, "ada")
        await ada.say(ROOM, "one")
        await ada.until("ack")
        joined = await (await RoomsClient(app).open("bob")).join(ROOM)
        late = await RoomsClient(app).open("cy")
        await late.request("join", room=ROOM, since={"epoch": joined["epoch"], "offset": 2**53 - 1})
        assert (await late.expect("joined"))["offset"] == 1
        reset = await late.frame()
        assert (reset["type"], reset["reason"], reset["offset"]) == ("gap", "reset", 1)
        await late.request("history", room=ROOM, before=2**53 - 1, limit=5)
        assert [message["offset"] for message in (await late.expect("history"))["messages"]] == [1]
        await late.request("history", room=ROOM, before=2**53, limit=5)
        error = await late.expect("error")
        assert (error["code"], error["message"]) == ("bad_request", "before must be a whole number from 0 to 2**53 - 1")


@pytest.mark.redis
async def test_on_redis_the_ack_waits_for_a_late_pubsub_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The script's reply comes first and the subscription's copy is held back: the ack waits."""
    held = asyncio.Event()
    published = RedisStore._published

    async def late(store: RedisStore, room: str, data: str) -> None:
        if not data.startswith("p "):  # a message, not presence
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
