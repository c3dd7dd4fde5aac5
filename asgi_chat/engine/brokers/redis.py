"""The Redis broker: one tutorial chat across every process and host that shares a Redis server.

::

    publish ─┬─▶ MemoryBroker ──▶ this process's subscribers, at once
             └─▶ bounded queue ──▶ sender task ──PUBLISH──▶ Redis
                                                              │
    every other process: its link's listener ◀────────────────┘ ──▶ received ──▶ its MemoryBroker

Local delivery never depends on Redis: :meth:`RedisBroker.publish` hands the message to this
process's subscribers itself, and puts the copy for other processes on a bounded queue that one
sender task empties, so a publisher never waits on Redis and one publisher's messages reach Redis
in order. Each copy carries this broker's random id; what comes back with it is skipped, so every
subscriber gets every message once.

While Redis is unreachable the cross-process copies are dropped and counted (``dropped``): no
replay after recovery, so delivery across processes is at-most-once during an outage. Noticing
the outage, reconnecting and resubscribing, health and the log lines are the process's one
:class:`~asgi_chat.engine.redis_link.RedisLink`'s, which the rooms' store shares.

All processes of one deployment use one Redis channel per database number, ``asgi_chat:db<N>``:
Redis pub/sub ignores the database, so without the number two chats configured as ``/0`` and
``/1`` of the same server would hear each other. The logical channel travels inside each message.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Final

from redis.exceptions import RedisError

from ..link_policy import describe
from ..redis_link import LinkUnavailable, RedisLink, cancel_all
from . import BrokerUnavailable
from .memory import MemoryBroker
from .wire import Envelope, frame, unframe

logger = logging.getLogger("asgi_chat")

# Cross-process copies waiting for the sender task. Full means Redis is slower than the chat:
# a copy that does not fit is dropped (and counted) rather than making its sender wait.
QUEUE_SIZE: Final = 1024


class RedisBroker:
    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.channel = link.prefix  # asgi_chat:db<N>, as ever: processes of an older version hear it too
        self.origin = secrets.token_hex(8)  # this broker, in every message it sends
        self.dropped = 0  # cross-process copies not sent: queue full, Redis down, PUBLISH failed
        self._local = MemoryBroker()
        self._queue: asyncio.Queue[bytes] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._publish_failing = False

    @property
    def healthy(self) -> bool:
        return self._sender is not None and self.link.healthy

    # --- life cycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Subscribe, and wait (bounded) for the subscription to be confirmed; else raise."""
        if self._sender is not None:
            return
        try:
            await self.link.open()
        except LinkUnavailable as error:
            raise BrokerUnavailable(str(error)) from None
        try:
            await self._subscribe()
        except BaseException:
            await self.link.unsubscribe(self.channel)
            await self.link.close()
            raise
        self._publish_failing = False
        self._queue = asyncio.Queue(QUEUE_SIZE)
        self._sender = asyncio.create_task(self._send(self._queue), name="asgi_chat redis sender")
        logger.info("redis broker: subscribed to %s at %s", self.channel, self.link.shown_url)

    async def _subscribe(self) -> None:
        self._subscribed = asyncio.Event()  # made here, in the loop that will wait on it
        try:
            await self.link.subscribe(self.channel, self)
            async with asyncio.timeout(self.link.timing.open_timeout):
                await self._subscribed.wait()
        except (LinkUnavailable, TimeoutError) as error:
            raise BrokerUnavailable(f"cannot subscribe at {self.link.shown_url}: {describe(error)}") from None

    async def close(self) -> None:
        if self._sender is None:
            return
        await cancel_all((self._sender,))
        self._sender, self._queue = None, None
        await self.link.unsubscribe(self.channel)
        await self.link.close()

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
        # Local only: the link follows Redis for the whole process, whoever subscribes here.
        return self._local.subscribe(channel)

    async def _send(self, queue: asyncio.Queue[bytes]) -> None:
        """Move the queue to Redis, one PUBLISH at a time, so one publisher's order holds."""
        while True:
            payload = await queue.get()
            if not self.link.healthy:
                # Queued before the outage was noticed: drop it now rather than wait out a
                # timeout per message, and rather than send it long after its time.
                self.dropped += 1
                continue
            try:
                await self.link.client.publish(self.channel, payload)
            except (RedisError, OSError) as exc:
                self.dropped += 1
                self._publish_failed(exc)
            else:
                self._publish_failing = False

    def _publish_failed(self, error: BaseException) -> None:
        # Once per run of failures, and not while the link has already reported an outage.
        if self.link.healthy and not self._publish_failing:
            logger.warning("redis broker: PUBLISH failed (%s); messages stay in this process", describe(error))
        self._publish_failing = True

    # --- what the link hands on (redis_link.Subscriber) ---------------------------------------

    async def confirmed(self, channel: str, again: bool) -> None:
        self._subscribed.set()  # again or not: what was published during the outage is not replayed

    async def received(self, channel: str, data: bytes) -> None:
        envelope = unframe(data)
        # None: not an envelope, so something else publishes on our channel; ignore it.
        # Our own origin: delivered to this process's subscribers when it was published.
        if envelope is not None and envelope.origin != self.origin:
            await self._local.publish(envelope.channel, envelope.text)
