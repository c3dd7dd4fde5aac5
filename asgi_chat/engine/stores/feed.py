"""One room's feed in one process: the Redis store's messages delivered here in offset order.

Pub/sub is at-most-once: a message published while a subscriber's connection was down never
reaches it. A :class:`Feed` remembers the last offset delivered here and the epoch it belongs
to, and makes the stream of messages the rooms engine hears gap-free or honest:

- a message whose offset is the last plus one goes through;
- one already delivered (filled from the stream before its pub/sub copy came) is dropped;
- one further on first has the hole filled from the room's Redis Stream, and what the stream no
  longer holds is told as a ``gap`` ``lost`` with exact bounds;
- one of another epoch (the room's history is gone) is a ``reset``, then the new epoch from 1.

Before the first join here has read the room's window, there is no position yet: what arrives is
kept (:attr:`Feed.early`) and delivered once the window sets the position.

A say from a member here waits (:meth:`Feed.reached`) until its own message has come back through
the feed: so its ``ack`` follows its ``msg``, as on the memory store (stores/__init__.py). A join
here waits likewise (:meth:`Feed.handed_over`) for everything its window holds: so none of it
reaches the joiner live, after its replay, a second time.

A Feed is not a room's membership (that is the engine's :class:`~asgi_chat.engine.room.Room`):
it is the store's side of a room in this process, the delivery order above, and
:attr:`Feed.users`, this process's connections per uid, which its presence entries in Redis
stand for (the first one enters, the last one exits, a kick drops them all), with
:attr:`Feed.people`, the person each uid entered as last (what the entries' refreshes show).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..people import Person
from ..replay import LOST, Stored
from . import StoreListener

# (first, last) -> what the room's stream holds of those offsets, ascending.
Fetch = Callable[[int, int], Awaitable[list[Stored]]]


@dataclass(slots=True)
class Feed:
    """A room this process has members in, and where its messages are up to here."""

    room: str
    listener: StoreListener | None
    fetch: Fetch
    users: Counter[str] = field(default_factory=Counter)  # uid -> connections here
    people: dict[str, Person] = field(default_factory=dict)  # uid -> the person, as entered last here
    epoch: str | None = None
    last: int | None = None  # the last offset delivered here; None until the first window
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)  # our subscription is live
    early: list[tuple[str, int, str]] = field(default_factory=list)  # heard before the first window
    # Says from here awaiting their own message: (epoch, offset, woken when it has been handed over).
    waiting: list[tuple[str, int, asyncio.Future[None]]] = field(default_factory=list)

    def drop(self, uid: str) -> bool:
        """A moderator put ``uid`` out of the room: its connections here no longer count (their
        exits do nothing, and no second leave is told). Whether it had any."""
        self.people.pop(uid, None)
        return self.users.pop(uid, 0) > 0

    def start(self, epoch: str, top: int) -> None:
        """The first join's window: live from ``top``, with what was heard early that follows it."""
        self.epoch, self.last = epoch, top
        early, self.early = sorted(self.early, key=lambda item: item[1]), []
        for their_epoch, offset, frame in early:
            if their_epoch == epoch and offset == self.last + 1:  # a hole left is filled at the next message
                self._hand_over(Stored(offset, frame, len(frame)))

    async def deliver(self, epoch: str, offset: int, frame: str) -> None:
        """One published message, delivered here in offset order (see the module docstring)."""
        if self.last is None:
            self.early.append((epoch, offset, frame))
            return
        if epoch != self.epoch:
            await self.reset(epoch, offset - 1)
        if offset > self.last + 1:
            await self.fill(offset - 1)
        # Not if it was delivered already, from the stream: by a fill, this one's or a join's.
        if epoch == self.epoch and offset == self.last + 1:
            self._hand_over(Stored(offset, frame, len(frame)))

    async def reached(self, epoch: str, offset: int) -> None:
        """Return once ``offset`` of ``epoch`` has been handed to the listener (or told as lost), or
        the room has left that epoch, so that nothing of it comes any more."""
        if self.last is not None and self.epoch == epoch and offset <= self.last:
            return
        entry = (epoch, offset, asyncio.get_running_loop().create_future())
        self.waiting.append(entry)
        try:
            await entry[2]
        finally:
            if entry in self.waiting:  # cancelled, or timed out
                self.waiting.remove(entry)

    async def reached_within(self, epoch: str, offset: int, seconds: float) -> bool:
        """:meth:`reached`, waiting ``seconds`` at most; whether it was."""
        try:
            async with asyncio.timeout(seconds):
                await self.reached(epoch, offset)
        except TimeoutError:
            return False
        return True

    async def handed_over(self, epoch: str, top: int, seconds: float) -> None:
        """Return once every message up to ``top`` has been handed over: from pub/sub within
        ``seconds``, else from the stream (pub/sub slow, or down)."""
        if not await self.reached_within(epoch, top, seconds) and self.epoch == epoch and self.last is not None:
            await self.fill(top)

    def _release(self, left: str | None = None) -> None:
        """Wake the says whose message has been handed over, or whose epoch (``left``) is gone."""
        waiting, self.waiting = self.waiting, []
        for entry in waiting:
            epoch, offset, woken = entry
            if epoch == left or (epoch == self.epoch and self.last is not None and offset <= self.last):
                if not woken.done():
                    woken.set_result(None)
            else:
                self.waiting.append(entry)

    async def reset(self, epoch: str, top: int) -> None:
        """A new epoch: the members here are told, then get its messages from 1 to ``top``."""
        self._release(left=self.epoch)  # a say of the old epoch: its message will not come here now
        self.epoch, self.last = epoch, 0
        if self.listener is not None:
            self.listener.reset(self.room, epoch, self.last)  # what follows: the new epoch from 1
        if top:
            await self.fill(top)

    async def fill(self, upto: int) -> None:
        """Deliver what the stream holds after :attr:`last` up to ``upto``; the rest as gap lost.

        A store out of reach raises (StoreUnavailable): not "lost", since the stream may hold it
        all, but an outage for the listener to wait out, after which it catches up from here.
        """
        assert self.last is not None
        epoch, fetched = self.epoch, await self.fetch(self.last + 1, upto)
        if self.epoch != epoch:  # a reset meanwhile: these belong to a history that is gone
            return
        for stored in fetched:
            # A fill may run in a join (handed_over) while the listener fills or delivers: what
            # one handed over while the other waited for Redis is not handed over twice.
            if stored.offset > self.last:
                self._report_lost(stored.offset - 1)
                self._hand_over(stored)
        self._report_lost(upto)

    def _report_lost(self, upto: int) -> None:
        assert self.last is not None
        if upto > self.last and self.listener is not None:
            self.listener.gap(self.room, self.last + 1, upto, LOST)
            self.last = upto
            if self.waiting:
                self._release()

    def _hand_over(self, stored: Stored) -> None:
        self.last = stored.offset
        if self.listener is not None:
            self.listener.message(self.room, stored)
        if self.waiting:
            self._release()
