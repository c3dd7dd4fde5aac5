"""The memory store: rooms, offsets and history in this process, bounded.

A say travels one way (stores/__init__.py): ``append`` runs as one step of its own on the event
loop (``loop.call_soon``), and waits for it. Nothing in a step awaits, so each is atomic, as the
store interface asks, and:

- the listener (the rooms engine) is never called from inside a call the engine made;
- steps run first in, first out: the listener hears a room's messages in offset order;
- a message is numbered and handed over in the same step, so a join's ``window`` never holds a
  message the listener has yet to hear (which would reach the joiner twice);
- the ``msg`` frame is encoded before the offset is taken: a text with no UTF-8 (a lone
  surrogate) fails its say and takes no offset, so nobody sees a hole.

Presence is told within ``enter`` and ``exit``, which never wait, so a join or leave cut short
cannot part a count from its announcement (stores/__init__.py says why a joiner is safe).

Bounds, all from settings, counted as what CPython really holds (measured with ``tracemalloc``
by tests/unit/test_memory_store_memory.py, which fills the store with the worst inputs):

- each room keeps exactly its latest ``history_messages`` messages;
- all rooms together keep at most ``history_max_bytes``: past it, the process's oldest
  messages go first, whichever room holds them (a global append order, :attr:`_order`). A
  message counts ``sys.getsizeof`` of its frame (a str: 1, 2 or 4 bytes a character, by its
  widest one, so one emoji makes a 4000-character line 16 KB) plus :data:`OVERHEAD`;
- at most ``max_rooms`` rooms with members or history. An empty room with no history is
  forgotten at once; one with history, once silent for ``room_idle_seconds`` (swept when a room
  is entered, so a store with nobody in it holds no task), or sooner when a new room needs its
  slot: the one idle longest gives way. A new room is refused only when every room has members;
- a say id is remembered per uid and room for ``dedup_seconds``, and at most ``dedup_max`` of
  them for the whole process (say_ids.py).

Epochs are random per room creation, so after a restart (memory gone) every position a client
still holds reads as another epoch: ``reset``, never a wrong replay.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections import deque
from collections.abc import Callable
from itertools import islice

from .. import frames
from ..people import Person
from ..replay import Stored, Window
from . import Bound, RoomLimit, RoomSummary, StoreListener, StoreSettings, listed
from .memory_moderation import MemoryModeration
from .memory_room import RoomState
from .sanctions import Sanctions
from .say_ids import SayIds

# What a retained message costs beyond sys.getsizeof(frame), counted against the byte budget so
# that history_max_bytes is the memory history really takes (tracemalloc, CPython 3.11): its
# Stored object, two ints, its slots in its room's deque and in the global order (192 bytes), and
# its share of the stale entries the global order may hold: at most one per four retained, of
# 157 bytes each (the entry, its int, the epoch of a room forgotten since).
OVERHEAD = 232
# What the other bounds cost at worst (same measure; a 64-character room name, a person with a
# 128-emoji uid and a 32-emoji name, a 64-emoji say id, none shared): docs/rooms.md's worst case
# is made of these three. A say id keeps its uid (dedup is per uid), a room its person.
SAY_ID_BYTES = 1500  # one say id remembered, its room forgotten since (measured: 1,400 to 1,490)
ROOM_BYTES = 2400  # a room beyond its history, with one member (measured: 2,310 to 2,360)


class MemoryStore(MemoryModeration):
    def __init__(
        self,
        settings: StoreSettings,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        epochs: Callable[[], str] = lambda: secrets.token_hex(8),
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._wall_ms = wall_ms
        # A new epoch per room created, never one used before (rooms are found by it): random, but
        # docs/ makes them predictable.
        self._epochs = epochs
        self._listener: StoreListener | None = None
        self._rooms: dict[str, RoomState] = {}
        # The same rooms by epoch. What outlives a room (its say ids, its entries in the global
        # order) names it by its epoch, never holds its state: forgetting a room frees it at once.
        self._by_epoch: dict[str, RoomState] = {}
        self._idle: dict[str, float] = {}  # empty rooms -> since when, oldest first
        self._order: deque[tuple[str, int]] = deque()  # (epoch, offset) of every message retained, in append order
        self.bytes = 0  # what retained messages take, OVERHEAD included
        self.retained = 0  # how many messages all rooms retain
        self._dedup = SayIds(clock, settings)  # say ids remembered (say_ids.py)
        self.bans = Sanctions(clock)  # (room, uid) under a moderator's ban: enter is Forbidden
        self.mutes = Sanctions(clock)  # (room, uid) muted: append is Forbidden (memory_moderation.py)

    @property
    def healthy(self) -> bool:
        return True

    def bounds(self) -> tuple[Bound, ...]:
        """Exact: what the store holds once what has expired is let go."""
        self._sweep()
        self._dedup.expire()
        settings = self.settings
        return (
            Bound("rooms", len(self._rooms), settings.max_rooms),
            Bound("history_bytes", self.bytes, settings.history_max_bytes),
            Bound("say_ids", len(self._dedup), settings.dedup_max),
        )

    async def open(self, listener: StoreListener) -> None:
        self._listener = listener

    async def close(self) -> None:
        return None

    # --- presence -------------------------------------------------------------------------

    async def enter(self, room: str, person: Person) -> list[Person]:
        self.check_ban(room, person.uid)
        self._sweep()  # an idle room entered again is forgotten first: a new epoch, not old history
        state = self._rooms.get(room) or self._create(room)
        self._idle.pop(room, None)
        uid = person.uid
        state.users[uid] += 1
        state.people[uid] = person
        if state.users[uid] == 1:
            self._tell_presence(room, person, "join")
        return listed(state.people.values())

    async def exit(self, room: str, person: Person) -> None:
        state = self._rooms[room]
        uid = person.uid
        state.users[uid] -= 1
        if not state.users[uid]:
            del state.users[uid]
            self._tell_presence(room, state.people.pop(uid, person), "leave")
        if not state.users:
            self._emptied(state)

    def _emptied(self, state: RoomState) -> None:
        """The room's last person left (or was put out)."""
        if state.history:
            self._idle[state.name] = self._clock()  # kept for a resume, until it must give way
        else:
            self._forget(state)  # nothing in it worth a slot: holding it would lock others out

    async def present(self, room: str) -> list[Person]:
        state = self._rooms.get(room)
        return listed(state.people.values()) if state is not None else []

    async def rooms(self, after: str, limit: int) -> list[RoomSummary]:
        self._sweep()
        names = sorted(name for name in self._rooms if name > after)[:limit]
        return [RoomSummary(name, len(self._rooms[name].users), self._rooms[name].top) for name in names]

    def _tell_presence(self, room: str, person: Person, event: str) -> None:
        if self._listener is not None:
            self._listener.presence(room, person, event)

    def _create(self, room: str) -> RoomState:
        limit = self.settings.max_rooms
        while limit and len(self._rooms) >= limit:
            if not self._idle:  # every room has members: none may be taken from them
                raise RoomLimit(f"this server holds {len(self._rooms)} rooms with members, its limit")
            self._forget(self._rooms[next(iter(self._idle))])  # the room idle longest gives way
        state = self._rooms[room] = RoomState(room, self._epochs())
        self._by_epoch[state.epoch] = state
        return state

    def _sweep(self) -> None:
        """Forget the rooms that have been empty (and so silent) for room_idle_seconds."""
        idle_seconds = self.settings.room_idle_seconds
        now = self._clock()
        while self._idle and idle_seconds:
            room, since = next(iter(self._idle.items()))
            if now - since < idle_seconds:
                break
            self._forget(self._rooms[room])

    def _forget(self, state: RoomState) -> None:
        """Forget an empty room: its history and bytes go now; its say ids name its epoch, which no
        room will have again, so they match nothing (and expire in turn)."""
        del self._rooms[state.name]
        del self._by_epoch[state.epoch]
        self._idle.pop(state.name, None)
        while state.history:
            self._trim(state)

    def _trim(self, state: RoomState) -> None:
        self.bytes -= state.trim_oldest()
        self.retained -= 1

    # --- history --------------------------------------------------------------------------

    async def window(self, room: str, after: int, limit: int) -> Window:
        state = self._rooms[room]
        count = min(limit, len(state.history), max(state.top - after, 0))
        newest = tuple(islice(state.history, len(state.history) - count, None))
        return Window(state.epoch, state.top, state.first, newest)

    async def before(self, room: str, before: int, limit: int) -> list[Stored]:
        state = self._rooms.get(room)
        if state is None:  # a room nobody entered (the HTTP API reads any): nothing retained
            return []
        end = min(max(before - state.first, 0), len(state.history))  # index of the first offset >= before
        return list(islice(state.history, max(end - limit, 0), end))

    async def append(self, room: str, person: Person, text: str, say_id: str | None) -> tuple[int, bool]:
        """Publish, as one step of its own on the loop (see the module docstring); a say cancelled
        before its step ran is not published."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[int, bool]] = loop.create_future()
        loop.call_soon(self._append_step, done, room, person, text, say_id)
        return await done

    def _append_step(
        self, done: asyncio.Future[tuple[int, bool]], room: str, person: Person, text: str, say_id: str | None
    ) -> None:
        if done.cancelled():
            return
        try:
            done.set_result(self._append(room, person, text, say_id))
        except Exception as error:  # an unencodable text, a bug in the listener: the say's to hear
            done.set_exception(error)

    def _append(self, room: str, person: Person, text: str, say_id: str | None) -> tuple[int, bool]:
        # A say comes from a member, so its room exists; a publish from the HTTP API (web/api.py)
        # may be the first word in a room: the room is created (within max_rooms, or RoomLimit),
        # and, with nobody in it, idle from now, as on Redis (APPEND opens the room).
        state = self._rooms.get(room)
        if state is not None:
            return self._append_to(state, person, text, say_id)
        state = self._create(room)
        try:
            return self._append_to(state, person, text, say_id)
        except BaseException:  # muted, or a text with no UTF-8: nothing said, no room kept
            self._forget(state)
            raise

    def _append_to(self, state: RoomState, person: Person, text: str, say_id: str | None) -> tuple[int, bool]:
        room = state.name
        self.check_mute(room, person.uid)
        if say_id is not None:
            first = self._dedup.first(room, state.epoch, person.uid, say_id)
            if first is not None:
                return first, False
        offset = state.top + 1
        frame = frames.msg(room, offset, self._wall_ms(), person, text, say_id)
        frame.encode()  # raises for a text with no UTF-8 (a lone surrogate): before it is numbered
        stored = Stored(offset, frame, self._size(frame))
        state.top = offset
        self._retain(state, stored)
        if say_id is not None:
            self._dedup.remember(state.name, state.epoch, person.uid, say_id, offset)
        if not state.users and self._rooms.get(room) is state:  # an empty room (the API): silent since now
            self._idle.pop(room, None)
            self._idle[room] = self._clock()
        if self._listener is not None:
            self._listener.message(room, stored)
        return offset, True

    def _retain(self, state: RoomState, stored: Stored) -> None:
        state.history.append(stored)
        self._order.append((state.epoch, stored.offset))
        self.bytes += stored.size
        self.retained += 1
        keep = self.settings.history_messages
        while keep and len(state.history) > keep:
            self._trim(state)
        budget = self.settings.history_max_bytes
        while budget and self.bytes > budget and self._order:
            owner = self._holder(*self._order.popleft())
            if owner is not None:  # the oldest in the order is its room's oldest too
                self._trim(owner)
                if not owner.history and not owner.users:
                    self._forget(owner)  # an idle room with nothing left: it holds no slot
        if len(self._order) > self.retained + self.retained // 4 + 1024:
            # Entries of messages trimmed otherwise (a room keeping its latest, a room forgotten)
            # stay behind in the global order: dropping them now and then keeps them within a
            # quarter of what is retained (which OVERHEAD counts), at a few steps per append.
            self._order = deque(entry for entry in self._order if self._holder(*entry) is not None)

    def _size(self, frame: str) -> int:
        return sys.getsizeof(frame) + OVERHEAD  # what Python holds for it (the module docstring)

    def _holder(self, epoch: str, offset: int) -> RoomState | None:
        """The room that still retains this message of the global order, if any."""
        owner = self._by_epoch.get(epoch)
        return owner if owner is not None and offset >= owner.first else None
