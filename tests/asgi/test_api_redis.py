"""The HTTP API on the Redis store: two apps in one event loop stand for two workers on one
redis-server (tests/asgi/test_rooms_redis.py's ``started``). A publish through either reaches the
members on both, an idempotency key holds across them, a disconnect closes connections on both."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.asgi.test_api import KEY, call
from tests.asgi.test_rooms_redis import ROOM, member, started
from tests.redis_support import RedisServer

pytestmark = pytest.mark.redis


async def test_a_publish_through_one_worker_reaches_members_on_both(redis_server: RedisServer, tmp_path: Path) -> None:
    keys = tmp_path / "api-keys"
    keys.write_text(KEY + "\n")
    async with (
        started(redis_server.url, api_keys_file=str(keys)) as (a, _),
        started(redis_server.url, api_keys_file=str(keys)) as (b, _),
    ):
        alice, _ = await member(a, "alice")
        bob, _ = await member(b, "bob")
        await alice.expect("presence")
        body = {"text": "to everyone", "idempotency_key": "cron-1"}
        status, _, first = await call(a, "POST", f"/api/v1/rooms/{ROOM}/messages", body)
        assert status == 201
        again = await call(b, "POST", f"/api/v1/rooms/{ROOM}/messages", body)  # a retry, to the other worker
        assert again[:1] == (200,)
        assert again[2] == first
        for client in (alice, bob):
            frame = await client.expect("msg")
            assert (frame["offset"], frame["uid"], frame["text"]) == (first["offset"], "system", "to everyone")
        _, _, page = await call(b, "GET", f"/api/v1/rooms/{ROOM}/messages")
        assert [message["text"] for message in page["messages"]] == ["to everyone"]  # published once
        _, _, people = await call(b, "GET", f"/api/v1/rooms/{ROOM}/presence")
        assert people["count"] == 2
        _, _, held = await call(a, "GET", "/api/v1/rooms")
        assert held == {"rooms": [{"room": ROOM, "members": 2, "top": first["offset"]}], "next": None}
        uid = next(person["uid"] for person in people["members"] if person["user"] == "alice")
        assert (await call(b, "POST", f"/api/v1/users/{uid}/disconnect", {}))[0] == 200
        assert (await alice.closed())[0] == 4403


async def test_a_publish_creates_the_room_for_later_joiners_on_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    keys = tmp_path / "api-keys"
    keys.write_text(KEY + "\n")
    async with started(redis_server.url, api_keys_file=str(keys)) as (a, _):
        status, _, published = await call(a, "POST", "/api/v1/rooms/fresh/messages", {"text": "first words"})
        assert (status, published["offset"]) == (201, 1)
        alice, joined = await member(a, "alice", room="fresh", history=10)
        assert joined["epoch"] == published["epoch"]
        assert (await alice.expect("msg"))["text"] == "first words"
