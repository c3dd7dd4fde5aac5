"""The chat hub: who is in the chat, and how a line reaches each of them without anyone waiting.

::

    sender's reader ──publish──▶ broker ──▶ hub listener ──_deliver──▶ member.offer
                                                                          │
                     room in the connection's buffer? ──yes──▶ the server's send, finished at once
                                                       └─no──▶ outbox ──▶ writer task ──▶ send

The tutorial broadcasts by awaiting each client's ``send`` in turn, so one client that stops
reading (its TCP buffers full, its ``send`` blocked) stops the chat for everyone. Here
``_deliver`` never waits on a client. For each member it *starts* the server's ``send`` right
away (see eager.py): with room in that connection's buffer, which is the usual case, the send
finishes on the spot, with no task switch. Only a send that would have to wait is handed to a
writer task of that member's own, and later lines queue in that member's bounded outbox behind
it. So a slow client only ever slows itself, until the slow-consumer policy closes it with 1013,
and a chat of idle members holds no tasks but their readers. (The idea of websockets'
``broadcast()``, described in its "broadcast" topic, on the ASGI protocol.)

Ordering: ``_deliver`` is synchronous, a member with a writer queues every later line behind it,
and the outbox is first-in first-out; so every member sees one sender's lines in the order the
broker delivered them, which is publishing order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Final

from asgiref.typing import WebSocketSendEvent

from . import eager
from .brokers import Broker
from .eager import IDLE
from .errors import CloseCode, Disconnected, Refusal, TryAgainLater
from .metrics import Metrics
from .session import Session, State
from .settings import Settings

logger = logging.getLogger("asgi_chat")

CHANNEL: Final = "asgi_chat"
OPEN: Final = State.OPEN  # looked up once per recipient of every line


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

    def overflow(self, waiting: int, waiting_bytes: int, size: int) -> str | None:
        """Why one more message of ``size`` bytes may not join ``waiting`` ones, if it may not."""
        if waiting >= self.max_messages or waiting_bytes + size > self.max_bytes:
            return f"slow consumer: {waiting} messages ({waiting_bytes} bytes) already waiting"
        return None

    def stuck(self, started: float | None, now: float) -> str | None:
        """Why a send that began at ``started`` (None: no send waits) has waited too long, if it has."""
        if self.send_timeout and started is not None and now - started > self.send_timeout:
            return f"slow consumer: a send blocked for more than {self.send_timeout:g} s"
        return None


class Member:
    """One chat connection, as the hub sees it: where its lines go, and what is still waiting."""

    __slots__ = (
        "_reader",
        "_ready",
        "_send",
        "_stepper",
        "_writer",
        "client_id",
        "ended",
        "hub",
        "metrics",
        "outbox",
        "queued_bytes",
        "send_started",
        "session",
    )

    def __init__(self, hub: Hub, session: Session, client_id: int) -> None:
        self.hub = hub
        self.metrics = hub.metrics
        self.session = session
        self.client_id = client_id
        # Lines waiting behind a send that could not finish at once; made the first time it is needed.
        self.outbox: deque[Outgoing] | None = None
        self.queued_bytes = 0
        self.send_started: float | None = None  # when the send now waiting began; None: none waits
        self.ended: Refusal | Disconnected | None = None  # why the hub is ending this member, if it is
        # The server's send itself: the hub's sends are data messages to an open session, which
        # the session's state machine would only pass through, and this path runs once per recipient.
        self._send = session.asgi_send
        self._stepper: eager.Stepper | None = None  # made when the first line comes
        # The stepper's step while a line can go out at once (offer's fast path). None before the
        # first line, from a send that had to wait until the first line after its writer is done,
        # and once the member has ended: offer then takes the long way (_offer_otherwise).
        self._ready: Callable[[WebSocketSendEvent], Any] | None = None
        self._reader: asyncio.Task[Any] | None = None  # the task inside `async with member`
        self._writer: asyncio.Task[None] | None = None  # exists only while a send has to wait

    def send(self, text: str) -> None:
        """A line for this member alone (``You wrote: ...``); never waits."""
        self.offer(outgoing(text))

    def offer(self, message: Outgoing) -> None:
        """Send ``message`` now if the connection has room, else queue it; never waits.

        This runs once per recipient of every line, so the usual case (nothing waiting, the
        session open) is one check and the send: every object touched here costs, a thousand
        times per line.
        """
        step = self._ready
        if step is None or self.session.state is not OPEN:
            self._offer_otherwise(message)
            return
        try:
            waiting_on = step(message.event)
        except Exception as error:  # one member's failure must not end the fan-out
            self._failed(error)
            return
        if waiting_on is IDLE:
            self.metrics.messages_delivered += 1
        else:
            self._wait_for_room(waiting_on)

    def _offer_otherwise(self, message: Outgoing) -> None:
        """offer, when a line cannot simply go out: the first line, a writer waiting, the end."""
        if self.ended is not None or self.session.state is not OPEN:
            return
        if self._writer is not None:  # a send is waiting for room: queue behind it
            self._enqueue(message)
            return
        if self._stepper is None:  # the first line for this member
            self._stepper = eager.Stepper(self._send)
        self._ready = self._stepper.step
        self.offer(message)

    def _wait_for_room(self, waiting_on: Any) -> None:
        """The connection's buffer is full. A writer of this member's own finishes this send when
        there is room, then sends whatever queued behind it, then ends."""
        assert self._stepper is not None
        self._ready = None  # the lines that follow queue behind this one
        self.send_started = asyncio.get_running_loop().time()
        self._writer = asyncio.create_task(self._write(self._stepper.rest(waiting_on)))

    def _enqueue(self, message: Outgoing) -> None:
        if self.outbox is None:
            self.outbox = deque()
        reason = self.hub.policy.overflow(len(self.outbox), self.queued_bytes, message.size)
        if reason is not None:
            self.hub.drop(self, TryAgainLater(reason))
            return
        self.outbox.append(message)
        self.queued_bytes += message.size
        if len(self.outbox) > self.metrics.outbox_depth_max:
            self.metrics.outbox_depth_max = len(self.outbox)

    async def _write(self, rest: Awaitable[None]) -> None:
        loop, metrics = asyncio.get_running_loop(), self.metrics
        try:
            await rest
            metrics.messages_delivered += 1
            while self.outbox:
                message = self.outbox.popleft()
                self.queued_bytes -= message.size
                self.send_started = loop.time()
                await self._send(message.event)
                metrics.messages_delivered += 1
        except Exception as error:  # as in offer
            self._failed(error)
        finally:
            # No await between the empty outbox above and this: the next offer sends at once.
            self.send_started = None
            self._writer = None  # the next offer takes the fast path again (_offer_otherwise)

    def _failed(self, error: Exception) -> None:
        """A send raised: this member is done, and nobody else is affected.

        ``OSError`` (ASGI 2.4) and ``RuntimeError`` (uvicorn's legacy implementation) mean the
        peer is gone, as in :meth:`Session._transmit`; anything else is the server's bug, logged.
        """
        if not isinstance(error, OSError | RuntimeError):
            logger.warning("client #%d: the server's send raised %r", self.client_id, error)
        self.end(Disconnected(CloseCode.ABNORMAL))

    async def __aenter__(self) -> Member:
        """Join the chat. The task that enters is this member's reader: the hub may cancel it."""
        self._reader = asyncio.current_task()
        self.hub.add(self)
        return self

    async def __aexit__(self, error_type: type[BaseException] | None, error: object, traceback: object) -> None:
        """Leave the chat (announced to the others), and explain the hub's own cancellation.

        end() cancels the reader: a stalled client sends nothing, not even a close, so its
        receive() might never return. That cancellation is ours to absorb, and to replace with the
        reason (:class:`TryAgainLater`, :class:`Disconnected`); any other, the server giving up
        on the app, goes on. Task.uncancel says whose it was.
        """
        reader, self._reader = self._reader, None
        # end() cancelled the reader if it set `ended` while we were in the block; uncancel()
        # returns how many cancellations remain, so anything above 0 is someone else's.
        ours = error_type is asyncio.CancelledError and self.ended is not None
        if ours and reader is not None and reader.uncancel() > 0:
            ours = False
        await self.hub.remove(self)
        if ours and self.ended is not None:
            raise self.ended from None

    def end(self, reason: Refusal | Disconnected) -> None:
        """Stop serving this member: nothing more is sent, and its reader stops waiting."""
        if self.ended is not None:
            return
        self.ended = reason
        self._ready = None
        self.discard_outbox()
        if self._reader is not None:
            self._reader.cancel()

    def discard_outbox(self) -> None:
        """Drop what is queued and stop the writer, if there is one."""
        if self.outbox is not None:
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
            await _cancel(self._watchdog)
        await self._resources.aclose()
        self._started = False

    # --- membership -----------------------------------------------------------------------

    def member(self, session: Session, client_id: int) -> Member:
        """``async with hub.member(session, client_id):`` is being in the chat."""
        return Member(self, session, client_id)

    def add(self, member: Member) -> None:
        self._members[member] = None
        self._snapshot = None
        self._ids[member.client_id] += 1
        self._ensure_watchdog()

    async def remove(self, member: Member) -> None:
        """Remove ``member``, stop its writer, and tell the others it has left (see _announces)."""
        del self._members[member]
        self._snapshot = None
        self._ids[member.client_id] -= 1
        member.discard_outbox()
        if self._announces(member):
            await self.broadcast(f"Client #{member.client_id} left the chat")

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

    def _deliver(self, text: str) -> None:
        # No await in here: membership cannot change while this loop runs, and it iterates an
        # immutable snapshot anyway, so a join or leave during a delivery is always safe.
        message = outgoing(text)
        for member in self.members:
            member.offer(message)

    # --- the slow-consumer policy's enforcement -------------------------------------------

    def drop(self, member: Member, reason: TryAgainLater) -> None:
        """Close a slow consumer with 1013: counted and logged once, then ended like any member."""
        if member.ended is not None:
            return
        self.metrics.slow_consumer_disconnects += 1
        logger.warning("client #%d dropped: %s", member.client_id, reason.reason)
        member.end(reason)

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
                reason = self.policy.stuck(member.send_started, now)
                if reason is not None:
                    self.drop(member, TryAgainLater(reason))


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has finished, so no task outlives the hub."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
