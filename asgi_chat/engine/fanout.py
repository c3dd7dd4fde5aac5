"""Fan-out: how one line reaches many connections without anyone waiting on anyone.

::

    chat line ──▶ member.offer(Outgoing) ──READY──▶ session.send_now ──finished──▶ done (the usual case)
                         │                                       └──must wait──▶ writer task: the rest,
                         ├──WAITING──▶ bounded outbox ◀─────────────────────────── then the outbox, in order
                         └──ENDED────▶ ignored

The tutorial broadcasts by awaiting each client's ``send`` in turn, so one client that stops
reading (its TCP buffers full, its ``send`` blocked) stops the chat for everyone. Here a
:class:`Member` never makes the fan-out wait: it *starts* the send through its session
(:meth:`~asgi_chat.asgi.session.Session.send_now`), which finishes it on the spot when the
connection's buffer has room. Only a send that has to wait gets a writer task of that member's
own, and later lines queue in that member's bounded outbox behind it. So a slow client only ever
slows itself, until the :class:`SlowConsumerPolicy` closes it with 1013, and idle members hold no
task but their readers. (The idea of websockets' ``broadcast()``, described in its "broadcast"
topic, on the ASGI protocol.)

Ordering: ``offer`` is synchronous, a member with a writer queues every later line behind it, and
the outbox is first in, first out; so every member sees lines in the order they were offered.

:class:`Fanout` is the engine's registry of members: the one policy, the one watchdog for sends
that stay blocked, and the one place that drops a slow consumer. The tutorial chat's hub and the
rooms of ``asgi-chat.v1`` both deliver through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from dataclasses import dataclass
from typing import Final

from asgiref.typing import WebSocketSendEvent

from ..asgi.errors import Disconnected, Refusal, TryAgainLater
from ..asgi.sending import PendingSend
from ..asgi.session import Session
from ..ops.metrics import Metrics
from .policy import SlowConsumerPolicy

logger = logging.getLogger("asgi_chat")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One line as every recipient gets it: a single ASGI event shared by all outboxes."""

    event: WebSocketSendEvent
    size: int  # bytes of UTF-8, counted once for the outbox bound


def outgoing(text: str) -> Outgoing:
    return Outgoing({"type": "websocket.send", "text": text, "bytes": None}, len(text.encode()))


class Flow(enum.Enum):
    """A member's states: where the next line offered to it goes."""

    READY = "nothing waiting: a line goes out now"
    WAITING = "a send waits for room: lines queue in the outbox"
    ENDED = "dropped, failed or gone: lines are ignored"


# (state, event) -> next state. A line that goes out at once keeps READY (no transition at all).
FLOW: Final[dict[tuple[Flow, str], Flow]] = {
    (Flow.READY, "send waits"): Flow.WAITING,
    (Flow.WAITING, "outbox drained"): Flow.READY,
    (Flow.READY, "end"): Flow.ENDED,
    (Flow.WAITING, "end"): Flow.ENDED,
}

READY: Final = Flow.READY  # looked up once per recipient of every line
WAITING: Final = Flow.WAITING


