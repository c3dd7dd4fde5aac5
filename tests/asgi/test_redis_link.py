"""One Redis link per process (engine/redis_link.py): the tutorial chat's broker and the rooms'
store share its connections, its one pub/sub listener, its outages and their log lines, against a
real redis-server. Two apps in one event loop stand for two processes.

And what the rooms keep in Redis: a message's fields, not a frame with an offset spliced in;
what an older version wrote (the frame itself) is still read.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis

from asgi_chat import ChatApp, Settings, create_app
from asgi_chat.engine.brokers.redis import RedisBroker
from asgi_chat.engine.link_policy import Timing
from asgi_chat.engine.redis_link import RedisLink
from asgi_chat.engine.stores.redis import RedisStore
from tests.helpers import TIMEOUT, WebSocketClient, wait_until
from tests.redis_support import RedisServer
from tests.rooms_support import RoomsClient, greeted, presence_of

pytestmark = pytest.mark.redis

ROOM = "lobby"
FAST = Timing(timeout=0.5, idle_ping=0.1, backoff_first=0.05, backoff_cap=0.2)  # as in test_redis.py
# With guests on, processes that share rooms share the secret that signs guest tokens.
SECRET = "one secret for every process of the test deployment"


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[ChatApp]:
    app = create_app(settings)
    await app.startup()
    try:
        yield app
    finally:
        await app.shutdown()


def fast_app(url: str) -> ChatApp:
    """An app as create_app builds it for ``url`` (one link for the broker and the store), quick to
    notice outages."""
    settings = Settings(state_url=url, rate_per_second=0, secret=SECRET)
    link = RedisLink(url, FAST)
    return create_app(settings, broker=RedisBroker(link), store=RedisStore(link, settings))


async def ours(admin: Redis) -> list[dict[str, Any]]:
    """The connections the app opened (named asgi_chat), as CLIENT LIST shows them."""
    return [client for client in await admin.client_list() if client["name"] == "asgi_chat"]


def pubsub(clients: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [client for client in clients if "P" in client["flags"]]  # CLIENT LIST's flag P: pub/sub


async def connections_become(admin: Redis, count: int) -> list[dict[str, Any]]:
    """CLIENT LIST (bounded wait) once it shows ``count`` of ours: Redis sees a close a moment later."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            if len(clients := await ours(admin)) == count:
                return clients
            await asyncio.sleep(0.02)  # another process's state: there is no event to wait on


async def chat_and_room(app: ChatApp, client_id: int, user: str) -> tuple[WebSocketClient, RoomsClient]:
    """A member of the tutorial chat and one of ROOM, so both the broker and the store subscribe."""
    chatter = WebSocketClient(app, f"/ws/{client_id}")
    await chatter.accept()
    member = await RoomsClient(app).open(user)
    await member.join(ROOM)
    return chatter, member


# --- one pub/sub connection per process ------------------------------------------------------------


async def test_a_process_opens_one_pubsub_connection_for_the_chat_and_the_rooms(redis_server: RedisServer) -> None:
    settings = Settings(state_url=redis_server.url, rate_per_second=0, secret=SECRET)
    async with Redis.from_url(redis_server.url) as admin:
        async with started(settings) as a, started(settings) as b:
            for app in (a, b):
                broker, store = app.ctx.hub.broker, app.ctx.rooms.store
                assert isinstance(broker, RedisBroker)
                assert isinstance(store, RedisStore)
                assert broker.link is store.link
            clients = [await chat_and_room(app, n, f"user-{n}") for n, app in enumerate((a, b), 1)]
            await clients[0][1].say(ROOM, "hello")
            await clients[0][1].until("ack")  # commands ran: the pool has its connection(s)
            listed = await ours(admin)
            listeners = pubsub(listed)
            # One pub/sub connection per process, following its own channel, the chat's, the room's
            # and the rooms' control channel (a moderator's disconnect, for every process).
            assert len(listeners) == 2, listed
            assert [int(client["sub"]) for client in listeners] == [4, 4], listeners
            assert len(listed) > len(listeners)  # and the command connections beside them
            for chatter, member in clients:
                await chatter.disconnect()
                await member.disconnect()
        await connections_become(admin, 0)  # shutdown closed them all


async def test_the_hub_closing_its_broker_leaves_the_rooms_subscribed(redis_server: RedisServer) -> None:
    """Without lifespan the hub opens its broker with its first member and closes it with its last:
    the link they share stays open for the rooms, on the same pub/sub connection."""
    a, b = fast_app(redis_server.url), fast_app(redis_server.url)  # no startup: everything on demand
    async with Redis.from_url(redis_server.url) as admin:
        (chatter, member), (_, other) = [await chat_and_room(app, n, f"user-{n}") for n, app in enumerate((a, b), 1)]
        await chatter.disconnect()
        await wait_until(lambda: not a.ctx.hub.broker.healthy)  # closed with the hub's last member
        assert a.ctx.rooms.store.healthy
        assert len(pubsub(await ours(admin))) == 2
        await member.say(ROOM, "still here")
        _, ack = await member.until("ack")
        assert ack["offset"] == 1
        assert (await other.expect("msg"))["text"] == "still here"
        chatter = WebSocketClient(a, "/ws/1")  # the hub opens its broker again, on the same link
        await chatter.accept()
        assert a.ctx.hub.broker.healthy
        assert len(pubsub(await ours(admin))) == 2
    for app in (a, b):
        await app.shutdown()


