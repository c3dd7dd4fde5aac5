"""A member: one connection as the fan-out sees it, where its lines go and what still waits.

::

    READY ──a send had to wait──▶ WAITING ──outbox drained──▶ READY
      └───────────── end (dropped, failed, gone) ─────────────▶ ENDED

A line that reaches a READY member is sent by the courier that carries it (fanout.py); one that
reaches a WAITING member goes into its bounded outbox, which that member's writer (the courier
that stayed with the waiting send) drains in order. What a full outbox means is decided by the
policy (policy.py) and carried out by the fan-out (:meth:`Fanout.drop`), in one place.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from asgiref.typing import WebSocketSendEvent

from ..asgi.errors import Disconnected, Refusal, TryAgainLater
from ..asgi.session import Session
from ..asgi.states import State
from .budget import UNLIMITED, Budget

if TYPE_CHECKING:
    from .fanout import Fanout

logger = logging.getLogger("asgi_chat")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One line as every recipient gets it: a single ASGI event shared by all outboxes."""

    event: WebSocketSendEvent
    size: int  # bytes of UTF-8, counted once for the outbox bound


def outgoing(text: str) -> Outgoing:
    return Outgoing({"type": "websocket.send", "text": text, "bytes": None}, len(text.encode()))


class Flow(enum.Enum):
    """A member's states: where the next line that reaches it goes."""

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
OPEN: Final = State.OPEN


class Member:
    """One connection as the fan-out sees it: where its lines go, and what is still waiting.

    ``async with fanout.member(session, label) as member:`` is the member's life; the task that
    enters is its reader, which :meth:`end` cancels (a stalled client sends nothing, not even a
    close, so its ``receive()`` might never return).
    """

    __slots__ = (
        "_reader",
        "_writer",
        "budget",
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
        # What its requests may make the server send (budget.py); the endpoint gives it its own.
        self.budget: Budget = UNLIMITED
        self.state = Flow.READY
        self.reason: Refusal | Disconnected | None = None  # why it ENDED
        # Lines waiting behind a send that could not finish at once; made the first time it is needed.
        self.outbox: deque[Outgoing] | None = None
        self.queued_bytes = 0
        self.send_started: float | None = None  # when the send now waiting began (WAITING only)
        self._reader: asyncio.Task[object] | None = None
        self._writer: asyncio.Task[None] | None = None  # the courier that stays with a waiting send

    def _enter(self, event: str) -> None:
        self.state = FLOW[(self.state, event)]  # a KeyError here is a bug in this class

    def send(self, text: str) -> None:
        """A line for this member alone (``You wrote: ...``, a reply); never waits."""
        self.offer(outgoing(text))

    def offer(self, message: Outgoing) -> None:
        """Queue ``message`` for this member alone, in order with every other line; never waits."""
        if self.state is not Flow.ENDED:
            self.fanout.offer((self,), message)

    def backlogged(self) -> bool:
        """Half the outbox the policy allows is taken, counting the lines the fan-out has yet to
        hand out (all of them may end up here): a producer that can wait should wait."""
        fanout, policy = self.fanout, self.fanout.policy
        waiting = len(self.outbox or ()) + len(fanout.lines)
        waiting_bytes = self.queued_bytes + fanout.lines_bytes
        return waiting * 2 >= policy.max_messages or waiting_bytes * 2 >= policy.max_bytes

    async def drained(self) -> None:
        """Wait until the lines offered so far are handed out and nothing waits for this member
        any more (or it ended)."""
        await self.fanout.handed_out()
        while self.state is WAITING and self._writer is not None:
            await asyncio.wait((self._writer,))

    def _wait_in(self, writer: asyncio.Task[None]) -> None:
        """A send to this member has to wait, in ``writer``: lines queue behind it until it is done."""
        self._enter("send waits")
        self.send_started = asyncio.get_running_loop().time()
        self._writer = writer

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

    async def _write(self) -> None:
        """The send that had to wait is done: send what queued behind it, in order, then READY."""
        loop = asyncio.get_running_loop()
        try:
            while self.outbox and self.session.state is OPEN:  # closed: as in the courier
                message = self.outbox.popleft()
                self.queued_bytes -= message.size
                self.send_started = loop.time()
                await self.session.send_event(message.event)
        except Exception as error:  # as in the courier
            self._failed(error)
        finally:
            # No await between the empty outbox above and this: the next line goes out at once.
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
        """Drop what is queued and stop the writer (and the send it waits on), if there is one."""
        if self.outbox is not None:
            self.outbox.clear()
        self.queued_bytes = 0
        if self._writer is not None:
            self._writer.cancel()

    async def __aenter__(self) -> Member:
        self._reader = asyncio.current_task()
        self.fanout.add(self)
        return self

    async def __aexit__(self, error_type: type[BaseException] | None, error: object, traceback: object) -> None:
        """Leave, once the lines offered to it are handed out; explain the fan-out's own
        cancellation of the reader.

        :meth:`end` cancelled the reader if it ENDED while we were in the block. That
        cancellation is ours to absorb, and to replace with the reason (:class:`TryAgainLater`,
        :class:`Disconnected`); any other, the server giving up on the app, goes on.
        ``Task.uncancel()`` returns how many cancellations remain: above 0, someone else's.
        """
        reader, self._reader = self._reader, None  # from here on, end() cancels nobody
        ours = error_type is asyncio.CancelledError and self.reason is not None
        if ours and reader is not None and reader.uncancel() > 0:
            ours = False
        try:
            if error_type is not asyncio.CancelledError and self.state is not Flow.ENDED:
                await self.fanout.handed_out()  # a last reply (an error before a close) still goes
        finally:
            self.fanout.remove(self)
        if ours and self.reason is not None:
            raise self.reason from None