class Member:
    """One connection as the fan-out sees it: where its lines go, and what is still waiting.

    ``async with fanout.member(session, label) as member:`` is the member's life; the task that
    enters is its reader, which :meth:`end` cancels (a stalled client sends nothing, not even a
    close, so its ``receive()`` might never return).
    """

    __slots__ = (
        "_pending",
        "_reader",
        "_writer",
        "fanout",
        "label",
        "outbox",
        "queued_bytes",
        "reason",
        "send_started",
        "session",
        "state",
    )

    def __init__(self, fanout: Fanout, session: Session, label: str) -> None:
        self.fanout = fanout
        self.session = session
        self.label = label  # who this is in a log line: "client #7", "user 'ada'"
        self.state = Flow.READY
        self.reason: Refusal | Disconnected | None = None  # why it ENDED
        # Lines waiting behind a send that could not finish at once; made the first time it is needed.
        self.outbox: deque[Outgoing] | None = None
        self.queued_bytes = 0
        self.send_started: float | None = None  # when the send now waiting began (WAITING only)
        self._reader: asyncio.Task[object] | None = None
        self._writer: asyncio.Task[None] | None = None  # exists only while WAITING
        self._pending: PendingSend | None = None  # the waiting send, until its writer takes it

    def _enter(self, event: str) -> None:
        self.state = FLOW[(self.state, event)]  # a KeyError here is a bug in this class

    def send(self, text: str) -> None:
        """A line for this member alone (``You wrote: ...``, a reply); never waits."""
        self.offer(outgoing(text))

    def offer(self, message: Outgoing) -> None:
        """Send ``message`` now, queue it behind a waiting send, or ignore it once ended."""
        if self.state is READY:
            try:
                rest = self.session.send_now(message.event)
            except Exception as error:  # one member's failure must not end the fan-out
                self._failed(error)
                return
            if rest is not None:
                self._wait_for_room(rest)
        elif self.state is WAITING:
            self._enqueue(message)

    def backlogged(self) -> bool:
        """Half the outbox the policy allows is taken: a producer that can wait should wait."""
        if self.outbox is None:
            return False
        policy = self.fanout.policy
        return len(self.outbox) * 2 >= policy.max_messages or self.queued_bytes * 2 >= policy.max_bytes

    async def drained(self) -> None:
        """Wait until nothing waits for this member any more (or it ended)."""
        while self.state is WAITING and self._writer is not None:
            await asyncio.wait((self._writer,))

    def _wait_for_room(self, rest: PendingSend) -> None:
        """The connection's buffer is full: a writer task finishes this send when there is room,
        sends whatever queued behind it, and ends."""
        self._enter("send waits")
        self.send_started = asyncio.get_running_loop().time()
        self._pending = rest
        self._writer = asyncio.create_task(self._write(rest))

    def _enqueue(self, message: Outgoing) -> None:
        if self.outbox is None:
            self.outbox = deque()
        reason = self.fanout.policy.overflow(len(self.outbox), self.queued_bytes, message.size)
        if reason is not None:
            self.fanout.drop(self, TryAgainLater(reason))
            return
        self.outbox.append(message)
        self.queued_bytes += message.size
        self.fanout.metrics.outbox_depth_max = max(self.fanout.metrics.outbox_depth_max, len(self.outbox))

    async def _write(self, rest: PendingSend) -> None:
        loop = asyncio.get_running_loop()
        self._pending = None
        try:
            await rest
            while self.outbox:
                message = self.outbox.popleft()
                self.queued_bytes -= message.size
                self.send_started = loop.time()
                await self.session.send_event(message.event)
        except Exception as error:  # as in offer
            self._failed(error)
        finally:
            # No await between the empty outbox above and this: the next offer sends at once.
            self.send_started = None
            self._writer = None
            if self.state is WAITING:
                self._enter("outbox drained")

    def _failed(self, error: Exception) -> None:
        """A send raised: this member is done, and nobody else is affected.

        The session has already turned a gone peer into :class:`Disconnected`; anything else is
        the server's bug, logged.
        """
        if not isinstance(error, Disconnected):
            logger.warning("%s: the server's send raised %r", self.label, error)
        self.end(error if isinstance(error, Disconnected) else Disconnected())

    def end(self, reason: Refusal | Disconnected) -> None:
        """Stop serving this member: nothing more is sent, and its reader stops waiting."""
        if self.state is Flow.ENDED:
            return
        self._enter("end")
        self.reason = reason
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
        pending, self._pending = self._pending, None
        if pending is not None:  # the writer never ran: nobody else will end that send
            pending.abandon()

    async def __aenter__(self) -> Member:
        self._reader = asyncio.current_task()
        self.fanout.add(self)
        return self

    async def __aexit__(self, error_type: type[BaseException] | None, error: object, traceback: object) -> None:
        """Leave, and explain the fan-out's own cancellation of the reader.

        :meth:`end` cancelled the reader if it ENDED while we were in the block. That
        cancellation is ours to absorb, and to replace with the reason (:class:`TryAgainLater`,
        :class:`Disconnected`); any other, the server giving up on the app, goes on.
        ``Task.uncancel()`` returns how many cancellations remain: above 0, someone else's.
        """
        reader, self._reader = self._reader, None
        ours = error_type is asyncio.CancelledError and self.reason is not None
        if ours and reader is not None and reader.uncancel() > 0:
            ours = False
        self.fanout.remove(self)
        if ours and self.reason is not None:
            raise self.reason from None


class Fanout:
    """Every member of the process: the slow-consumer policy, its watchdog, and drops."""

    def __init__(self, policy: SlowConsumerPolicy, metrics: Metrics) -> None:
        self.policy = policy
        self.metrics = metrics
        self._members: dict[Member, None] = {}  # insertion-ordered set
        self._watchdog: asyncio.Task[None] | None = None

    def member(self, session: Session, label: str) -> Member:
        return Member(self, session, label)

    def add(self, member: Member) -> None:
        self._members[member] = None
        if self.policy.send_timeout and (self._watchdog is None or self._watchdog.done()):
            self._watchdog = asyncio.create_task(self._watch_sends(), name="asgi_chat send watchdog")

    def remove(self, member: Member) -> None:
        self._members.pop(member, None)
        member.discard_outbox()
        if not self._members and self._watchdog is not None:
            self._watchdog.cancel()  # nothing left to watch: no task outlives the last member

    def __len__(self) -> int:
        return len(self._members)

    def drop(self, member: Member, reason: TryAgainLater) -> None:
        """Close a slow consumer with 1013: counted and logged once, then ended like any member."""
        if member.state is Flow.ENDED:
            return
        self.metrics.slow_consumer_disconnects += 1
        logger.warning("%s dropped: %s", member.label, reason.reason)
        member.end(reason)

    async def _watch_sends(self) -> None:
        """Drop members whose current send has been blocked too long; ends with the last member.

        One periodic sweep for every member instead of a timer per send: arming and cancelling a
        timer for each delivery would cost more than the delivery.
        """
        loop = asyncio.get_running_loop()
        while self._members:
            await asyncio.sleep(self.policy.sweep_period)
            now = loop.time()
            for member in tuple(self._members):
                reason = self.policy.stuck(member.send_started, now)
                if reason is not None:
                    self.drop(member, TryAgainLater(reason))

    async def stop(self) -> None:
        if self._watchdog is not None:
            await cancel_and_wait(self._watchdog)


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has finished, so no task outlives its owner."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
