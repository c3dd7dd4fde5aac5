"""One room as the memory store keeps it (stores/memory.py): its epoch, its numbered messages,
and who is present.
"""

from __future__ import annotations

from collections import Counter, deque

from ..people import Person
from ..replay import Stored


class RoomState:
    """One room as the store keeps it: its epoch, its numbered messages, and who is present.

    Not the room's members (those are the engine's, engine/room.py): the presence here counts a
    person's connections in the room (by uid), which is what every member is told and a join is
    shown.
    """

    __slots__ = ("epoch", "first", "history", "name", "people", "top", "users")

    def __init__(self, name: str, epoch: str) -> None:
        self.name = name  # the one copy of the name every key of the store's shares
        self.epoch = epoch
        self.top = 0
        self.first = 1  # the oldest offset retained (top + 1 when none is)
        self.history: deque[Stored] = deque()
        self.users: Counter[str] = Counter()  # uid -> connections in the room
        self.people: dict[str, Person] = {}  # uid -> the person, as entered last

    def trim_oldest(self) -> int:
        """Forget the oldest retained message; the bytes it took."""
        stored = self.history.popleft()
        self.first = stored.offset + 1
        return stored.size
