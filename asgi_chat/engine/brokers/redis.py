"""The Redis broker: one chat across every process and host that shares a Redis server.

::

    publish ─┬─▶ MemoryBroker ──▶ this process's subscribers, at once
             └─▶ bounded queue ──▶ sender task ──PUBLISH──▶ Redis
                                                              │
    every other process: listener task ◀──────────────────────┘ ──▶ its MemoryBroker

Local delivery never depends on Redis: :meth:`RedisBroker.publish` hands the message to this
process's subscribers itself, and puts the copy for other processes on a bounded queue that one
sender task empties, so a publisher never waits on Redis and one publisher's messages reach Redis
in order. Each copy carries this process's random id; the listener skips its own, so every
subscriber gets every message once.

While Redis is unreachable the cross-process copies are dropped and counted (``dropped``): no
replay after recovery, so delivery across processes is at-most-once during an outage. The
listener notices the outage (a closed connection, or no reply to a PING), logs it once, marks
the broker unhealthy, and reconnects with capped, jittered exponential backoff; the first
subscription confirmed afterwards marks it healthy again and is logged once.

All processes of one deployment use one Redis channel per database number: Redis pub/sub
ignores the database, so without the number two chats configured as ``/0`` and ``/1`` of the
same server would hear each other. The logical channel travels inside each message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, AuthorizationError, RedisError

from . import BrokerUnavailable
from .memory import MemoryBroker
from .wire import Envelope, backoff_delay, describe, frame, redact_url, unframe

logger = logging.getLogger("asgi_chat")

# Cross-process copies waiting for the sender task. Full means Redis is slower than the chat:
# a copy that does not fit is dropped (and counted) rather than making its sender wait.
QUEUE_SIZE: Final = 1024


@dataclass(frozen=True, slots=True)
class Timing:
    """How long the broker waits, in seconds. Tests shorten them; the defaults suit a LAN."""

    timeout: float = 2.0  # to connect, and for each reply (a PING's included)
    idle_ping: float = 1.0  # a subscription this long without traffic is PINGed to prove it alive
    backoff_first: float = 0.1  # the first wait before reconnecting; it doubles up to backoff_cap,
    backoff_cap: float = 2.0  # so a subscription is back within about 2 s of Redis returning

    @property
    def open_timeout(self) -> float:
        # Connecting, the handshake, and the SUBSCRIBE reply, each bounded by ``timeout``.
        return 3 * self.timeout


async def cancel_all(tasks: tuple[asyncio.Task[None], ...]) -> None:
    """Cancel ``tasks`` and wait for them to end, cancelling again any that carried on.

    One cancellation may not be enough: redis-py writes through ``asyncio.wait_for``, which on
    Python 3.11 swallows a cancellation that arrives as the write completes (bpo-42130, fixed in 3.12).
    """
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.1)


def redis_client(url: str, timing: Timing) -> Redis:
    """A client for ``url`` with the broker's timeouts; a URL it cannot use is a ValueError."""
    try:
        return Redis.from_url(
            url,
            socket_connect_timeout=timing.timeout,
            socket_timeout=timing.timeout,
            # No retries inside redis-py: a retried PUBLISH (or append) may be a duplicate, and
            # the listener owns reconnection, so that backoff and logging happen in one place.
            retry=Retry(NoBackoff(), 0),
            client_name="asgi_chat",  # how it shows in CLIENT LIST
        )
    except ValueError as exc:
        expected = "redis://[[user]:password@]host[:port][/db]"
        raise ValueError(f"ASGI_CHAT_BROKER_URL={redact_url(url)}: {exc}; expected {expected}") from None


# --- the broker --------------------------------------------------------------------------------


