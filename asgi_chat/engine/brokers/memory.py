"""The default broker: subscribers in this process, each with a bounded queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

# A subscriber this far behind makes publishers wait: back-pressure reaches the sender's socket
# instead of the queue growing without bound. The hub's listener never blocks, so in practice
# the queue only fills while the event loop is busy fanning out.
QUEUE_SIZE = 1024


class MemoryBroker:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[str]]] = {}

    @property
    def healthy(self) -> bool:
        return True

    @property
    def dropped(self) -> int:
        return 0  # there are no other processes to miss a message

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, channel: str, message: str) -> None:
        for queue in tuple(self._subscribers.get(channel, ())):
            await queue.put(message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.setdefault(channel, set()).add(queue)
        try:
            yield _drain(queue)
        finally:
            self._subscribers[channel].discard(queue)
            if not self._subscribers[channel]:
                del self._subscribers[channel]


async def _drain(queue: asyncio.Queue[str]) -> AsyncIterator[str]:
    while True:
        yield await queue.get()
