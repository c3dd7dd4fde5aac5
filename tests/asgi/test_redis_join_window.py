"""A live join on Redis gets no message its window already holds (issue 18, item 9).

With three senders bursting, a client that joined live got ``joined`` offset 133, then msg 132
and 133: in a process whose feed for the room already runs (another member here), the joiner's
window held messages that the feed had yet to hand over, still on their way through pub/sub, and
the joiner was live by the time they came. The store now returns the window only once the feed
has handed over everything it holds (stores/redis.py's ``window``): into the joiner's buffer,
where rooms.py drops what the window holds.

Two apps on one real redis-server stand for two processes. Process a's pub/sub delivery is held
back (its store's ``received`` waits on an event), so a line is published and in the window, but
not yet delivered, when a second member joins a live; then it is let through.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from asgi_chat.engine.stores import lua
from asgi_chat.engine.stores.redis import RedisStore
from tests.asgi.test_rooms_redis import answer, member, next_msg_is, read_until, started
from tests.redis_support import RedisServer
from tests.rooms_support import Frame

pytestmark = pytest.mark.redis


def hold_pubsub(monkeypatch: pytest.MonkeyPatch, store: RedisStore) -> asyncio.Event:
    """From now on ``store`` is handed what is published only once the event is set."""
    let_through = asyncio.Event()
    received = store.received

    async def held(channel: str, data: bytes) -> None:
        await let_through.wait()
        await received(channel, data)

    monkeypatch.setattr(store, "received", held)
    return let_through


def after_window_read(monkeypatch: pytest.MonkeyPatch, store: RedisStore, then: asyncio.Event) -> None:
    """Set ``then`` as soon as Redis has answered ``store``'s next WINDOW script (lua.py)."""
    window = hashlib.sha1(lua.WINDOW.encode()).hexdigest()
    client = store.link.client
    evalsha = client.evalsha

    async def evalsha_then(sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        reply = await evalsha(sha, numkeys, *keys_and_args)
        if sha == window:
            then.set()
        return reply

    monkeypatch.setattr(client, "evalsha", evalsha_then)


def offsets(frames: list[Frame]) -> list[int]:
    return [frame["offset"] for frame in frames if frame["type"] == "msg"]


async def test_a_line_still_on_its_way_when_a_second_member_joins_reaches_it_in_its_window_only(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with started(redis_server.url) as (a, store_a), started(redis_server.url) as (b, _):
        first, _ = await member(a, "first")  # a's feed for the room runs from now on
        writer, _ = await member(b, "writer")
        let_through = hold_pubsub(monkeypatch, store_a)
        after_window_read(monkeypatch, store_a, let_through)  # the line is let through only then
        assert (await answer(writer, "one"))["offset"] == 1  # published; a has not handed it over

        loop = asyncio.get_running_loop()
        started_at = loop.time()
        second, joined = await member(a, "second")
        assert joined["offset"] == 1  # its window holds line 1...
        assert loop.time() - started_at < store_a.link.timing.open_timeout  # pub/sub brought it
        assert (await answer(writer, "two"))["offset"] == 2
        assert offsets(await read_until(second, "two")) == [2]  # ...so it is not sent again, live
        assert offsets(await read_until(first, "two")) == [1, 2]  # the member before: each once
        assert (await answer(writer, "three"))["offset"] == 3
        await next_msg_is(second, 3, "three")
        await next_msg_is(first, 3, "three")


async def test_with_pubsub_stalled_the_join_takes_what_its_window_holds_from_the_stream(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pub/sub stalls longer than the link's open_timeout: the join does not wait for ever, the
    # feed takes line 1 from the room's stream, and the copy that comes at last is dropped.
    async with started(redis_server.url) as (a, store_a), started(redis_server.url) as (b, _):
        first, _ = await member(a, "first")
        writer, _ = await member(b, "writer")
        let_through = hold_pubsub(monkeypatch, store_a)
        assert (await answer(writer, "one"))["offset"] == 1

        second, joined = await member(a, "second")
        assert joined["offset"] == 1
        let_through.set()  # line 1's pub/sub copy, at last
        assert (await answer(writer, "two"))["offset"] == 2
        assert offsets(await read_until(second, "two")) == [2]
        assert offsets(await read_until(first, "two")) == [1, 2]
        assert (await answer(writer, "three"))["offset"] == 3
        await next_msg_is(second, 3, "three")
        await next_msg_is(first, 3, "three")