# --- one outage, one link ----------------------------------------------------------------------


async def test_an_outage_is_noticed_and_logged_once_per_process_for_both(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "asgi_chat")
    a, b = fast_app(redis_server.url), fast_app(redis_server.url)
    for app in (a, b):
        await app.startup()
    try:
        (chatter_a, member_a), (chatter_b, member_b) = [
            await chat_and_room(app, n, f"user-{n}") for n, app in enumerate((a, b), 1)
        ]
        assert await member_a.expect("presence") == presence_of(ROOM, join=("user-2",))
        redis_server.kill()
        parts = [(app.ctx.hub.broker, app.ctx.rooms.store) for app in (a, b)]
        await wait_until(lambda: not any(part.healthy for pair in parts for part in pair))
        redis_server.start()
        await wait_until(lambda: all(part.healthy for pair in parts for part in pair))

        await chatter_a.send("after")  # the chat resubscribed ...
        assert await chatter_b.receive() == "Client #1 says: after"
        await member_a.say(ROOM, "after")  # ... and the room, on the same connection
        before, msg = await member_b.until("msg")
        assert msg["text"] == "after"
        # The test's Redis came back empty: a new epoch (and presence announced anew, which may come first).
        assert [frame["reason"] for frame in before if frame["type"] != "presence"] == ["reset"], before
        for client in (chatter_a, chatter_b, member_a, member_b):
            await client.disconnect()
    finally:
        for app in (a, b):
            await app.shutdown()
    messages = [record.getMessage() for record in caplog.records]
    assert sum(m.startswith("Redis down at ") for m in messages) == 2, messages  # one per process, not per user
    assert sum(m.startswith("Redis up again at ") for m in messages) == 2, messages


# --- what a room keeps in Redis ----------------------------------------------------------------


async def test_a_message_is_kept_as_its_fields_and_older_versions_messages_are_still_read(
    redis_server: RedisServer,
) -> None:
    app = fast_app(redis_server.url)
    await app.startup()
    async with Redis.from_url(redis_server.url) as admin:
        try:
            ada, who = await greeted(app, "ada")
            epoch = (await ada.join(ROOM))["epoch"]
            await ada.say(ROOM, 'hello, "world"', id="k")
            msg = await ada.expect("msg")
            await ada.expect("ack")
            assert (msg["uid"], msg["guest"]) == (who["uid"], who["guest"])
            prefix = f"asgi_chat:db0:room:{ROOM}"
            entries: Any = await admin.xrange(f"{prefix}:stream")
            [(entry_id, fields)] = entries
            # The fields, no frame: no room, no offset to splice in (the entry id is the offset).
            assert (entry_id, list(fields)) == (b"1-0", [b"d"])
            body = [msg["ts"], "ada", 'hello, "world"', "k", who["uid"], who["guest"]]
            assert json.loads(fields[b"d"]) == body

            # The version before people appends offset 2 as it did: four fields, its user's name
            # standing for the uid. Read as said by the uid "cy", not a guest, live and replayed.
            four = '[2,"cy","before people",null]'
            assert await admin.hincrby(f"{prefix}:meta", "top", 1) == 2
            await admin.xadd(f"{prefix}:stream", {"d": four}, id="2-0")
            await admin.publish(prefix, f"d {epoch} 2 {four}")
            by_cy = {"type": "msg", "room": ROOM, "offset": 2, "ts": 2, "user": "cy", "uid": "cy", "guest": False}
            assert await ada.frame() == {**by_cy, "text": "before people"}  # live, through the channel

            # An older version appends offset 3 as it did: the frame itself, in field f. Read with
            # the uid and guest flag every msg carries now, its user's name as uid.
            old = f'{{"type":"msg","room":"{ROOM}","offset":3,"ts":1,"user":"bob","text":"from before"}}'
            older = {**json.loads(old), "uid": "bob", "guest": False}
            assert await admin.hincrby(f"{prefix}:meta", "top", 1) == 3
            await admin.xadd(f"{prefix}:stream", {"f": old}, id="3-0")
            await admin.publish(prefix, f"m {epoch} 3 {old}")
            assert await ada.frame() == older  # live, through the channel

            late = await RoomsClient(app).open("late")
            await late.join(ROOM, history=10)  # the window reads every kind of entry
            replayed = await late.frames(3)
            assert replayed == [msg, {**by_cy, "text": "before people"}, older]
            await late.request("history", room=ROOM, before=4, limit=10)  # and so does a page of history
            page = await late.expect("history")
            assert page["messages"] == replayed
            for client in (ada, late):
                await client.disconnect()
        finally:
            await app.shutdown()
