"""Where the client is in each room, and what it lets through: the exactly-once rule, pure.

The server numbers a room's messages 1, 2, 3, ... in one sequence per *epoch*; a client that
resumes with ``since: {epoch, offset}`` gets every later message once, in order, or a ``gap``
naming exactly the offsets it cannot have (docs/rooms.md, "Resume, exactly"). The client keeps
its side of that promise here: one :class:`Position` per room, the highest offset its user has
seen (or been told is lost) in the current epoch.

- a message at or below that offset was already yielded (a replay overlapping what came live,
  or a say's own line seen twice): it is dropped, never yielded twice;
- a gap moves the position past the offsets it names, so they are not asked for again;
- a ``reset`` gap moves the position into the new epoch, at the offset the server gives;
- the epoch is learnt from the first ``joined`` only, never from a later one: a resume's
  ``joined`` in another epoch is followed by a ``reset`` gap, and taking its epoch before that
  gap arrives would pair a new epoch with an old offset, which the server could take as valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .events import Gap, Joined, Message


@dataclass(slots=True)
class Position:
    """One room's position: its epoch (None until the first ``joined``) and its last offset."""

    epoch: str | None = None
    last: int = 0

    def join_fields(self, history: int | None) -> dict[str, Any]:
        """What a ``join`` request carries: ``since`` once the room was joined before, else the
        first join's own wish (the last ``history`` messages, or live messages only)."""
        if self.epoch is not None:
            return {"since": {"epoch": self.epoch, "offset": self.last}}
        return {} if history is None else {"history": history}

    def joined(self, event: Joined, history: int | None) -> None:
        """A ``joined`` frame. On the first, the position starts where the replay will start: the
        room's top less the history asked for (so a drop in the middle of that replay resumes at
        the next message of it, not at the top)."""
        if self.epoch is None:
            self.epoch = event.epoch
            self.last = max(0, event.offset - (history or 0))

    def admit(self, event: Message | Gap) -> bool:
        """Whether to yield ``event``; the position moves past it when it is yielded."""
        if isinstance(event, Message):
            if event.offset <= self.last:
                return False  # already yielded: exactly once
            self.last = event.offset
            return True
        if event.reset:
            assert event.epoch is not None
            assert event.offset is not None
            self.epoch, self.last = event.epoch, event.offset
            return True
        assert event.last is not None
        if event.last <= self.last:
            return False  # offsets already seen or already reported lost
        self.last = event.last
        return True
