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

Bounds, all from settings:

- each room keeps exactly its latest ``history_messages`` messages;
- all rooms together keep at most ``history_max_bytes``: past it, the process's oldest
  messages go first, whichever room holds them (a global append order, :attr:`_order`);
- at most ``max_rooms`` rooms; an empty room with no message for ``room_idle_seconds`` is
  forgotten (swept when a room is entered, so a store with nobody in it holds no task);
- a say id is remembered per user and room for ``dedup_seconds``, and at most
  :data:`DEDUP_MAX` of them for the whole process (the oldest are forgotten first).

Epochs are random per room creation, so after a restart (memory gone) every position a client
still holds reads as another epoch: ``reset``, never a wrong replay.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from itertools import islice

from .. import frames
from ..replay import Stored, Window
from . import RoomLimit, StoreListener, StoreSettings

# What a retained message costs beyond its frame's UTF-8 bytes (the Stored object, its str's
# header, its slot in the room's deque and in the global order): counted against the byte budget
# so that history_max_bytes is close to the memory history really takes.
OVERHEAD = 240  # measured with tracemalloc: 232 bytes beyond the frame itself
# Say ids remembered at most, for all rooms: about 460 bytes each (tracemalloc), so 46 MB at most.
DEDUP_MAX = 100_000


class _History:
    """One room as the store keeps it: its epoch, its numbered messages, and who is present.

    Not the room's members (those are the engine's, engine/room.py): the presence here counts a
    user's connections in the room, which is what every member is told and a join is shown.
    """

    __slots__ = ("epoch", "first", "history", "top", "users")

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        self.top = 0
        self.first = 1  # the oldest offset retained (top + 1 when none is)
        self.history: deque[Stored] = deque()
        self.users: Counter[str] = Counter()  # user -> connections in the room

    def trim_oldest(self) -> int:
        """Forget the oldest retained message; the bytes it took."""
        stored = self.history.popleft()
        self.first = stored.offset + 1
        return stored.size


