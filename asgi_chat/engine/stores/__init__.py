"""Room stores: where a room's offsets, history, dedup and presence live.

The rooms engine (engine/rooms.py) asks a :class:`RoomStore` for everything that must be one
truth for all who share a room; the store tells the engine what happens through a
:class:`StoreListener`. Two implementations have this shape: the memory store (one process,
memory.py) and the Redis store (every process that shares a Redis server), for which the
interface is drawn: each call may wait on the network, and what is published reaches the
listener later, from elsewhere.

A say travels one way::

    endpoint (parsed once) ─▶ Rooms.say ─▶ store.append (offset, history: all or nothing)
        the store, on a turn of its own ─▶ listener.message ─▶ every member's outbox ─▶ send
    append returns ─▶ Rooms.say answers the sender: ack

The rules every store keeps:

- People are :class:`~asgi_chat.engine.people.Person`: presence is counted per ``uid`` (two
  people of one name are two presences, one person's two tabs one), listed sorted by name then
  uid, and a person's latest name and guest flag are what a list shows.
- ``append`` assigns the offset, appends to history and publishes in one atomic step, so a
  room's offsets are one sequence, and a say ``id`` already used by that person (their uid) in
  that room within the dedup window is not published again (its first offset is returned);
  nobody's id pre-empts another uid's. An offset is assigned only to a message that is encoded
  and kept: a say that fails takes no offset.
- ``append`` never calls the listener itself: the engine is not re-entered while its call is
  on the way down. The listener hears the message on a turn of the store's own (the memory
  store: a step of its own on the event loop, ``loop.call_soon``, first in first out; Redis: the
  link's listener task, once the message has come back through the room's feed), and ``append``
  returns once it has. The ``ack`` is sent after ``append`` returns, through the same outbox as
  the ``msg``, so on either store the sender gets its own ``msg`` first, then the ``ack``.
- ``enter`` comes before ``window``: a process sees every message published after it entered,
  so a join that reads the window after entering misses nothing in between. What the listener
  hears while a member joins reaches that member's buffer, never the member itself: rooms.py
  merges it after the replay. That includes what a join's own calls tell: the memory store
  announces presence within ``enter`` and ``exit`` (which never wait, so a join or leave cut
  short cannot part a count from its announcement), and on Redis a first ``window`` hands over
  the messages heard before it, or a ``reset`` it finds.
- A room's epoch changes only when its history is gone (memory: the room was forgotten).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ..people import Person
from ..replay import Stored, Window


def listed(people: Iterable[Person]) -> list[Person]:
    """People in the order every store lists them: by name, then uid."""
    return sorted(people, key=lambda person: (person.name, person.uid))


class StoreSettings(Protocol):
    """The bounds a store keeps, as it reads them (``ASGI_CHAT_*``: ops/settings.py's Settings has them)."""

    @property
    def max_rooms(self) -> int: ...
    @property
    def room_idle_seconds(self) -> float: ...
    @property
    def history_messages(self) -> int: ...
    @property
    def history_max_bytes(self) -> int: ...
    @property
    def dedup_seconds(self) -> float: ...
    @property
    def presence_timeout(self) -> float: ...
    @property
    def dedup_max(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Bound:
    """One bound a store keeps, as it stands: shown in /healthz and /metrics."""

    name: str  # "rooms", "history_bytes", "say_ids"
    used: int
    limit: int  # 0: off

    @property
    def full(self) -> bool:
        """At its limit: the next one makes room by forgetting the oldest (or, for rooms with
        members, is refused)."""
        return bool(self.limit) and self.used >= self.limit


@dataclass(frozen=True, slots=True)
class RoomSummary:
    """One room as a list of rooms shows it (the HTTP API's ``GET /api/v1/rooms``)."""

    room: str
    people: int  # uids present (people, not connections)
    top: int  # the latest offset, 0 for none


class RoomLimit(Exception):
    """The store holds as many rooms as it may (``ASGI_CHAT_MAX_ROOMS``)."""


class StoreUnavailable(Exception):
    """The store cannot be reached now: say and join answer ``unavailable``."""


class Forbidden(Exception):
    """A moderator's ban (``enter``) or mute (``append``) holds for this uid in this room: the
    request is answered ``forbidden``; the message says for how long."""


class StoreListener(Protocol):
    def message(self, room: str, stored: Stored) -> None:
        """A message was published in ``room``: deliver it to this process's members."""

    def presence(self, room: str, person: Person, event: str) -> None:
        """``person``'s first connection (of their uid) entered (``join``) or last one left
        (``leave``) ``room``."""

    def gap(self, room: str, first: int, last: int, reason: str) -> None:
        """Offsets ``first`` to ``last`` of ``room`` will not be delivered here (``lost``)."""

    def reset(self, room: str, epoch: str, offset: int) -> None:
        """``room``'s history is gone and a new epoch began: positions of the old one mean nothing.
        What the listener hears of the room next is ``epoch``'s offset ``offset + 1`` on."""

    def kicked(self, room: str, uid: str, by: str, reason: str) -> None:
        """A moderator ``by`` put ``uid`` out of ``room``: its connections here leave the room, told
        so. The store has already taken the uid's presence out of the room (one leave announced),
        so the engine must not ``exit`` for them."""

    def redacted(self, room: str, offset: int, by: str) -> None:
        """Message ``offset`` of ``room`` lost its text and user (a moderator ``by``)."""

    def disconnected(self, uid: str, reason: str) -> None:
        """Every connection of ``uid`` here must close (4403): a moderator, or the operator."""


class RoomStore(Protocol):
    @property
    def healthy(self) -> bool:
        """False while the store cannot be reached (shown in /healthz and /metrics)."""

    def bounds(self) -> tuple[Bound, ...]:
        """The store's bounds (rooms, history bytes, say ids) as last known here, without waiting:
        memory's exact, Redis' as of its latest reply."""

    async def open(self, listener: StoreListener) -> None:
        """Start telling ``listener`` what happens; idempotent."""

    async def close(self) -> None:
        """Stop, and stop every task the store started; idempotent."""

    async def enter(self, room: str, person: Person) -> list[Person]:
        """One more connection of ``person`` (their uid) in ``room`` (creating it, or raising
        RoomLimit); the room's people afterwards, :func:`listed`. The first connection of a uid is
        announced; the person entered last is how their uid is shown."""

    async def exit(self, room: str, person: Person) -> None:
        """One connection fewer of ``person``'s uid; its last one is announced as a leave."""

    async def present(self, room: str) -> list[Person]:
        """The people in ``room`` now (on every process that shares the store), :func:`listed`."""

    # --- moderation: every call below reaches every process that shares the store ----------

    async def kick(self, room: str, uid: str, by: str, reason: str, ban_seconds: float = 0) -> None:
        """``uid`` out of ``room``: its presence there removed (one leave announced), and every
        process's listener told (``kicked``) on a turn of its own. With ``ban_seconds``, its
        ``enter`` of the room raises :class:`Forbidden` that long, across reconnects."""

    async def unban(self, room: str, uid: str) -> None:
        """End a ban early (nothing when there is none)."""

    async def mute(self, room: str, uid: str, seconds: float) -> None:
        """``uid``'s ``append`` to ``room`` raises :class:`Forbidden` for ``seconds``."""

    async def unmute(self, room: str, uid: str) -> None:
        """End a mute early (nothing when there is none)."""

    async def redact(self, room: str, offset: int, by: str) -> bool:
        """The retained message ``offset`` keeps its offset and loses its text and user: every
        later ``window``, ``before`` and feed fill holds it as a redacted ``msg``
        (frames.redacted_msg), and every process's listener is told (``redacted``). False when
        the room retains no such message (nothing done)."""

    async def disconnect(self, uid: str, reason: str) -> None:
        """Every process's listener is told to close ``uid``'s connections (``disconnected``)."""

    async def rooms(self, after: str, limit: int) -> list[RoomSummary]:
        """The rooms held (with members or history) whose names sort after ``after``, by name,
        at most ``limit``: a page of the store's rooms (on Redis, the deployment's)."""

    async def window(self, room: str, after: int, limit: int) -> Window:
        """The room's position now, and its newest ``limit`` retained messages with offset > ``after``."""

    async def before(self, room: str, before: int, limit: int) -> list[Stored]:
        """The newest ``limit`` retained messages with offset < ``before``, ascending."""

    async def append(self, room: str, person: Person, text: str, say_id: str | None) -> tuple[int, bool]:
        """Publish ``person``'s message: (its offset, True), or for a say id their uid already used
        in the room (the first offset, False).
        Never calls the listener itself; returns once the listener here has heard the message
        (the rules above)."""
