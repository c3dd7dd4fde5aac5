"""What the client remembers across connections: the rooms you are in, the requests not answered.

A connection is short-lived; these records are not. Each connection starts by working through
them (runner.py's ``flush``): a ``join`` for every room, with ``since`` its position, then every
request not answered yet, with its same id. Nothing here does I/O: the records only say what a
connection has sent, and wake whoever waits when an answer comes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .events import Event, Joined, Left
from .positions import Position


@dataclass(eq=False)
class Room:
    """A room you asked to be in: how its first join asked (``history``, ``presence``), where you
    are in it, and the first ``joined`` that ``Client.join`` waits for."""

    name: str
    history: int | None
    presence: bool
    first: asyncio.Future[Joined]
    position: Position = field(default_factory=Position)


class Rooms:
    """The rooms you are in, and which of them the current connection has sent a join for."""

    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}
        self._joins: dict[str, str] = {}  # join request id -> room, on the current connection

    def add(self, name: str, history: int | None, presence: bool) -> Room:
        if name in self._rooms:
            raise ValueError(f"already in room {name!r}")
        room = Room(name, history, presence, asyncio.get_running_loop().create_future())
        self._rooms[name] = room
        return room

    def get(self, name: str) -> Room | None:
        return self._rooms.get(name)

    def require(self, name: str) -> None:
        if name not in self._rooms:
            raise ValueError(f"not in room {name!r}: join it first")

    def remove(self, name: str) -> tuple[Room, bool]:
        """Forget ``name``: the room, and whether the current connection had sent its join (then
        the server must be told)."""
        room = self._rooms.pop(name, None)
        if room is None:
            raise ValueError(f"not in room {name!r}")
        ids = [request_id for request_id, joined in self._joins.items() if joined == name]
        for request_id in ids:
            del self._joins[request_id]
        return room, bool(ids)

    def new_connection(self) -> None:
        self._joins.clear()

    def unsent(self) -> Iterator[Room]:
        """The rooms this connection has not sent a join for yet."""
        return (room for room in list(self._rooms.values()) if not self.sent_join(room.name))

    def sending_join(self, room: Room, request_id: str) -> None:
        self._joins[request_id] = room.name

    def sent_join(self, name: str) -> bool:
        return name in self._joins.values()

    def join_answered(self, request_id: str | None) -> Room | None:
        """The room whose join ``request_id`` was on this connection, if it is still yours."""
        name = self._joins.get(request_id) if request_id is not None else None
        return self._rooms.get(name) if name is not None else None

    def fail(self, error: BaseException) -> None:
        for room in self._rooms.values():
            if not room.first.done():
                room.first.set_exception(error)


@dataclass(eq=False)
class Request:
    """A request waiting for its answer: its frame (with its id), the room it is about, and the
    connection it was last sent on (0: none yet). ``resend=False``: a leave, which the end of a
    connection answers (a new connection does not rejoin the room)."""

    room: str
    frame: dict[str, Any]
    reply: asyncio.Future[Event]
    resend: bool = True
    connection: int = 0

    @property
    def id(self) -> str:
        return str(self.frame["id"])


class Requests:
    """The requests not answered yet, by id, in the order they were made."""

    def __init__(self) -> None:
        self._pending: dict[str, Request] = {}

    def add(self, room: str, frame: dict[str, Any], *, resend: bool = True) -> Request:
        request = Request(room, frame, asyncio.get_running_loop().create_future(), resend)
        self._pending[request.id] = request
        return request

    def discard(self, request: Request) -> None:
        if self._pending.get(request.id) is request:
            del self._pending[request.id]

    def unsent(self, connection: int, joined: Callable[[str], bool]) -> Iterator[Request]:
        """The requests to send on ``connection``: not sent on it yet, and their room joined on it."""
        pending = list(self._pending.values())
        return (r for r in pending if r.resend and r.connection != connection and joined(r.room))

    def answer(self, request_id: str | None, event: Event, room: str | None = None) -> bool:
        """``event`` answers request ``request_id`` (of ``room``, when given); whether one waited."""
        request = self._take(request_id, room)
        if request is not None:
            request.reply.set_result(event)
        return request is not None

    def refuse(self, request_id: str | None, error: BaseException) -> bool:
        request = self._take(request_id, None)
        if request is not None:
            request.reply.set_exception(error)
        return request is not None

    def refuse_room(self, room: str, connection: int | None, error: BaseException) -> None:
        """Refuse ``room``'s requests that ``connection`` has not sent (None: all of them): they
        will not be answered now."""
        for request in list(self._pending.values()):
            if request.room == room and (connection is None or request.connection != connection):
                self.refuse(request.id, error)

    def refuse_orphans(self, room_of: Callable[[str], object | None], error: BaseException) -> None:
        """Refuse the requests whose room is gone (``room_of`` gives None): never to be sent again."""
        for request in list(self._pending.values()):
            if room_of(request.room) is None:
                self.refuse(request.id, error)

    def connection_ended(self) -> None:
        """A leave waiting for its ``left`` has it: with the connection, the room is left too."""
        for request in [r for r in self._pending.values() if not r.resend]:
            self.answer(request.id, Left(request.room, request.id))

    def fail(self, error: BaseException) -> None:
        for request in list(self._pending.values()):
            self.refuse(request.id, error)

    def _take(self, request_id: str | None, room: str | None) -> Request | None:
        request = self._pending.get(request_id) if request_id is not None else None
        if request is None or (room is not None and request.room != room):
            return None
        del self._pending[request.id]
        return None if request.reply.done() else request
