"""asgi_chat.publish against apps on one real redis-server, in one event loop: what a publish
shares with a say (offsets, dedup, the room's bounds, the keys' prefix) and what it does not (the
namespace of its idempotency keys). The separate processes are in tests/e2e/test_publish.py.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from redis.asyncio import Redis

from asgi_chat import Settings
from asgi_chat.endpoints.protocol import MAX_ID_CHARS, BadRequest, parse_request
from asgi_chat.engine.people import Person
from asgi_chat.engine.stores import RoomLimit
from asgi_chat.publish import SYSTEM, Published, Publisher, apublish, say_id_of
from tests.asgi.test_rooms_redis import ROOM, answer, member, started
from tests.helpers import wait_until
from tests.redis_support import RedisServer
from tests.rooms_support import Frame

pytestmark = pytest.mark.redis

SETTINGS = Settings(rate_per_second=0, presence_interval=0)


def test_an_idempotency_key_is_never_a_websocket_say_id() -> None:
    """A key is the HTTP API's say id of it: longer than any say id a WebSocket client may send."""
    from asgi_chat.web.api_endpoints import api_say_id  # the API's, in its own module

    for key in ("k", "1", "x" * MAX_ID_CHARS):
        say_id = say_id_of(key)
        assert say_id == api_say_id(key)  # one namespace with the HTTP API: a key there and here is one publish
        assert len(say_id) > MAX_ID_CHARS
        frame = json.dumps({"type": "say", "room": ROOM, "text": "hi", "id": say_id})
        with pytest.raises(BadRequest):
            parse_request(frame, 4000)


def test_who_speaks() -> None:
    with pytest.raises(ValueError, match="needs a uid"):
        asyncio.run(apublish("redis://127.0.0.1:1/0", ROOM, "hi", user="alice", settings=SETTINGS))
    with pytest.raises(ValueError, match="idempotency key"):
        asyncio.run(apublish("redis://127.0.0.1:1/0", ROOM, "hi", idempotency_key="", settings=SETTINGS))
    with pytest.raises(ValueError, match="room name"):
        asyncio.run(apublish("redis://127.0.0.1:1/0", "Not A Room", "hi", settings=SETTINGS))
    assert Person("system", "system") == SYSTEM


async def test_a_publish_reaches_members_of_both_apps_and_takes_the_next_offset(redis_server: RedisServer) -> None:
    async with started(redis_server.url) as (one, _), started(redis_server.url) as (two, _):
        alice, _ = await member(one, "alice")
        bob, _ = await member(two, "bob")
        ack = await answer(alice, "hi", id="1")
        assert ack["offset"] == 1
        published = await apublish(redis_server.url, ROOM, "deploy done", settings=SETTINGS)
        assert published == Published(ROOM, published.epoch, 2, True)
        for client in (alice, bob):
            while (frame := await client.frame())["type"] != "msg" or frame["offset"] < 2:
                assert frame["type"] in ("msg", "presence"), frame
            assert frame["offset"] == 2
            shown = (frame["text"], frame["user"], frame["uid"], frame["guest"])
            assert shown == ("deploy done", "system", "system", False)
            assert frame.get("id") is None  # no key: no say id


async def test_the_same_key_twice_publishes_once_and_apart_from_say_ids(redis_server: RedisServer) -> None:
    async with started(redis_server.url) as (app, _):
        alice, _ = await member(app, "alice")
        await alice.request("presence", room=ROOM)
        _, members = await alice.until("members")
        uid = members["members"][0]["uid"]
        assert (await answer(alice, "said", id="k"))["offset"] == 1
        async with Publisher(redis_server.url, settings=SETTINGS) as publisher:
            first = await publisher.apublish(ROOM, "as alice", user="alice", uid=uid, idempotency_key="k")
            again = await publisher.apublish(ROOM, "as alice", user="alice", uid=uid, idempotency_key="k")
            system = await publisher.apublish(ROOM, "as system", idempotency_key="k")
            system_again = await publisher.apublish(ROOM, "as system, again", idempotency_key="k")
        assert (first.offset, first.new) == (2, True)  # her say id "k" does not hold the key back
        assert (again.offset, again.new) == (2, False)
        assert (system.offset, system.new) == (3, True)  # nor does her key the system's
        assert (system_again.offset, system_again.new) == (3, False)
        # Her say id "k" is still hers: said again, it is not published again.
        passed: list[Frame] = []
        assert (await answer(alice, "said", id="k", into=passed))["offset"] == 1
        texts = [
            (frame["offset"], frame["text"], frame["uid"], frame["id"]) for frame in passed if frame["type"] == "msg"
        ]
        assert texts == [(2, "as alice", uid, say_id_of("k")), (3, "as system", "system", say_id_of("k"))]


async def test_a_new_room_is_made_within_max_rooms(redis_server: RedisServer) -> None:
    bounded = Settings(rate_per_second=0, presence_interval=0, max_rooms=1)
    async with started(redis_server.url, max_rooms=1) as (app, _):
        alice, _ = await member(app, "alice")  # the one room, with a member: no other may be made
        with pytest.raises(RoomLimit):
            await apublish(redis_server.url, "other", "refused", settings=bounded)
        await alice.request("leave", room=ROOM)
        await alice.until("left")
        # lobby is empty now (with no history, forgotten): the new room takes its place.
        made = await apublish(redis_server.url, "other", "made", settings=bounded)
        assert (made.offset, made.new) == (1, True)
        # An existing room is no new room: published to at the cap.
        assert (await apublish(redis_server.url, "other", "again", settings=bounded)).offset == 2


async def test_the_keys_prefix_follows_the_database_and_every_connection_closes(redis_server: RedisServer) -> None:
    url = redis_server.url.removesuffix("/0") + "/3"
    published = await apublish(url, ROOM, "in db 3", settings=SETTINGS)
    assert published.offset == 1
    redis = Redis.from_url(redis_server.url)
    try:
        assert await redis.exists(f"asgi_chat:db0:room:{ROOM}:meta") == 0
        await redis.select(3)
        assert await redis.exists(f"asgi_chat:db3:room:{ROOM}:meta") == 1
        clients = await redis.client_list()
        assert not [client for client in clients if client["name"] == "asgi_chat"], clients
    finally:
        await redis.aclose()


def test_the_url_must_be_redis() -> None:
    with pytest.raises(ValueError, match="ASGI_CHAT_STATE_URL"):
        Publisher("memory://", settings=SETTINGS)


async def test_a_line_keeps_an_empty_room_from_the_idle_sweep_and_a_busy_one_busy(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url)
    try:
        await apublish(redis_server.url, "empty", "one", settings=SETTINGS)
        first = await redis.zscore("asgi_chat:db0:rooms", "empty")
        assert first is not None
        await wait_until(lambda: time.time() * 1000 > first + 1)  # a later millisecond: a later score
        await apublish(redis_server.url, "empty", "two", settings=SETTINGS)
        second = await redis.zscore("asgi_chat:db0:rooms", "empty")
        assert first is not None
        assert second is not None
        assert second > first  # silent since the last line
        async with started(redis_server.url) as (app, _):
            await member(app, "alice")
            busy = await redis.zscore("asgi_chat:db0:rooms", ROOM)  # until the presence deadline
            await apublish(redis_server.url, ROOM, "hi", settings=SETTINGS)
            assert await redis.zscore("asgi_chat:db0:rooms", ROOM) == busy
    finally:
        await redis.aclose()
