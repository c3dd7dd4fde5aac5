"""The tutorial chat's hub: who is in the chat, and the broker that carries its lines.

::

    sender's reader ──broadcast──▶ broker ──▶ hub listener ──_deliver──▶ fanout.offer(members) (fanout.py)

Every line goes through the broker, so with Redis one chat spans every process; the listener
offers each line to every member at once (:meth:`~asgi_chat.engine.fanout.Fanout.offer`), which
never waits. Ordering: ``_deliver`` is synchronous and the fan-out keeps the order of its offers,
so every member sees one sender's lines in the order the broker delivered them, which is
publishing order.

Who is in the chat here is one engine :class:`~asgi_chat.engine.room.Room`, the class each room of
``asgi-chat.v1`` is (rooms.py): its members by their label (``client #7``), how many connections
each client id has (the id has left when its last one here has), and the snapshot ``_deliver``
offers a line to. What stays apart from the rooms is the way a line travels, because the tutorial
promises less: a line is live only, at most once, with no number, no history and no resume, so
a broker carries it (publish and subscribe: brokers/; with Redis, this process's members get a
line without waiting on Redis, brokers/redis.py), where a room's messages go through a store that
numbers and keeps each one so that every member gets it exactly once, in order (stores/).
Handing the tutorial's lines to a store would keep, number and replay lines nobody asks for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Final

from ..asgi.errors import CloseCode
from ..asgi.session import Session
from .brokers import Broker
from .fanout import Fanout, cancel_and_wait
from .member import Member, outgoing
from .room import Room

CHANNEL: Final = "asgi_chat"


class Hub:
    """The tutorial chat's membership and its broker. One per app; see the module docstring."""

    def __init__(self, fanout: Fanout, broker: Broker) -> None:
        self.fanout = fanout
        self.broker = broker
        self.shutting_down = False
        self.room = Room()  # who is in the chat here, by label: "client #7" (engine/room.py)
        self._started = False
        self._on_demand = False  # started by a join rather than lifespan: stops with the last member
        self._start_lock = asyncio.Lock()
        self._resources = AsyncExitStack()
        self._timed: tuple[str, float] | None = None  # the sampled line on its way: (text, received at)

    # --- life cycle -----------------------------------------------------------------------

    async def start(self, *, on_demand: bool = False) -> None:
        """Open the broker and subscribe to the chat; idempotent. Servers without lifespan (and
        tests that skip it) start the hub on the first join instead (``on_demand``): then it stops
        again when its last member leaves, so that no task of the app outlives its last client."""
        async with self._start_lock:
            if self._started:
                return
            self._on_demand = on_demand
            await self.broker.open()
            self._resources.push_async_callback(self.broker.close)
            messages = await self._resources.enter_async_context(self.broker.subscribe(CHANNEL))
            listener = asyncio.create_task(self._listen(messages), name="asgi_chat hub listener")
            self._resources.push_async_callback(cancel_and_wait, listener)
            self._started = True

    async def stop(self) -> None:
        self.shutting_down = True
        await self.fanout.stop()
        await self._resources.aclose()
        self._started = False

    # --- membership -----------------------------------------------------------------------

    def member(self, session: Session, client_id: int) -> Membership:
        """``async with hub.member(session, client_id) as member:`` is being in the chat; leaving
        the block leaves it, announced to the others (see _announces)."""
        return Membership(self, self.fanout.member(session, f"client #{client_id}"), client_id)

    def _add(self, member: Member) -> None:
        self.room.seat(member, member.label)  # "client #7": the connections of one id share it

    async def _remove(self, member: Member, client_id: int) -> None:
        last = self.room.remove(member)  # the id's last connection here
        member.discard_outbox()
        if last and self._announces(member):
            await self.broadcast(f"Client #{client_id} left the chat")
        if not self.room.users and self._on_demand:
            await self._stop_when_idle()

    async def _stop_when_idle(self) -> None:
        async with self._start_lock:  # a join that starts the hub meanwhile waits, then starts it anew
            if self._started and self._on_demand and not self.room.users:
                await self._resources.aclose()
                self._started = False

    def _announces(self, member: Member) -> bool:
        # Client ids are chosen by clients, so two connections may share one: a reconnecting page
        # whose old connection the server has not yet seen drop, or a duplicated tab. The id has
        # left only when its last connection (in this process) has: Room.remove says when.
        # No farewells while the server shuts down: uvicorn closes every WebSocket with 1012
        # ("service restart") before it sends lifespan.shutdown, and nobody is left to tell.
        return not self.shutting_down and member.session.close_code != CloseCode.SERVICE_RESTART

    @property
    def members(self) -> tuple[Member, ...]:
        """The chat's live members here, as the immutable snapshot a line is offered to."""
        return self.room.live

    # --- messages -------------------------------------------------------------------------

    async def broadcast(self, text: str, received_at: float | None = None) -> None:
        """Send ``text`` to everyone in the chat, in every process the broker reaches.

        ``received_at`` (from ``Metrics.line_clock``, set for one line in 16) times this line
        until it is handed to the fan-out for its local recipients (whose courier starts their
        sends at once on Python 3.12+, at the next turn of the event loop before): one slot, so a
        sampled line that never comes back (dropped by the broker) is simply replaced by the next.
        """
        if received_at is not None:
            self._timed = (text, received_at)
        await self.broker.publish(CHANNEL, text)

    async def _listen(self, messages: AsyncIterator[str]) -> None:
        async for text in messages:
            self._deliver(text)

    def _deliver(self, text: str) -> None:
        # The members are an immutable snapshot (copy-on-write), taken once per line: a join or
        # leave meanwhile makes a new one, and the fan-out keeps this one until the line is out.
        self.fanout.offer(self.members, outgoing(text))
        # Once per line, not per recipient: a None check, unless this is the sampled line.
        if self._timed is not None and self._timed[0] == text:
            self.fanout.metrics.observe_line(time.monotonic() - self._timed[1])
            self._timed = None


class Membership:
    """Being in the tutorial chat, as an async context manager around the fan-out's member.

    A small class rather than ``@asynccontextmanager``: an idle chat connection keeps this for
    its whole life, and a suspended generator frame would cost it about a kilobyte more.
    """

    __slots__ = ("client_id", "hub", "member")

    def __init__(self, hub: Hub, member: Member, client_id: int) -> None:
        self.hub = hub
        self.member = member
        self.client_id = client_id

    async def __aenter__(self) -> Member:
        await self.member.__aenter__()
        self.hub._add(self.member)
        return self.member

    async def __aexit__(
        self, error_type: type[BaseException] | None, error: BaseException | None, traceback: object
    ) -> None:
        try:
            await self.hub._remove(self.member, self.client_id)
        finally:
            # Last: it may replace the fan-out's own cancellation with its reason (member.Member).
            await self.member.__aexit__(error_type, error, traceback)
