"""What a client that joins a room gets before the live messages: the replay decision, pure.

A room's messages are numbered by offsets 1, 2, 3, ... in one sequence per epoch (a random id
the room gets when it is created, so a position from a history that no longer exists is never
mistaken for one that does: Centrifugo's stream position, offset plus epoch). A client that
resumes says where it was, ``since: {epoch, offset}``, and gets exactly what it missed, or is
told exactly what it cannot get:

- another epoch, or an offset above the room's top: ``gap`` ``reset`` with the epoch now in
  force and the top as its ``offset``, then live messages only (what was missed is unknown);
- the same epoch: every message in (offset, top], in order. The part no longer retained comes
  first as one ``gap`` ``trimmed``, and the part beyond ``replay_max`` as one ``gap`` ``limit``
  (the oldest part is skipped), each with exact bounds.

Which gives the invariant, per connection and room: ``msg`` offsets strictly increase, and
wherever one is not the previous plus one, the gaps just before it name exactly the offsets
skipped. The Socket.IO trap (recovery keyed on the last packet received fails when none was, or
when it was purged) does not arise: a position is a plain number in one sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

TRIMMED: Final = "trimmed"  # no longer in the room's history
LIMIT: Final = "limit"  # more than replay_max to replay: the oldest part is skipped
LOST: Final = "lost"  # published, but this process never received it and history no longer has it


@dataclass(frozen=True, slots=True)
class Stored:
    """One message as a room's history keeps it: its offset and its ``msg`` frame, encoded once."""

    offset: int
    frame: str
    size: int  # what it counts against the history's byte budget


@dataclass(frozen=True, slots=True)
class Gap:
    first: int
    last: int
    reason: str


@dataclass(frozen=True, slots=True)
class Window:
    """What a store says of a room at one instant: its position and its newest retained offsets."""

    epoch: str
    top: int  # the latest offset, 0 for none
    first: int  # the oldest offset still retained; top + 1 when none is
    newest: tuple[Stored, ...]  # the newest retained messages the join asked for, ascending, contiguous


@dataclass(frozen=True, slots=True)
class Replay:
    """Send ``gaps``, then ``messages``; or, when ``reset``, a reset and nothing."""

    reset: bool
    gaps: tuple[Gap, ...] = ()
    messages: tuple[Stored, ...] = ()


def want(since_offset: int | None, history: int | None, replay_max: int) -> tuple[int, int]:
    """What to ask the store for: the newest ``limit`` retained messages with offset > ``after``."""
    if since_offset is not None:
        return since_offset, replay_max or 1 << 62
    if history is not None:
        return 0, history
    return 0, 0  # live only


def plan(window: Window, since: tuple[str, int] | None) -> Replay:
    """The replay for a join: ``since`` is the client's (epoch, offset), None for history or live.

    ``window.newest`` is already what ``want`` asked for, so for ``history`` and live-only joins
    the plan is just that: no gap, the previous offset being the first one's predecessor.
    """
    if since is None:
        return Replay(False, (), window.newest)
    epoch, offset = since
    if epoch != window.epoch or offset > window.top:
        return Replay(True)
    gaps: list[Gap] = []
    start = offset + 1
    if start < window.first:
        gaps.append(Gap(start, window.first - 1, TRIMMED))
        start = window.first
    replayed = tuple(stored for stored in window.newest if stored.offset >= start)
    end = replayed[0].offset if replayed else window.top + 1
    if start < end:
        gaps.append(Gap(start, end - 1, LIMIT))
    return Replay(False, tuple(gaps), replayed)
