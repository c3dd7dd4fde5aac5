"""Rooms: who in this process is in which room, and how a room's messages reach them in order.

::

    say ──▶ store.append (offset, history, publish: one atomic step) ──▶ Rooms.message
        ──▶ every live member of the room: member.offer(the msg frame, encoded once)   (fanout.py)

A room here is only its local side: the members of this process that joined it. Offsets,
history, dedup and presence are the store's (engine/stores/), one truth for all who share it.
A room with no member here is not held here at all, and holds no task.

Joining, without losing or doubling a line: the new member's seat first *buffers* what the room
publishes, then the store is entered and its window read, then the member gets ``joined``, the
replay (engine/replay.py) and whatever the buffer holds beyond the replay, in offset order; only
then does it go live. With the memory store nothing can be published in between, but with a
store on the network it can, and the buffer is what makes that safe.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..endpoints import protocol
from ..ops.settings import Settings
from .fanout import Member, Outgoing, outgoing
from .replay import Stored, Window, plan, want
from .stores import RoomStore

Buffer = deque[tuple[int, Outgoing]]  # what reaches a room while a member joins: (offset, frame), 0: presence


@dataclass(slots=True)
class Room:
    """This process's members of one room."""

    users: dict[Member, str] = field(default_factory=dict)  # member -> its user name
    live: tuple[Member, ...] = ()  # the members messages go straight to (a snapshot)
    # Members still joining: what reaches the room meanwhile, as (offset, frame), 0 for presence.
    joining: dict[Member, Buffer] = field(default_factory=dict)

    def go_live(self, member: Member) -> None:
        self.joining.pop(member, None)
        self.live = (*self.live, member)

    def remove(self, member: Member) -> None:
        self.users.pop(member, None)
        self.joining.pop(member, None)
        self.live = tuple(other for other in self.live if other is not member)


@dataclass(frozen=True, slots=True)
class JoinRequest:
    room: str
    since: tuple[str, int] | None  # resume after (epoch, offset)
    history: int | None  # or the last K messages; neither: live only
    request_id: str | None


class Rooms:
    """Every room of the process, over one store. The store's listener is this object."""

    def __init__(self, store: RoomStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._rooms: dict[str, Room] = {}
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
        # No await in here, as in the tutorial hub: one frame, encoded once, offered to each.
        message = outgoing(stored.frame)
        for member in local.live:
            member.offer(message)
        for buffer in local.joining.values():
            buffer.append((stored.offset, message))

    def presence(self, room: str, user: str, event: str) -> None:
        local = self._rooms.get(room)
        if local is None:
            return
        message = outgoing(protocol.presence(room, user, event))
        for member, name in local.users.items():
            if name == user:  # to the room's *other* members: the joiner's own list says it all
                continue
            buffer = local.joining.get(member)
            if buffer is None:
                member.offer(message)
            else:
                buffer.append((0, message))

    def gap(self, room: str, first: int, last: int, reason: str) -> None:
        self._tell(room, protocol.gap(room, first, last, reason))

    def reset(self, room: str, epoch: str, offset: int) -> None:
        # Not to members still joining: their window, read in the new epoch, says so already.
        self._tell(room, protocol.reset(room, epoch, offset), joining_too=False)

    def _tell(self, room: str, frame: str, *, joining_too: bool = True) -> None:
        """A frame for every member of the room here, in order with its messages."""
        local = self._rooms.get(room)
        if local is None:
            return
        message = outgoing(frame)
        for member in local.live:
            member.offer(message)
        for buffer in local.joining.values() if joining_too else ():
            buffer.append((0, message))

    # --- what a connection does -----------------------------------------------------------

    async def join(self, member: Member, user: str, request: JoinRequest) -> None:
        """Seat ``member`` in the room and send ``joined``, the replay, then live messages."""
        local = self._rooms.setdefault(request.room, Room())
        local.users[member] = user
        local.joining[member] = deque()
        try:
            presence = await self.store.enter(request.room, user)
        except BaseException:
            self._unseat(request.room, local, member)
            raise
        try:
            after, limit = want(request.since[1] if request.since else None, request.history, self.settings.replay_max)
            window = await self.store.window(request.room, after, limit)
        except BaseException:
            self._unseat(request.room, local, member)
            await self.store.exit(request.room, user)
            raise
        member.send(protocol.joined(request.room, window.epoch, window.top, presence, request.request_id))
        await self._replay(member, request, window, local.joining.get(member, deque()))
        local.go_live(member)

    async def _replay(self, member: Member, request: JoinRequest, window: Window, buffered: Buffer) -> None:
        """The replay's gaps and messages, then what was published while joining, once each."""
        replay = plan(window, request.since)
        if replay.reset:
            member.send(protocol.reset(request.room, window.epoch, window.top))  # then live: top + 1 on
        for gap in replay.gaps:
            member.send(protocol.gap(request.room, gap.first, gap.last, gap.reason))
        for stored in replay.messages:
            await _paced(member, outgoing(stored.frame))
        while buffered:  # what came while joining, and while the replay waited for the client
            offset, message = buffered.popleft()
            if offset == 0 or offset > window.top:  # presence, or a message the window did not hold
                await _paced(member, message)

    async def leave(self, member: Member, user: str, room: str) -> None:
        local = self._rooms.get(room)
        if local is not None:
            self._unseat(room, local, member)
        await self.store.exit(room, user)

    def _unseat(self, room: str, local: Room, member: Member) -> None:
        local.remove(member)
        if not local.users:
            del self._rooms[room]

    async def say(self, room: str, user: str, text: str, say_id: str | None) -> tuple[int, bool]:
        return await self.store.append(room, user, text, say_id)

    async def history(self, room: str, before: int, limit: int) -> list[str]:
        return [stored.frame for stored in await self.store.before(room, before, limit)]


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
