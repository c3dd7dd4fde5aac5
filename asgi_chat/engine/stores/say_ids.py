"""The say ids the memory store remembers: a resent say is acknowledged, never published twice.

A client that lost its connection before a say's ``ack`` sends the say again with the same
``id`` (docs/rooms.md). Each id is remembered per room and uid for ``dedup_seconds``, and at most
``dedup_max`` of them for the whole process, the oldest forgotten first. An entry names its room's
epoch, never holds its state: a forgotten room's ids match nothing (its epoch is never used
again) and free nothing it held. The Redis store keeps the same in Redis (stores/bounds.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol


class SayIdSettings(Protocol):
    @property
    def dedup_seconds(self) -> float: ...
    @property
    def dedup_max(self) -> int: ...


class SayIds:
    """(room, uid, say id) -> (the room's epoch then, the first offset, expiry), oldest first."""

    def __init__(self, clock: Callable[[], float], settings: SayIdSettings) -> None:
        self._clock = clock
        self._settings = settings
        self._entries: OrderedDict[tuple[str, str, str], tuple[str, int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def first(self, room: str, epoch: str, uid: str, say_id: str) -> int | None:
        """The offset this say id was first published at in this room's epoch, if remembered."""
        self.expire()
        entry = self._entries.get((room, uid, say_id))
        # A room forgotten and created anew is another history (another epoch): its ids are not the old one's.
        return entry[1] if entry is not None and entry[0] == epoch else None

    def expire(self) -> None:
        now = self._clock()
        while self._entries:  # with one window for all, the oldest are in front
            key, (_, _, expiry) = next(iter(self._entries.items()))
            if expiry > now:
                break
            del self._entries[key]

    def remember(self, room: str, epoch: str, uid: str, say_id: str, offset: int) -> None:
        """``room`` is the room's own copy of its name: one string for all its ids."""
        key = (room, uid, say_id)
        self._entries.pop(key, None)  # a key assigned anew keeps its old place: expiry order needs the end
        self._entries[key] = (epoch, offset, self._clock() + self._settings.dedup_seconds)
        limit = self._settings.dedup_max
        while limit and len(self._entries) > limit:
            self._entries.popitem(last=False)