class MemoryStore:
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
        self._epochs = epochs  # a new random epoch per room created (docs/ makes them predictable)
        self._listener: StoreListener | None = None
        self._rooms: dict[str, _History] = {}
        self._idle: dict[str, float] = {}  # empty rooms -> since when, oldest first
        self._order: deque[tuple[_History, int]] = deque()  # every retained message, in append order
        self.bytes = 0  # what retained messages take, OVERHEAD included
        self.retained = 0  # how many messages all rooms retain
        # (room, user, say id) -> (the room as it was, first offset, expiry); oldest first
        self._dedup: OrderedDict[tuple[str, str, str], tuple[_History, int, float]] = OrderedDict()

    @property
    def healthy(self) -> bool:
        return True

    async def open(self, listener: StoreListener) -> None:
        self._listener = listener

    async def close(self) -> None:
        return None

    # --- presence -------------------------------------------------------------------------

    async def enter(self, room: str, user: str) -> list[str]:
        self._sweep()  # an idle room entered again is forgotten first: a new epoch, not old history
        state = self._rooms.get(room) or self._create(room)
        self._idle.pop(room, None)
        state.users[user] += 1
        if state.users[user] == 1:
            self._tell_presence(room, user, "join")
        return sorted(state.users)

    async def exit(self, room: str, user: str) -> None:
        state = self._rooms[room]
        state.users[user] -= 1
        if not state.users[user]:
            del state.users[user]
            self._tell_presence(room, user, "leave")
        if not state.users:
            self._idle[room] = self._clock()

    def _tell_presence(self, room: str, user: str, event: str) -> None:
        if self._listener is not None:
            self._listener.presence(room, user, event)

    def _create(self, room: str) -> _History:
        if self.settings.max_rooms and len(self._rooms) >= self.settings.max_rooms:
            raise RoomLimit(f"this server holds {len(self._rooms)} rooms, its limit")
        state = self._rooms[room] = _History(self._epochs())
        return state

    def _sweep(self) -> None:
        """Forget the rooms that have been empty (and so silent) for room_idle_seconds."""
        idle_seconds = self.settings.room_idle_seconds
        now = self._clock()
        while self._idle and idle_seconds:
            room, since = next(iter(self._idle.items()))
            if now - since < idle_seconds:
                break
            del self._idle[room]
            self._forget(self._rooms.pop(room))

    def _forget(self, state: _History) -> None:
        while state.history:
            self._trim(state)

    def _trim(self, state: _History) -> None:
        self.bytes -= state.trim_oldest()
        self.retained -= 1

    # --- history --------------------------------------------------------------------------

    async def window(self, room: str, after: int, limit: int) -> Window:
        state = self._rooms[room]
        count = min(limit, len(state.history), max(state.top - after, 0))
        newest = tuple(islice(state.history, len(state.history) - count, None))
        return Window(state.epoch, state.top, state.first, newest)

    async def before(self, room: str, before: int, limit: int) -> list[Stored]:
        state = self._rooms[room]
        end = min(max(before - state.first, 0), len(state.history))  # index of the first offset >= before
        return list(islice(state.history, max(end - limit, 0), end))

    async def append(self, room: str, user: str, text: str, say_id: str | None) -> tuple[int, bool]:
        """Publish, as one step of its own on the loop (see the module docstring); a say cancelled
        before its step ran is not published."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[int, bool]] = loop.create_future()
        loop.call_soon(self._append_step, done, room, user, text, say_id)
        return await done

    def _append_step(
        self, done: asyncio.Future[tuple[int, bool]], room: str, user: str, text: str, say_id: str | None
    ) -> None:
        if done.cancelled():
            return
        try:
            done.set_result(self._append(room, user, text, say_id))
        except Exception as error:  # an unencodable text, a bug in the listener: the say's to hear
            done.set_exception(error)

    def _append(self, room: str, user: str, text: str, say_id: str | None) -> tuple[int, bool]:
        state = self._rooms[room]
        if say_id is not None:
            first = self._seen(room, state, user, say_id)
            if first is not None:
                return first, False
        offset = state.top + 1
        frame = frames.msg(room, offset, self._wall_ms(), user, text, say_id)
        stored = Stored(offset, frame, len(frame.encode()) + OVERHEAD)  # encoded first: then numbered
        state.top = offset
        self._retain(state, stored)
        if say_id is not None:
            self._remember(room, state, user, say_id, offset)
        if self._listener is not None:
            self._listener.message(room, stored)
        return offset, True

    def _retain(self, state: _History, stored: Stored) -> None:
        state.history.append(stored)
        self._order.append((state, stored.offset))
        self.bytes += stored.size
        self.retained += 1
        keep = self.settings.history_messages
        while keep and len(state.history) > keep:
            self._trim(state)
        budget = self.settings.history_max_bytes
        while budget and self.bytes > budget and self._order:
            owner, offset = self._order.popleft()
            if owner.history and owner.history[0].offset == offset:  # else trimmed already
                self._trim(owner)
        if len(self._order) > 2 * self.retained + 1024:
            # Entries of messages a room trimmed by itself stay behind in the global order:
            # dropping them now and then keeps it within twice what is retained.
            self._order = deque((owner, offset) for owner, offset in self._order if offset >= owner.first)

    # --- dedup ----------------------------------------------------------------------------

    def _seen(self, room: str, state: _History, user: str, say_id: str) -> int | None:
        now = self._clock()
        while self._dedup:  # expired entries first: with one window for all, the oldest are in front
            key, (_, _, expiry) = next(iter(self._dedup.items()))
            if expiry > now:
                break
            del self._dedup[key]
        entry = self._dedup.get((room, user, say_id))
        # A room forgotten and created anew is another history: its ids are not the old one's.
        return entry[1] if entry is not None and entry[0] is state else None

    def _remember(self, room: str, state: _History, user: str, say_id: str, offset: int) -> None:
        key = (room, user, say_id)
        self._dedup.pop(key, None)  # a key assigned anew keeps its old place: expiry order needs the end
        self._dedup[key] = (state, offset, self._clock() + self.settings.dedup_seconds)
        while len(self._dedup) > DEDUP_MAX:
            self._dedup.popitem(last=False)
