"""The memory store's moderation: kicks, bans, mutes, redactions and disconnects, in one process.

A mixin of :class:`~asgi_chat.engine.stores.memory.MemoryStore`, kept apart because it is a
concern of its own: what a moderator does to a room and its people (endpoints/moderation.py
says what each action means). The store's rule holds here too: the listener hears of a kick, a
redaction or a disconnect on a turn of the store's own (``loop.call_soon``), never from inside
the call the engine made; the presence a kick takes away is told within it, as ``exit`` does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from .. import frames
from ..people import Person
from ..replay import Stored
from . import Forbidden, StoreListener
from .memory_room import RoomState
from .sanctions import Sanctions


class MemoryModeration:
    """Bans and mutes (:class:`Sanctions`), and the actions that reach the listener."""

    # What the store itself holds (memory.py): declared here for the methods below.
    _rooms: dict[str, RoomState]
    _listener: StoreListener | None
    bans: Sanctions
    mutes: Sanctions
    bytes: int

    def _tell_presence(self, room: str, person: Person, event: str) -> None:
        raise NotImplementedError

    def _emptied(self, state: RoomState) -> None:
        raise NotImplementedError

    def _size(self, frame: str) -> int:
        raise NotImplementedError

    # --- checks the store makes ---------------------------------------------------------------

    def check_ban(self, room: str, uid: str) -> None:
        if seconds := self.bans.remaining(room, uid):
            raise Forbidden(f"banned from room {room} for {seconds:.0f} more seconds")

    def check_mute(self, room: str, uid: str) -> None:
        if seconds := self.mutes.remaining(room, uid):
            raise Forbidden(f"muted in room {room} for {seconds:.0f} more seconds")

    # --- the actions --------------------------------------------------------------------------

    async def kick(self, room: str, uid: str, by: str, reason: str, ban_seconds: float = 0) -> None:
        if ban_seconds:
            self.bans.impose(room, uid, ban_seconds)
        state = self._rooms.get(room)
        if state is not None and uid in state.users:
            del state.users[uid]  # every connection of it at once: one leave, as its last exit would
            self._tell_presence(room, state.people.pop(uid), "leave")
            if not state.users:
                self._emptied(state)
        self._soon(lambda listener: listener.kicked(room, uid, by, reason))

    async def unban(self, room: str, uid: str) -> None:
        self.bans.lift(room, uid)

    async def mute(self, room: str, uid: str, seconds: float) -> None:
        self.mutes.impose(room, uid, seconds)

    async def unmute(self, room: str, uid: str) -> None:
        self.mutes.lift(room, uid)

    async def redact(self, room: str, offset: int, by: str) -> bool:
        state = self._rooms.get(room)
        index = offset - state.first if state is not None else -1
        if state is None or not 0 <= index < len(state.history):
            return False
        old = state.history[index]
        frame = frames.redacted_msg(room, offset, json.loads(old.frame)["ts"])
        state.history[index] = Stored(offset, frame, self._size(frame))
        self.bytes += state.history[index].size - old.size
        self._soon(lambda listener: listener.redacted(room, offset, by))
        return True

    async def disconnect(self, uid: str, reason: str) -> None:
        self._soon(lambda listener: listener.disconnected(uid, reason))

    def _soon(self, tell: Callable[[StoreListener], None]) -> None:
        listener = self._listener
        if listener is not None:
            asyncio.get_running_loop().call_soon(tell, listener)
