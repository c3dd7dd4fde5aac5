"""Brokers carry chat messages between everyone in a chat: within one process, or across many.

A broker is anything with the shape of :class:`Broker`. The tutorial chat's hub publishes every chat line to it
and reads every chat line back from one subscription, so with the in-process
:class:`~asgi_chat.engine.brokers.memory.MemoryBroker` a chat is one process, and with
:class:`~asgi_chat.engine.brokers.redis.RedisBroker` it is every process that shares the Redis server.
Which one is chosen by ``ASGI_CHAT_STATE_URL``, in the composition (composition.py), which hands the
Redis broker the same link (engine/redis_link.py) as the rooms' store; Redis is imported only when asked for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class BrokerUnavailable(Exception):
    """The broker cannot be reached; the message says which URL (password hidden) and what to check."""


class Broker(Protocol):
    @property
    def healthy(self) -> bool:
        """False while the broker cannot carry messages between processes (shown in /healthz)."""

    @property
    def dropped(self) -> int:
        """Messages that did not reach other processes since start (shown in /metrics)."""

    async def open(self) -> None:
        """Connect; raise :class:`BrokerUnavailable` with a helpful message when that fails."""

    async def close(self) -> None:
        """Disconnect and stop every background task; idempotent."""

    async def publish(self, channel: str, message: str) -> None:
        """Send ``message`` to every subscriber of ``channel``, this process's included."""

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[str]]:
        """``async with broker.subscribe(ch) as messages: async for m in messages: ...``

        Each subscriber sees each message once, and one publisher's messages in publishing order.
        Leaving the ``async with`` block always unsubscribes.
        """
