"""Fan-out: how one line reaches many connections without anyone waiting on anyone.

::

    offer(members, line) ──▶ the fan-out's queue ──▶ a courier task: each line to each of its members
        READY ───▶ await session.send_event ──done──▶ on to the next (the usual case: no wait)
                           └──had to wait──▶ the courier stays with that send: the member's writer now
                                             (the rest of the send, then the outbox, then it ends);
                                             a new courier takes the rest of the queue (_relieve)
        WAITING ─▶ the member's bounded outbox
        ENDED, or its session closed ───▶ ignored

The tutorial broadcasts by awaiting each client's ``send`` in turn, so one client that stops
reading (its TCP buffers full, its ``send`` blocked) stops the chat for everyone. Here whoever
offers a line only queues it in the :class:`Fanout`, and a *courier* task takes it to each
:class:`Member`. A server's ``send`` usually finishes at once (it writes into the connection's
buffer and waits only while the client is not reading: uvicorn's websockets-sansio ``send``
begins with ``await self.writable.wait()``), so one courier delivers a line to everyone in one
step. A send that has to wait is finished by the task that started it: the courier becomes that
member's writer (the rest of the send, then what queued in the member's bounded outbox meanwhile)
and a new courier takes the rest of the queue. The courier learns that a send waits the only way
a task can, by not being done when its step is over: a callback it schedules as it starts
(:meth:`Fanout._relieve`) runs after that step, and finds the walk done, or hands it on. So a
slow client only ever slows itself, until the :class:`SlowConsumerPolicy` closes it with 1013,
and an idle chat holds no task but the readers. (The idea of websockets' ``broadcast()``,
described in its "broadcast" topic, on ASGI.)

Why the task that starts a send must finish it: a server's ``send`` may bound its wait with
``asyncio.timeout()`` or an anyio cancel scope, which cancel ``asyncio.current_task()`` when the
time is up; started in one task and finished in another, such a send cancels the wrong one. On
Python 3.12+ a courier starts eagerly (``eager_start``: its first step runs at once, as its own
task), so a line usually reaches everyone before ``offer`` returns; before 3.12, at the next turn
of the event loop, together with every line queued by then. Either way, a line costs one task,
however many members it reaches.

Ordering: the queue keeps the order of the offers, one courier at a time walks it, and a member
with a send waiting takes later lines into its outbox, first in, first out; so every member sees
its lines (a room's messages and its own replies alike) in the order they were offered.

:class:`Fanout` is the engine's registry of members: the queue and its couriers, the one policy,
the one watchdog for sends that stay blocked, and the one place that drops a slow consumer. The
tutorial chat's hub and the rooms of ``asgi-chat.v1`` both deliver through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from collections.abc import Coroutine
from typing import Any, Protocol

from ..asgi.errors import TryAgainLater
from ..asgi.session import Session
from .member import OPEN, READY, WAITING, Flow, Member, Outgoing
from .policy import SlowConsumerPolicy

logger = logging.getLogger("asgi_chat")


class FanoutCounters(Protocol):
    """What the fan-out counts (ops/metrics.py's ``Metrics`` has them): a Protocol of the engine's
    own, so that the engine names nothing above it (tests/unit/test_layers.py)."""

    slow_consumer_disconnects: int
    outbox_depth_max: int

    def observe_line(self, seconds: float) -> None: ...


def offer(members: tuple[Member, ...], message: Outgoing) -> None:
    """Offer ``message`` to each of ``members`` (of one fan-out), in this order; never waits."""
    if members:  # a room or chat with nobody here has no fan-out to ask
        members[0].fanout.offer(members, message)


if sys.version_info >= (3, 12):

    def _start(courier: Coroutine[Any, Any, None]) -> None:
        # Eager: the first step runs now, with the courier as asyncio.current_task().
        asyncio.Task(courier, loop=asyncio.get_running_loop(), eager_start=True)

else:

    def _start(courier: Coroutine[Any, Any, None]) -> None:
        asyncio.get_running_loop().create_task(courier)


class Fanout:
    """Every member of the process, the queue of lines for them and its couriers; the
    slow-consumer policy, its watchdog, and drops."""

    def __init__(self, policy: SlowConsumerPolicy, metrics: FanoutCounters) -> None:
        self.policy = policy
        self.metrics = metrics
        self._members: dict[Member, None] = {}  # insertion-ordered set
        self._watchdog: asyncio.Task[None] | None = None
        self.lines: deque[tuple[tuple[Member, ...], Outgoing]] = deque()  # offered, not yet handed out
        self.lines_bytes = 0  # their sizes, each line counted once
        self._walking = False  # a courier has the queue (or is about to start)
        self._walked: asyncio.Future[None] | None = None  # for handed_out(), made on demand
        # Where the courier is: its task, the line it walks, and the member whose send it is in.
        self._walker: asyncio.Task[None] | None = None
        self._line: tuple[tuple[Member, ...], Outgoing] | None = None
        self._sending: Member | None = None

    def member(self, session: Session, label: str) -> Member:
        return Member(self, session, label)

    def offer(self, members: tuple[Member, ...], message: Outgoing) -> None:
        """Queue ``message`` for ``members``, in this order, and see that a courier takes it."""
        if not members:
            return
        self.lines.append((members, message))
        self.lines_bytes += message.size
        if not self._walking:
            self._walking = True
            _start(self._courier())

    async def handed_out(self) -> None:
        """Wait until the queue is empty: each line sent, queued in an outbox, or ignored."""
        if self._walking:
            if self._walked is None:
                self._walked = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._walked)

    async def _courier(self) -> None:
        """Take each queued line to its members, in order, until the queue is empty.

        A send usually finishes without this task ever waiting. One that has to wait leaves the
        rest of the step to :meth:`_relieve`, which gives the rest of the walk to a new courier;
        this task finishes the send it started, as that member's writer.
        """
        courier = asyncio.current_task()
        assert courier is not None
        self._walker = courier
        asyncio.get_running_loop().call_soon(self._relieve, courier)  # after this step
        lines = self.lines
        while lines:
            members, message = self._line = lines.popleft()
            self.lines_bytes -= message.size
            for member in members:
                if member.state is READY:
                    session = member.session
                    if session.state is not OPEN:
                        continue  # closed: its reader knows, or will, and ends it
                    self._sending = member
                    try:
                        await session.send_event(message.event)
                    except Exception as error:  # one member's failure must not end the fan-out
                        member._failed(error)
                    if self._walker is not courier:  # that send had to wait: relieved, now its writer
                        await member._write()
                        return
                elif member.state is WAITING:
                    member._enqueue(message)
        self._walk_ended()

    def _relieve(self, courier: asyncio.Task[None]) -> None:
        """Right after the courier's first step: if it is still walking, it waits in a send.

        That send stays with the task that started it (``asyncio.timeout()``, anyio's cancel
        scopes and the like cancel ``asyncio.current_task()``): the member is WAITING with the
        courier as its writer. The rest of the line, and of the queue, go to a new courier.
        """
        if self._walker is not courier:
            return  # the walk ended within the step: the usual case
        member, line = self._sending, self._line
        assert member is not None
        assert line is not None
        members, message = line
        rest = members[members.index(member) + 1 :]
        if rest:
            self.lines.appendleft((rest, message))
            self.lines_bytes += message.size
        if member.state is READY and member.session.state is OPEN:
            member._wait_in(courier)
        else:  # ended or closed meanwhile: nobody wants that send any more
            courier.cancel()
        self._walker = None
        if self.lines:
            _start(self._courier())
        else:
            self._walk_ended()

    def _walk_ended(self) -> None:
        self._walking, self._walker, self._line, self._sending = False, None, None, None
        walked, self._walked = self._walked, None
        if walked is not None:
            walked.set_result(None)

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
