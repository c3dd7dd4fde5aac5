"""A room's members in this process: the engine's one registry of who is in which chat.

Both chats keep their members in a :class:`Room`: each room of ``asgi-chat.v1`` is one
(rooms.py), and the tutorial chat is one more (hub.py). A Room knows

- each member and the name it is in under (a room's: its person's uid, engine/people.py; the
  tutorial's: ``client #7``), and how many members each name has here: a name has left when its
  last member here has (a user's second tab, a page that reconnects before its old connection
  was seen to drop);
- the members still joining, with what reaches the room meanwhile (rooms.py: a joiner gets its
  replay first, then this, in offset order);
- the snapshot a line is offered to, :attr:`Room.live`: an immutable tuple of the members not
  joining, made again (copy-on-write) only on the first line after a join or a leave. So a line
  costs no copy, and a join or leave never disturbs a line on its way: the fan-out keeps the
  snapshot it was given.

What a Room is not, and why those stay apart:

- the room's history, offsets and presence: the store's (stores/), one truth for every process
  that shares it, where a Room is only this process's side of it;
- the fan-out's registry (fanout.py), every member of the process whatever chat it is in: it
  exists for the send watchdog, which sweeps them all, and the one place that drops a slow one.
"""

from __future__ import annotations

from collections import Counter, deque

from .member import Member, Outgoing

Buffer = deque[tuple[int, Outgoing]]  # what reaches a room while a member joins: (offset, frame), 0: presence


class Room:
    """This process's members of one room (or of the tutorial chat)."""

    __slots__ = ("_live", "joining", "names", "users")

    def __init__(self) -> None:
        self.users: dict[Member, str] = {}  # member -> the name (rooms: uid) it is in under, in the order they came
        self.names: Counter[str] = Counter()  # name -> its members here
        self.joining: dict[Member, Buffer] = {}  # members not live yet -> what reached the room meanwhile
        self._live: tuple[Member, ...] | None = ()  # the snapshot; None: made again at the next line

    def seat(self, member: Member, name: str, *, joining: bool = False) -> None:
        """``member`` is in the room as ``name``: live at once, or ``joining`` until :meth:`go_live`."""
        self.users[member] = name
        self.names[name] += 1
        if joining:
            self.joining[member] = deque()
        else:
            self._live = None

    def go_live(self, member: Member) -> None:
        self.joining.pop(member, None)
        self._live = None

    def remove(self, member: Member) -> bool:
        """``member`` is out of the room; True when it was the last one of its name here."""
        name = self.users.pop(member, None)
        if name is None:
            return False
        self.joining.pop(member, None)
        self._live = None
        self.names[name] -= 1
        if self.names[name]:
            return False
        del self.names[name]
        return True

    @property
    def live(self) -> tuple[Member, ...]:
        """The members a line goes straight to, as an immutable snapshot (see the module docstring)."""
        if self._live is None:
            joining = self.joining
            self._live = tuple(m for m in self.users if m not in joining) if joining else tuple(self.users)
        return self._live
