"""Presence, batched: a room's joins and leaves reach each member as at most one frame per window.

Sent one frame per change, presence is the costliest thing a room does at scale: each join tells
every member already there, so N people joining one room (a deploy's mass reconnect) make
N x (N - 1) / 2 frames, N squared. Here a room's changes collect for ``interval`` seconds
(``ASGI_CHAT_PRESENCE_INTERVAL``) and go out as one frame per member::

    {"type": "presence", "room": R, "join": [{"uid": "u1", "user": "ann", "guest": false}, ...],
     "leave": [{"uid": "u2", "user": "bob", "guest": false}]}

so a storm costs members x windows frames, not members squared. A change after a quiet
window goes out at once (the window starts then): a lone join is shown without delay.

Presence is a person's (engine/people.py), counted by uid: two people called Alice are two
presences, and each is told of the other; one Alice in two tabs is one. Changes are kept per
uid, with the person as last told, whose ``shown()`` the frame carries.

What a member is told must leave its list right, whatever the timing. Two kinds of member:

- **settled**: its list (from ``joined``) predates the window. It gets the *net* change: a user
  who joined and left within the window (or left and came back) is in neither list, because that
  member's list was right about them before and is right after.
- **fresh**: its ``joined`` list was read during the window (or is still being read). Its list
  may already show some of the window's changes and not others, so it gets, for every user who
  changed, the *latest* event: applied to its list as set operations (join adds, leave removes,
  either is harmless when already so), the last event about each user wins, which is right
  whenever it was read. A net change would be wrong for it: a user who joined before the read
  and left after it would stay on its list.

A member is never told of its own uid (its list says it is there), though it is told of another
person of the same name: frames are encoded once per kind, plus once for each member whose own
uid changed, so a flush costs O(members + changes).
Members that joined with ``"presence": false`` (a big room's viewers) get no presence frames.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from . import frames
from .member import Member, Outgoing, outgoing
from .people import Person
from .room import Room

JOIN = "join"
LEAVE = "leave"


class Changes:
    """A room's presence events since its last frame: the first and the last event per uid, and
    each person as last told (a frame shows their name as of then)."""

    __slots__ = ("first", "last", "people")

    def __init__(self) -> None:
        self.first: dict[str, str] = {}  # uid -> its first event in the window
        self.last: dict[str, str] = {}  # uid -> its latest event
        self.people: dict[str, Person] = {}  # uid -> the person, as last told

    def add(self, person: Person, event: str) -> None:
        uid = person.uid
        self.first.setdefault(uid, event)
        self.last[uid] = event
        self.people[uid] = person

    def __bool__(self) -> bool:
        return bool(self.last)

    def net(self) -> dict[str, str]:
        """For a settled member: only uids whose state differs now from the window's start.
        A uid's first event says what it was before it (a join: absent), the last what it is
        now; when the two are the same event, the state changed."""
        return {uid: event for uid, event in self.last.items() if self.first[uid] == event}

    def latest(self) -> dict[str, str]:
        """For a fresh member: every uid that changed, by its last event."""
        return dict(self.last)


def _by_name(person: Person) -> tuple[str, str]:
    return person.name, person.uid


def batch(room: str, events: dict[str, str], people: dict[str, Person]) -> frames.PresenceBatch:
    """``events`` as one frame, every person encoded once, from which each member's is cut."""
    joins = sorted((people[uid] for uid, event in events.items() if event == JOIN), key=_by_name)
    leaves = sorted((people[uid] for uid, event in events.items() if event == LEAVE), key=_by_name)
    return frames.PresenceBatch(room, joins, leaves)


class Presence:
    """One room's presence frames in this process: what changed, and who is fresh or quiet."""

    __slots__ = ("_clock", "_sent_at", "_timer", "changes", "fresh", "interval", "quiet", "reading", "room")

    def __init__(self, room: str, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.room = room
        self.interval = interval
        self.changes = Changes()
        self.fresh: set[Member] = set()  # their list was read since the last frame, or is being read
        self.reading: set[Member] = set()  # their join has not read the list yet
        self.quiet: set[Member] = set()  # joined with "presence": false
        self._clock = clock
        self._sent_at = float("-inf")
        self._timer: asyncio.TimerHandle | None = None

    # --- members --------------------------------------------------------------------------

    def seated(self, member: Member, *, quiet: bool) -> None:
        self.fresh.add(member)
        self.reading.add(member)
        if quiet:
            self.quiet.add(member)

    def read(self, member: Member) -> None:
        """``member``'s join has read the room's list: fresh until the next frame goes out."""
        self.reading.discard(member)

    def gone(self, member: Member) -> None:
        self.fresh.discard(member)
        self.reading.discard(member)
        self.quiet.discard(member)

    def close(self) -> None:
        """The room has no member here any more: nothing is pending for anyone."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- changes --------------------------------------------------------------------------

    def changed(self, local: Room, person: Person, event: str) -> None:
        """A person joined or left: sent now after a quiet window, else when the window ends."""
        self.changes.add(person, event)
        if self._timer is not None:
            return
        wait = self._sent_at + self.interval - self._clock()
        if wait <= 0:
            self.flush(local)
        else:
            self._timer = asyncio.get_running_loop().call_later(wait, self._window_ended, local)

    def _window_ended(self, local: Room) -> None:
        self._timer = None
        self.flush(local)

    def flush(self, local: Room) -> None:
        """Each member its frame of the window's changes (see the module docstring), once."""
        changes, self.changes = self.changes, Changes()
        self._sent_at = self._clock()
        if changes:
            self._send(local, changes)
        self.fresh = set(self.reading)  # the others' lists are settled now

    def _send(self, local: Room, changes: Changes) -> None:
        kinds = {False: changes.net(), True: changes.latest()}
        batches: dict[bool, frames.PresenceBatch] = {}  # each kind's frame, encoded once
        made: dict[tuple[bool, str | None], Outgoing | None] = {}
        for member, uid in local.users.items():  # each member here, by the uid it is in under
            if member in self.quiet:
                continue
            fresh = member in self.fresh
            key = (fresh, uid if uid in changes.last else None)
            if key not in made:
                kind = batches.get(fresh) or batches.setdefault(fresh, batch(self.room, kinds[fresh], changes.people))
                text = kind.text(key[1])
                made[key] = outgoing(text) if text is not None else None
            message = made[key]
            if message is None:
                continue
            buffer = local.joining.get(member)
            if buffer is None:
                member.offer(message)
            else:  # in order with its replay: after it (rooms.py)
                buffer.append((0, message))
