"""The chat hub: who is in the chat, and how a line reaches each of them without anyone waiting.

::

    sender's reader ──publish──▶ broker ──▶ hub listener ──_deliver──▶ member.offer ─▶ outbox
                                                                                      │
                                                   server ◀── send ◀── member writer ◀┘

The tutorial broadcasts by awaiting each client's ``send`` in turn, so one client that stops
reading (its TCP buffers full, its ``send`` blocked) stops the chat for everyone. Here
``_deliver`` never awaits: it appends one shared message object to each member's bounded
outbox and returns. Each member has its own writer task that moves its outbox to its own
connection, so a slow client only ever slows itself, until the slow-consumer policy closes it
with 1013. (The same idea as websockets' ``broadcast()``, described in its "broadcast" topic.)

Ordering: ``_deliver`` is synchronous and every outbox is first-in first-out, so every member
sees one sender's lines in the order the broker delivered them, which is publishing order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from asgiref.typing import WebSocketSendEvent

from .brokers import Broker
from .errors import CloseCode, Refusal, TryAgainLater
from .metrics import Metrics
from .session import Session
from .settings import Settings

logger = logging.getLogger("asgi_chat")

CHANNEL: Final = "asgi_chat"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One chat line as every recipient gets it: a single ASGI event shared by all outboxes."""

    event: WebSocketSendEvent
    size: int  # bytes of UTF-8, counted once for the outbox bound


def outgoing(text: str) -> Outgoing:
    return Outgoing({"type": "websocket.send", "text": text, "bytes": None}, len(text.encode()))


class SlowConsumerPolicy:
    """When a client is too far behind to keep: the one place that decides it.

    A member is dropped (close code 1013, "try again later") when its outbox would exceed
    ``max_messages`` or ``max_bytes``, or when one send has been blocked longer than
    ``send_timeout`` seconds. Each limit is off when 0. A dropped member is counted in
    ``slow_consumer_disconnects``, logged once, and announced to the others like any leave.
    """

    def __init__(self, max_messages: int, max_bytes: int, send_timeout: float) -> None:
        self.max_messages = max_messages or float("inf")
        self.max_bytes = max_bytes or float("inf")
        self.send_timeout = send_timeout

    def overflow(self, member: Member, message: Outgoing) -> str | None:
        if len(member.outbox) >= self.max_messages or member.queued_bytes + message.size > self.max_bytes:
            depth, size = len(member.outbox), member.queued_bytes
            return f"slow consumer: {depth} messages ({size} bytes) already waiting"
        return None

    def stuck(self, member: Member, now: float) -> str | None:
        started = member.send_started
        if self.send_timeout and started is not None and now - started > self.send_timeout:
            return f"slow consumer: a send blocked for more than {self.send_timeout:g} s"
        return None


class Member:
    """One chat connection: a bounded outbox and the writer task that empties it."""

    __slots__ = (
        "_wake",
        "_writer",
        "client_id",
        "dropped",
        "hub",
        "outbox",
        "queued_bytes",
        "send_started",
        "session",
    )

    def __init__(self, hub: Hub, session: Session, client_id: int) -> None:
        self.hub = hub
        self.session = session
        self.client_id = client_id
        self.outbox: deque[Outgoing] = deque()
        self.queued_bytes = 0
        self.send_started: float | None = None  # loop time the current send began; None when idle
        self.dropped: Refusal | None = None
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    def send(self, text: str) -> None:
        """Queue a line for this member alone (``You wrote: ...``); never waits."""
        self.offer(outgoing(text))

    def offer(self, message: Outgoing) -> None:
        """Queue a message for this member's writer; never waits. Called once per recipient."""
        if self.dropped is not None:
            return
        reason = self.hub.policy.overflow(self, message)
        if reason is not None:
            self.hub.drop(self, TryAgainLater(reason))
            return
        self.outbox.append(message)
        self.queued_bytes += message.size
        if len(self.outbox) > self.hub.metrics.outbox_depth_max:
            self.hub.metrics.outbox_depth_max = len(self.outbox)
        self._wake.set()

    async def run(self, reader: Coroutine[Any, Any, None]) -> None:
        """Run ``reader`` (the endpoint's receive loop) beside this member's writer until either ends.

        Whichever ends first ends the other: a client that disconnects stops its writer, and a
        writer that is dropped or finds the peer gone stops the reader, which may be waiting in
        ``receive()`` for a message that will never come.
        """
        if self.dropped is not None:
            reader.close()
            raise self.dropped
        read_task = asyncio.create_task(reader)
        self._writer = asyncio.create_task(self._write_loop())
        tasks = (read_task, self._writer)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        if self.dropped is not None:
            raise self.dropped
        for task in tasks:  # the reader's reason first: UnsupportedData, MessageTooBig, Disconnected
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        outbox, send = self.outbox, self.session.send_event
        while True:
            while outbox:
                message = outbox.popleft()
                self.queued_bytes -= message.size
                self.send_started = loop.time()
                await send(message.event)
                self.send_started = None
            self._wake.clear()
            await self._wake.wait()

    def stop_writer(self) -> None:
        self.outbox.clear()
        self.queued_bytes = 0
        if self._writer is not None:
            self._writer.cancel()


