"""Rooms: who in this process is in which room, and how a room's messages reach them in order.

::

    say ──▶ store.append (offset, history, publish: one atomic step) ─ returns ─▶ ack
                  │ later, on a turn of the store's own (never within append)
                  └──▶ Rooms.message ──▶ the room's live members, at once:
                                         offer(live, the msg frame, encoded once)   (fanout.py)

A say travels one way: the endpoint calls :meth:`Rooms.say`, which calls the store, which
returns; the store tells this object what was published (:class:`~.stores.StoreListener`) from a
turn of its own, never from inside a call the engine made (stores/__init__.py), and ``append``
returns once that has happened, so the sender's ``ack`` follows its own ``msg``.

A room here is only its local side, an engine :class:`~.room.Room` (the tutorial chat is one
too: hub.py): the members of this process that joined it, each under its person's uid
(engine/people.py: two people of one name are two presences, one person's two tabs one).
Offsets, history, dedup and presence are the store's (engine/stores/), one truth for all who
share it. A room with no member here is not held here at all, and holds no task.

Joining, without losing or doubling a line: the new member's seat first *buffers* what the room
publishes, then the store is entered and its window read, then the member gets ``joined``, the
replay (engine/replay.py) and whatever the buffer holds beyond the replay, in offset order; only
then does it go live. The store tells its listener on turns of its own, and a store on the
network publishes whenever it likes: the buffer is what makes either safe.

The rooms' answers are sent here, through the member's outbox, in order with the room's
messages: ``joined`` before the replay, ``ack`` after the sender's own ``msg``, and ``history``
(the frames the store kept, each encoded once when it was said).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from . import frames
from .fanout import offer
from .member import Member, Outgoing, outgoing
from .people import Person, Removed
from .presence import Presence
from .replay import Stored, Window, plan, want
from .room import Buffer, Room
from .stores import RoomStore


@dataclass(frozen=True, slots=True)
class JoinRequest:
    room: str
    since: tuple[str, int] | None  # resume after (epoch, offset)
    history: int | None  # or the last K messages; neither: live only
    request_id: str | None
    presence: bool = True  # False: no presence frames for this member (joined still counts them)


class Rooms:
    """Every room of the process, over one store. The store's listener is this object."""

    def __init__(self, store: RoomStore, replay_max: int, presence_interval: float = 0.0) -> None:
        self.store = store
        self.replay_max = replay_max  # a resume replays at most this many (ASGI_CHAT_REPLAY_MAX)
        self.presence_interval = presence_interval  # one presence frame per window (presence.py)
        self._rooms: dict[str, Room] = {}
        self._presence: dict[str, Presence] = {}  # the rooms of _rooms: their presence frames
        self._people: dict[str, set[Member]] = {}  # uid -> its connections here, for a disconnect
        self._enrolled: dict[Member, str] = {}  # connection -> its uid
        self._open = False

    async def open(self) -> None:
        if not self._open:
            await self.store.open(self)
            self._open = True

    async def close(self) -> None:
        await self.store.close()
        self._open = False

    def __len__(self) -> int:
        return len(self._rooms)

    # --- the store's listener: what happens in the rooms ----------------------------------

    def message(self, room: str, stored: Stored) -> None:
        local = self._rooms.get(room)
        if local is None:
            return
        # No await in here, as in the tutorial hub: one frame, encoded once, offered to all.
        message = outgoing(stored.frame)
        offer(local.live, message)
        for buffer in local.joining.values():
            buffer.append((stored.offset, message))

    def presence(self, room: str, person: Person, event: str) -> None:
        local = self._rooms.get(room)
        if local is not None:  # batched: one frame per member per window (presence.py)
            self._presence[room].changed(local, person, event)

    def gap(self, room: str, first: int, last: int, reason: str) -> None:
        self._tell(room, frames.gap(room, first, last, reason))

    def reset(self, room: str, epoch: str, offset: int) -> None:
        # Not to members still joining: their window, read in the new epoch, says so already.
        self._tell(room, frames.reset(room, epoch, offset), joining_too=False)

    def kicked(self, room: str, uid: str, by: str, reason: str) -> None:
        local = self._rooms.get(room)
        if local is None:
            return
        message = outgoing(frames.kicked(room, by, reason))
        for member in [member for member, key in local.users.items() if key == uid]:
            member.offer(message)
            local.remove(member)  # the store let the presence go already: no exit for these
            self._presence[room].gone(member)
        if not local.users:
            del self._rooms[room]
            self._presence.pop(room).close()

    def redacted(self, room: str, offset: int, by: str) -> None:
        self._tell(room, frames.redacted(room, offset, by))

    def disconnected(self, uid: str, reason: str) -> None:
        for member in list(self._people.get(uid, ())):
            member.end(Removed(reason or "disconnected by a moderator"))

    def _tell(self, room: str, frame: str, *, joining_too: bool = True) -> None:
        """A frame for every member of the room here, in order with its messages."""
        local = self._rooms.get(room)
        if local is None:
            return
        message = outgoing(frame)
        offer(local.live, message)
        for buffer in local.joining.values() if joining_too else ():
            buffer.append((0, message))

    # --- what a connection does -----------------------------------------------------------

    async def join(self, member: Member, person: Person, request: JoinRequest) -> None:
        """Seat ``member`` in the room as ``person`` and send ``joined``, the replay, then live messages."""
        local = self._seat(member, person, request)
        try:
            people = await self.store.enter(request.room, person)
        except BaseException:
            self._unseat(request.room, local, member)
            raise
        self._presence[request.room].read(member)
        try:
            # What the window holds is output this join causes: it is read in the budget's turn.
            await member.budget.wait_turn()
            after, limit = want(request.since[1] if request.since else None, request.history, self.replay_max)
            window = await self.store.window(request.room, after, limit)
            listed = request.presence
            joined = frames.joined(request.room, window.epoch, window.top, people, request.request_id, listed=listed)
            await _budgeted(member, outgoing(joined))  # its presence list is output the join caused
            await self._replay(member, request, window, local.joining.get(member, deque()))
        except BaseException:  # cancelled, or the store failed: out again, as if it never came
            self._unseat(request.room, local, member)
            await self.store.exit(request.room, person)
            raise
        local.go_live(member)

    async def _replay(self, member: Member, request: JoinRequest, window: Window, buffered: Buffer) -> None:
        """The replay's gaps and messages, then what was published while joining, once each."""
        replay = plan(window, request.since)
        if replay.reset:
            member.send(frames.reset(request.room, window.epoch, window.top))  # then live: top + 1 on
        for gap in replay.gaps:
            member.send(frames.gap(request.room, gap.first, gap.last, gap.reason))
        for stored in replay.messages:
            await _budgeted(member, outgoing(stored.frame))  # the replay: the join's own output
        while buffered:  # what came while joining, and while the replay waited for the client
            offset, message = buffered.popleft()
            if offset == 0 or offset > window.top:  # presence, or a message the window did not hold
                await _paced(member, message)

    async def leave(self, member: Member, person: Person, room: str) -> None:
        local = self._rooms.get(room)
        if local is None or member not in local.users:
            return  # put out by a moderator already: its presence there is gone from the store
        self._unseat(room, local, member)
        await self.store.exit(room, person)

    def seated(self, member: Member, room: str) -> bool:
        local = self._rooms.get(room)
        return local is not None and member in local.users

    def enroll(self, member: Member, person: Person) -> None:
        """``member`` is ``person`` (said hello): a disconnect of its uid will find it."""
        self._enrolled[member] = person.uid
        self._people.setdefault(person.uid, set()).add(member)

    def unenroll(self, member: Member) -> None:
        uid = self._enrolled.pop(member, None)
        if uid is not None:
            members = self._people[uid]
            members.discard(member)
            if not members:
                del self._people[uid]

    # --- moderation: the store carries each out for every process (endpoints/moderation.py) ---

    async def kick(self, room: str, uid: str, by: str, reason: str, ban_seconds: float = 0) -> None:
        await self.store.kick(room, uid, by, reason, ban_seconds)

    async def unban(self, room: str, uid: str) -> None:
        await self.store.unban(room, uid)

    async def mute(self, room: str, uid: str, seconds: float) -> None:
        await self.store.mute(room, uid, seconds)

    async def unmute(self, room: str, uid: str) -> None:
        await self.store.unmute(room, uid)

    async def redact(self, room: str, offset: int, by: str) -> bool:
        return await self.store.redact(room, offset, by)

    async def disconnect(self, uid: str, reason: str) -> None:
        await self.store.disconnect(uid, reason)

    def _seat(self, member: Member, person: Person, request: JoinRequest) -> Room:
        local = self._rooms.get(request.room)
        if local is None:
            local = self._rooms[request.room] = Room()
            self._presence[request.room] = Presence(request.room, self.presence_interval)
        local.seat(member, person.uid, joining=True)  # by uid: never told of its own presence
        self._presence[request.room].seated(member, quiet=not request.presence)
        return local

    def _unseat(self, room: str, local: Room, member: Member) -> None:
        local.remove(member)
        self._presence[room].gone(member)
        if not local.users:
            del self._rooms[room]
            self._presence.pop(room).close()

    async def members(self, member: Member, room: str, request_id: str | None) -> None:
        """Answer ``member`` with who is in ``room`` now (after a gap, or a presence frame missed)."""
        member.budget.admit()  # a short request, a long answer: drawn on the budget as history is
        reply = outgoing(frames.members(room, await self.store.present(room), request_id))
        member.budget.charge(reply.size)
        member.offer(reply)

    async def say(self, member: Member, person: Person, room: str, text: str, say_id: str | None) -> None:
        """Publish ``text`` in ``room`` as ``person`` and answer ``member`` with its offset (``ack``).

        The store's listener (:meth:`message`) offers the ``msg`` to every member here, the
        sender among them, before ``append`` returns (on Redis within a bound: stores/redis.py);
        the ``ack`` goes after it, through the same outbox, so a client gets its own ``msg``
        first. A say id this person's uid used again gets the first offset's ``ack`` alone (nothing
        was published); another person's use of the same id is another say.
        """
        offset, _ = await self.store.append(room, person, text, say_id)
        member.send(frames.ack(room, offset, say_id))

    async def history(self, member: Member, room: str, before: int, limit: int, request_id: str | None) -> None:
        """Answer ``member`` with the room's retained messages before ``before``: their frames as
        stored, each encoded once when it was said, in one ``history`` frame.

        Raises :class:`~.budget.SlowDown` while the member's output budget is in debt, before the
        store is asked: a refused page costs nothing. A page let in is charged what it weighs.
        """
        member.budget.admit()
        messages = await self.store.before(room, before, limit)
        reply = outgoing(frames.history(room, [stored.frame for stored in messages], request_id))
        member.budget.charge(reply.size)
        member.offer(reply)


async def _paced(member: Member, message: Outgoing) -> None:
    """Offer a replayed line, and wait for the client to take some once half its outbox is full.

    A replay is up to replay_max lines at once: offered in one go, it could fill the outbox of a
    client that reads at a normal pace and get it dropped as a slow consumer. Meanwhile the live
    lines wait in the joining member's buffer, so the order still holds; a client that really
    stopped reading is dropped by the send watchdog as ever.
    """
    member.offer(message)
    if member.backlogged():
        await member.drained()


async def _budgeted(member: Member, message: Outgoing) -> None:
    """Offer a line a join produced (``joined``, a replayed message) once the member's output
    budget allows it (budget.py), and charge it; then pace it as any replayed line.

    The live lines that came meanwhile wait in the joiner's buffer, in order, as they do while
    :func:`_paced` waits; they are not charged, and not held back by the budget, once their
    turn comes: they are the room's traffic, not the join's, and a room busier than the budget
    would otherwise keep the joiner from ever catching up.
    """
    await member.budget.wait_turn()
    member.budget.charge(message.size)
    await _paced(member, message)
