"""The Redis broker in one event loop against a real redis-server: two brokers (or two apps) in
one loop stand for two processes, each broker on a link of its own (engine/redis_link.py). Outages
are real: the server is killed, or stopped with SIGSTOP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from asgiref.typing import ASGIReceiveEvent, ASGISendEvent
from redis.asyncio import Redis

from asgi_chat import ChatApp, Settings, create_app
from asgi_chat.asgi.errors import CloseCode
from asgi_chat.engine.brokers import BrokerUnavailable
from asgi_chat.engine.brokers.redis import RedisBroker
from asgi_chat.engine.link_policy import Timing
from asgi_chat.engine.redis_link import RedisLink
from asgi_chat.engine.stores.redis import RedisStore
from tests.helpers import TIMEOUT, WebSocketClient, free_port, wait_until, websocket_scope
from tests.redis_support import RedisServer, running_redis

# Outages noticed and waited out in tenths of a second, so these tests stay quick.
FAST = Timing(timeout=0.5, idle_ping=0.1, backoff_first=0.05, backoff_cap=0.2)
CHANNEL = "chat"

# Guests are on by default, and processes sharing rooms through Redis must sign their tokens alike.
SHARED_SECRET = "one secret for every app of the test deployment"


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[RedisBroker]:
    broker = RedisBroker(RedisLink(url, FAST))
    await broker.open()
    try:
        yield broker
    finally:
        await broker.close()


async def next_of(messages: AsyncIterator[str]) -> str:
    return await asyncio.wait_for(anext(messages), TIMEOUT)


async def next_few(messages: AsyncIterator[str], count: int) -> list[str]:
    return [await next_of(messages) for _ in range(count)]


async def hang_up_on(port: int, count: int) -> None:
    """Listen on ``port`` and close each connection at once, until ``count`` have come."""
    seen = 0
    enough = asyncio.Event()

    def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        writer.close()
        seen += 1
        if seen >= count:
            enough.set()

    async with await asyncio.start_server(hang_up, "127.0.0.1", port):
        await asyncio.wait_for(enough.wait(), TIMEOUT)


# --- delivery ----------------------------------------------------------------------------------


@pytest.mark.redis
async def test_every_subscriber_gets_every_message_once_in_order(redis_server: RedisServer) -> None:
    texts = ["plain", '"quoted", [1, 2]', "line\nbreak", "é ✓ 🙂", ""]  # JSON's own syntax must round-trip
    async with (
        opened(redis_server.url) as a,
        opened(redis_server.url) as b,
        a.subscribe(CHANNEL) as at_a,
        b.subscribe(CHANNEL) as at_b,
    ):
        for text in texts:
            await a.publish(CHANNEL, text)
        assert await next_few(at_b, len(texts)) == texts
        await a.publish("elsewhere", "not for this channel")
        # Published after b heard all of a's: an echo of a's own messages would reach a before it.
        await b.publish(CHANNEL, "from b")
        assert await next_few(at_a, len(texts) + 1) == [*texts, "from b"]
        await a.publish(CHANNEL, "from a")  # likewise for b's echo of "from b"
        assert await next_few(at_b, 2) == ["from b", "from a"]
        assert a.dropped == b.dropped == 0


@pytest.mark.redis
async def test_killed_redis_keeps_local_delivery_and_resubscribes(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "asgi_chat")
    async with (
        opened(redis_server.url) as a,
        opened(redis_server.url) as b,
        a.subscribe(CHANNEL) as at_a,
        b.subscribe(CHANNEL) as at_b,
    ):
        await a.publish(CHANNEL, "before")  # mid-chat: a's connection to Redis is in use
        assert await next_of(at_b) == "before"
        assert await next_of(at_a) == "before"
        redis_server.kill()
        await wait_until(lambda: not a.healthy and not b.healthy)
        for n in range(3):
            await a.publish(CHANNEL, f"during {n}")
        assert await next_few(at_a, 3) == ["during 0", "during 1", "during 2"]
        assert a.dropped == 3
        await hang_up_on(redis_server.port, 8)  # more failed reconnections, no more log lines

        loop = asyncio.get_running_loop()
        restarted = loop.time()
        redis_server.start()
        await wait_until(lambda: a.healthy and b.healthy)
        await a.publish(CHANNEL, "after")
        assert await next_of(at_b) == "after"  # not a late "during": at-most-once, no replay
        assert loop.time() - restarted < 5
        assert await next_of(at_a) == "after"  # and a does not hear itself

    messages = [record.getMessage() for record in caplog.records]
    assert sum(m.startswith("Redis down") for m in messages) == 2, messages  # once per link: a process each
    assert sum(m.startswith("Redis up again") for m in messages) == 2, messages


async def pings_served(client: Redis, count: int) -> None:
    """Wait (bounded) until Redis has answered ``count`` PINGs in all."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            stats = await client.info("commandstats")
            if int(stats.get("cmdstat_ping", {}).get("calls", 0)) >= count:
                return
            await asyncio.sleep(0.05)  # a count in another process: there is no event to wait on