class RedisBroker:
    def __init__(self, url: str, timing: Timing = Timing()) -> None:
        self.url = url
        self.shown_url = redact_url(url)
        self.timing = timing
        self.origin = secrets.token_hex(8)  # this process, in every message it sends
        self.dropped = 0  # cross-process copies not sent: queue full, Redis down, PUBLISH failed
        self._local = MemoryBroker()
        self._healthy = False
        self._session = 0  # counts confirmed subscriptions: a new one means Redis came back
        self._last_error: BaseException | None = None
        self._settled = asyncio.Event()  # the first connection attempt has succeeded or failed
        self._queue: asyncio.Queue[bytes] | None = None
        self._clients: tuple[Redis, ...] = ()
        self._tasks: tuple[asyncio.Task[None], ...] = ()
        self._publish_failing = False

    @property
    def healthy(self) -> bool:
        return self._healthy

    # --- life cycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Subscribe, and wait (bounded) for the subscription to be confirmed; else raise."""
        if self._tasks:
            return
        publisher, subscriber = self._client(), self._client()
        self._clients = (publisher, subscriber)
        self._session, self._publish_failing = 0, False  # as new, should it be opened again
        self._queue = asyncio.Queue(QUEUE_SIZE)
        self._settled = asyncio.Event()  # made here, in the loop that will wait on it
        self._tasks = (
            asyncio.create_task(self._listen(subscriber), name="asgi_chat redis listener"),
            asyncio.create_task(self._send(publisher, self._queue), name="asgi_chat redis sender"),
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timing.open_timeout):
                await self._settled.wait()
        if not self._healthy:
            error = self._unavailable()
            await self.close()
            raise error
        logger.info("redis broker: subscribed to %s at %s", self._channel(subscriber), self.shown_url)

    async def close(self) -> None:
        await cancel_all(self._tasks)
        for client in self._clients:
            await client.aclose()
        self._tasks, self._clients, self._queue = (), (), None
        self._healthy = False

    def _client(self) -> Redis:
        return redis_client(self.url, self.timing)

    def _unavailable(self) -> BrokerUnavailable:
        error = self._last_error
        if isinstance(error, AuthenticationError | AuthorizationError):
            advice = "check the user name and password in ASGI_CHAT_BROKER_URL"
        else:
            options = self._clients[0].connection_pool.connection_kwargs if self._clients else {}
            where = f"{options.get('host', '?')}:{options.get('port', '?')}"
            advice = f"is redis-server running and reachable at {where}? check ASGI_CHAT_BROKER_URL"
        reason = describe(error) if error is not None else f"no answer in {self.timing.open_timeout:g} s"
        return BrokerUnavailable(f"cannot use Redis at {self.shown_url} ({reason}): {advice}")

    # --- messages -----------------------------------------------------------------------------

    async def publish(self, channel: str, message: str) -> None:
        await self._local.publish(channel, message)
        if self._queue is None:  # not open
            self.dropped += 1
            return
        try:
            self._queue.put_nowait(frame(Envelope(self.origin, channel, message)))
        except asyncio.QueueFull:
            self.dropped += 1

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[str]]:
        # Local only: the listener follows Redis for the whole process, whoever subscribes.
        return self._local.subscribe(channel)

    @staticmethod
    def _channel(client: Redis) -> str:
        return f"asgi_chat:db{client.connection_pool.connection_kwargs.get('db', 0)}"

    async def _send(self, publisher: Redis, queue: asyncio.Queue[bytes]) -> None:
        """Move the queue to Redis, one PUBLISH at a time, so one publisher's order holds."""
        channel, session = self._channel(publisher), self._session
        while True:
            payload = await queue.get()
            if not self._healthy:
                # Queued before the outage was noticed: drop it now rather than wait out a
                # timeout per message, and rather than send it long after its time.
                self.dropped += 1
                continue
            if session != self._session:
                # Redis came back: a connection from before the outage would fail its first
                # command, and a retry could duplicate the message, so start afresh.
                await publisher.connection_pool.disconnect()
                session = self._session
            try:
                await publisher.publish(channel, payload)
            except (RedisError, OSError) as exc:
                self.dropped += 1
                self._publish_failed(exc)
            else:
                self._publish_failing = False

    def _publish_failed(self, error: BaseException) -> None:
        # Once per run of failures, and not while the listener has already reported an outage.
        if self._healthy and not self._publish_failing:
            logger.warning("redis broker: PUBLISH failed (%s); messages stay in this process", describe(error))
        self._publish_failing = True

    # --- the listener -------------------------------------------------------------------------

    async def _listen(self, subscriber: Redis) -> None:
        """Follow the Redis channel until :meth:`close`; every failure is an outage to wait out."""
        attempt = 0
        while True:
            session = self._session
            try:
                async with subscriber.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel(subscriber))
                    await self._relay(pubsub)
            except Exception as exc:  # nothing but close() may end this loop: see encode/broadcaster
                self._went_down(exc)
            if session != self._session:
                attempt = 0  # that subscription worked: the next outage starts with short waits
            await asyncio.sleep(
                backoff_delay(attempt, self.timing.backoff_first, self.timing.backoff_cap, random.random())
            )
            attempt += 1

    async def _relay(self, pubsub: PubSub) -> None:
        """Hand other processes' messages to this one's subscribers; raise once Redis is silent.

        Silence may be an idle chat or a dead peer that never sent a FIN (a host gone, a stopped
        server). After ``idle_ping`` seconds of it we PING; no reply within ``timeout`` is death.
        """
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            message = await pubsub.get_message(timeout=self.timing.idle_ping)
            now = loop.time()
            if message is not None:
                await self._receive(message)
                heard = loop.time()  # silence counts from here: _receive may have waited on our subscribers
            elif now - heard > self.timing.idle_ping + self.timing.timeout:
                raise TimeoutError(f"no reply from Redis for {now - heard:.1f} s")
            else:
                await pubsub.ping()

    async def _receive(self, message: dict[str, Any]) -> None:
        if message["type"] == "subscribe":
            self._came_up()
        elif message["type"] == "message":
            envelope = unframe(message["data"])
            # None: not an envelope, so something else publishes on our channel; ignore it.
            # Our own origin: delivered to this process's subscribers when it was published.
            if envelope is not None and envelope.origin != self.origin:
                await self._local.publish(envelope.channel, envelope.text)

    def _came_up(self) -> None:
        self._session += 1
        if self._session > 1:  # a subscription after the first only ever follows an outage
            # Logged at the outage's level, so whoever saw the outage sees its end.
            logger.warning("redis broker up again: subscribed at %s", self.shown_url)
        self._healthy = True
        self._settled.set()

    def _went_down(self, error: BaseException) -> None:
        self._last_error = error
        self._settled.set()
        if self._healthy:
            self._healthy = False
            logger.warning(
                "redis broker down: %s; this process's clients still hear each other, reconnecting",
                describe(error),
                exc_info=not isinstance(error, RedisError | OSError),  # a bug, not an outage
            )