class Hub:
    """The chat's membership and its fan-out. One per app; see the module docstring."""

    def __init__(self, settings: Settings, broker: Broker, metrics: Metrics) -> None:
        self.broker = broker
        self.metrics = metrics
        self.policy = SlowConsumerPolicy(settings.outbox_max_messages, settings.outbox_max_bytes, settings.send_timeout)
        self.shutting_down = False
        self._members: dict[Member, None] = {}  # insertion-ordered set
        self._ids: Counter[int] = Counter()  # client id -> its connections in this process
        self._snapshot: tuple[Member, ...] | None = ()  # copy-on-write view for _deliver; None: stale
        self._started = False
        self._start_lock = asyncio.Lock()
        self._resources = AsyncExitStack()
        self._watchdog: asyncio.Task[None] | None = None

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the broker and subscribe to the chat; idempotent, so servers without lifespan
        (and tests that skip it) start the hub on the first join instead."""
        async with self._start_lock:
            if self._started:
                return
            await self.broker.open()
            self._resources.push_async_callback(self.broker.close)
            messages = await self._resources.enter_async_context(self.broker.subscribe(CHANNEL))
            listener = asyncio.create_task(self._listen(messages), name="asgi_chat hub listener")
            self._resources.push_async_callback(_cancel, listener)
            self._started = True

    async def stop(self) -> None:
        self.shutting_down = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        await self._resources.aclose()
        self._started = False

    # --- membership -----------------------------------------------------------------------

    @asynccontextmanager
    async def join(self, session: Session, client_id: int) -> AsyncIterator[Member]:
        """Be a member for the duration of the ``async with``; leaving announces the departure."""
        await self.start()
        member = Member(self, session, client_id)
        self._members[member] = None
        self._snapshot = None
        self._ids[client_id] += 1
        self._ensure_watchdog()
        try:
            yield member
        finally:
            del self._members[member]
            self._snapshot = None
            self._ids[client_id] -= 1
            member.stop_writer()
            if self._announces(member):
                await self.broadcast(f"Client #{client_id} left the chat")

    def _announces(self, member: Member) -> bool:
        # Client ids are chosen by clients, so two connections may share one: a reconnecting page
        # whose old connection the server has not yet seen drop, or a duplicated tab. The id has
        # left only when its last connection (in this process) has.
        if self._ids[member.client_id]:
            return False
        del self._ids[member.client_id]
        # No farewells while the server shuts down: uvicorn closes every WebSocket with 1012
        # ("service restart") before it sends lifespan.shutdown, and nobody is left to tell.
        return not self.shutting_down and member.session.close_code != CloseCode.SERVICE_RESTART

    @property
    def members(self) -> tuple[Member, ...]:
        if self._snapshot is None:
            self._snapshot = tuple(self._members)
        return self._snapshot

    # --- messages -------------------------------------------------------------------------

    async def broadcast(self, text: str) -> None:
        """Send ``text`` to everyone in the chat, in every process the broker reaches."""
        await self.broker.publish(CHANNEL, text)

    async def _listen(self, messages: AsyncIterator[str]) -> None:
        async for text in messages:
            self._deliver(text)
            await asyncio.sleep(0)  # the writers run between two deliveries (see _chat_reader)

    def _deliver(self, text: str) -> None:
        # No await in here: membership cannot change while this loop runs, and it iterates an
        # immutable snapshot anyway, so a join or leave during a delivery is always safe.
        message = outgoing(text)
        for member in self.members:
            member.offer(message)

    # --- the slow-consumer policy's enforcement -------------------------------------------

    def drop(self, member: Member, refusal: Refusal) -> None:
        """Close ``member`` with ``refusal`` (1013 for a slow consumer); counted and logged once."""
        if member.dropped is not None:
            return
        member.dropped = refusal
        if isinstance(refusal, TryAgainLater):
            self.metrics.slow_consumer_disconnects += 1
            logger.warning("client #%d dropped: %s", member.client_id, refusal.reason)
        member.stop_writer()

    def _ensure_watchdog(self) -> None:
        if self.policy.send_timeout and (self._watchdog is None or self._watchdog.done()):
            self._watchdog = asyncio.create_task(self._watch_sends(), name="asgi_chat send watchdog")

    async def _watch_sends(self) -> None:
        """Drop members whose current send has been blocked too long; ends when the chat is empty.

        One periodic sweep for the whole chat instead of a timer per send: arming and cancelling
        a timer for every delivery would cost more than the delivery itself.
        """
        loop = asyncio.get_running_loop()
        period = max(self.policy.send_timeout / 4, 0.01)
        while self._members:
            await asyncio.sleep(period)
            now = loop.time()
            for member in self.members:
                reason = self.policy.stuck(member, now)
                if reason is not None:
                    self.drop(member, TryAgainLater(reason))


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has finished, so no task outlives the hub."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