@pytest.mark.redis
async def test_an_idle_subscription_is_kept_by_ping(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "asgi_chat")
    async with opened(redis_server.url) as broker, Redis.from_url(redis_server.url) as observer:
        # Eight pings take 0.8 s of silence, longer than FAST's 0.6 s that would mean a dead peer.
        await pings_served(observer, 8)
        assert broker.healthy
    assert not caplog.records  # no outage, no reconnection


@pytest.mark.redis
async def test_backoff_starts_short_again_after_a_recovery(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "asgi_chat")
    broker = RedisBroker(
        RedisLink(redis_server.url, Timing(timeout=0.5, idle_ping=0.1, backoff_first=0.02, backoff_cap=2))
    )
    await broker.open()
    try:
        redis_server.kill()
        await hang_up_on(redis_server.port, 6)  # six failures: the next wait would be 0.64 to 1.28 s
        redis_server.start()
        await wait_until(lambda: broker.healthy)
        async with Redis.from_url(redis_server.url) as admin:
            # Redis itself drops the subscription, as it does a pub/sub client over its buffer limit.
            await admin.client_kill_filter(_type="pubsub")
        dropped = asyncio.get_running_loop().time()
        await wait_until(lambda: sum("up again" in record.getMessage() for record in caplog.records) == 2)
        assert asyncio.get_running_loop().time() - dropped < 0.3  # a first wait of 0.01 to 0.02 s
    finally:
        await broker.close()


@pytest.mark.redis
async def test_a_silent_redis_is_noticed_by_ping(redis_server: RedisServer) -> None:
    # SIGSTOP keeps the TCP connection open and unanswered: only the listener's PING can tell.
    async with opened(redis_server.url) as broker, broker.subscribe(CHANNEL):
        redis_server.pause()
        await wait_until(lambda: not broker.healthy)
        redis_server.resume()
        await wait_until(lambda: broker.healthy)


@pytest.mark.redis
async def test_a_refused_publish_is_counted_and_logged_once_per_run(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "asgi_chat")

    def refusals() -> int:
        return sum("PUBLISH failed" in record.getMessage() for record in caplog.records)

    async with Redis.from_url(redis_server.url) as admin:
        # A user that may subscribe but not publish: Redis answers each PUBLISH with NOPERM.
        await admin.acl_setuser(
            "muted", enabled=True, passwords=["+pw"], channels=["*"], commands=["+@all", "-publish"]
        )
        muted_url = f"redis://muted:pw@127.0.0.1:{redis_server.port}/0"
        async with opened(muted_url) as muted, opened(redis_server.url) as other, other.subscribe(CHANNEL) as at_other:
            for n in range(3):
                await muted.publish(CHANNEL, f"refused {n}")
            await wait_until(lambda: muted.dropped == 3)
            assert muted.healthy  # its subscription is fine: Redis is up
            assert refusals() == 1
            await admin.acl_setuser("muted", commands=["+publish"])
            await muted.publish(CHANNEL, "allowed")
            assert await next_of(at_other) == "allowed"
            await admin.acl_setuser("muted", commands=["-publish"])
            await muted.publish(CHANNEL, "refused again")
            await wait_until(lambda: muted.dropped == 4)
            assert refusals() == 2  # a new run of failures after a success


@pytest.mark.redis
async def test_copies_queued_before_an_outage_is_noticed_are_dropped(redis_server: RedisServer) -> None:
    async with opened(redis_server.url) as a, opened(redis_server.url) as b, b.subscribe(CHANNEL) as at_b:
        redis_server.pause()  # nothing answers: the first PUBLISH waits out its timeout, the rest queue
        for n in range(20):
            await a.publish(CHANNEL, f"stale {n}")
        # Once the outage is noticed the queue is dropped at once, not one timeout per message.
        await wait_until(lambda: a.dropped == 20)
        redis_server.resume()
        await wait_until(lambda: a.healthy and b.healthy)
        await a.publish(CHANNEL, "after")
        texts = [await next_of(at_b)]
        while texts[-1] != "after":
            texts.append(await next_of(at_b))
        # Only the PUBLISH already written when Redis stopped may still get through.
        assert set(texts[:-1]) <= {"stale 0"}


@pytest.mark.redis
async def test_a_full_queue_drops_cross_process_copies(redis_server: RedisServer) -> None:
    async with (
        opened(redis_server.url) as a,
        opened(redis_server.url) as b,
        b.subscribe(CHANNEL) as at_b,
    ):
        # Nothing here awaits anything that blocks, so a's sender task cannot run meanwhile:
        # its queue (1024) fills and the rest are dropped instead of making publish() wait.
        texts = [str(n) for n in range(1030)]
        for text in texts:
            await a.publish(CHANNEL, text)
        assert a.dropped == 6
        assert await next_few(at_b, 1024) == texts[:1024]
        await a.publish(CHANNEL, "end")
        assert await next_of(at_b) == "end"  # the dropped six never follow


# --- opening -----------------------------------------------------------------------------------


async def test_unreachable_redis_names_the_url_without_password() -> None:
    port = free_port()  # nothing listens there
    broker = RedisBroker(RedisLink(f"redis://:s3cret@127.0.0.1:{port}/0", FAST))
    with pytest.raises(BrokerUnavailable) as raised:
        await broker.open()
    message = str(raised.value)
    assert f"redis://:***@127.0.0.1:{port}/0" in message
    assert f"is redis-server running and reachable at 127.0.0.1:{port}?" in message
    assert "s3cret" not in message
    assert not broker.healthy
    assert asyncio.all_tasks() == {asyncio.current_task()}  # the failed open left nothing running


@pytest.mark.redis
async def test_wrong_password_says_to_check_it(tmp_path: Path) -> None:
    with running_redis(tmp_path, password="right") as server:
        broker = RedisBroker(RedisLink(server.url.replace(":right@", ":wrong@"), FAST))
        with pytest.raises(BrokerUnavailable) as raised:
            await broker.open()
    message = str(raised.value)
    assert "check the user name and password in ASGI_CHAT_STATE_URL" in message
    assert "wrong" not in message.replace("WRONGPASS", "")


@pytest.mark.redis
async def test_rediss_with_a_password(tmp_path: Path) -> None:
    with running_redis(tmp_path, password="s3cret", tls=True) as server:
        assert server.url.startswith("rediss://:s3cret@")
        async with opened(server.url) as a, opened(server.url) as b, b.subscribe(CHANNEL) as at_b:
            await a.publish(CHANNEL, "over TLS")
            assert await next_of(at_b) == "over TLS"


async def test_invalid_url_is_refused_with_the_password_hidden() -> None:
    # Refused as the link is made, so by create_app: `python -m asgi_chat` says so before it starts.
    with pytest.raises(ValueError, match=r"ASGI_CHAT_STATE_URL=redis://:\*\*\*@127.0.0.1:notaport/0"):
        RedisLink("redis://:s3cret@127.0.0.1:notaport/0", FAST)


# --- two apps, one chat ------------------------------------------------------------------------


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[ChatApp]:
    link = RedisLink(settings.state_url, FAST)  # one per app, as create_app makes it, with quick timing
    app = create_app(settings, broker=RedisBroker(link), store=RedisStore(link, settings))
    await app.startup()
    try:
        yield app
    finally:
        await app.shutdown()


@pytest.mark.redis
async def test_two_apps_share_one_chat(redis_server: RedisServer) -> None:
    settings = Settings(secret=SHARED_SECRET, state_url=redis_server.url)
    async with started(settings) as app_a, started(settings) as app_b:
        one, two = WebSocketClient(app_a, "/ws/1"), WebSocketClient(app_b, "/ws/2")
        await one.accept()
        await two.accept()
        await one.send("hi")
        assert await one.receive_many(2) == ["You wrote: hi", "Client #1 says: hi"]
        assert await two.receive() == "Client #1 says: hi"
        await one.disconnect()
        # Next for two: the leave, with no "You wrote: hi" in between (it stays with its sender).
        assert await two.receive() == "Client #1 left the chat"
        await two.disconnect()


class StuckClient:
    """A chat client whose data sends never return: it stopped reading."""

    def __init__(self, app: ChatApp, client_id: int) -> None:
        self.inbox: asyncio.Queue[ASGIReceiveEvent] = asyncio.Queue()
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.close_code: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(app(websocket_scope(f"/ws/{client_id}"), self.inbox.get, self.send))

    async def send(self, message: ASGISendEvent) -> None:
        if message["type"] == "websocket.send":
            await asyncio.Event().wait()  # never set
        elif message["type"] == "websocket.close":
            self.close_code.set_result(message.get("code", 1000))


@pytest.mark.redis
async def test_messages_from_redis_meet_the_slow_consumer_policy(redis_server: RedisServer) -> None:
    async with (
        started(
            Settings(secret=SHARED_SECRET, state_url=redis_server.url, outbox_max_messages=2, send_timeout=0)
        ) as app_a,
        started(Settings(secret=SHARED_SECRET, state_url=redis_server.url)) as app_b,
    ):
        stuck = StuckClient(app_a, 1)
        await wait_until(lambda: len(app_a.ctx.hub.members) == 1)
        talker = WebSocketClient(app_b, "/ws/2")
        await talker.accept()
        for n in range(4):  # one blocked in send, two queued, the fourth overflows
            await talker.send(f"line {n}")
        assert await asyncio.wait_for(stuck.close_code, TIMEOUT) == CloseCode.TRY_AGAIN_LATER
        assert app_a.ctx.metrics.slow_consumer_disconnects == 1
        await asyncio.wait_for(stuck.task, TIMEOUT)
        await talker.disconnect()
