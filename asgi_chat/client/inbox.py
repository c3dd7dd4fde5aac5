"""What the server says, applied: each frame answers a request, moves a room's position, or is yielded.

The runner hands every frame it reads to :meth:`Inbox.receive`, which does no I/O: it parses the
frame (events.py), settles what it answers in the ledger (ledger.py), and puts what the user
should see on the events queue, once. The exactly-once rule itself is positions.py's; this is
where it is applied, to every message and gap of every room.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from .errors import BadFrame, Refused
from .events import (
    Ack,
    Error,
    Event,
    Gap,
    History,
    Joined,
    Left,
    Members,
    Message,
    Presence,
    Refreshed,
    Unknown,
    Welcome,
    parse_frame,
)
from .ledger import Requests, Room, Rooms

logger = logging.getLogger("asgi_chat.client")

# Answers that say "not now": asking again with the same id is safe (a say is deduped by its id,
# the other requests only read), so the client asks again after a wait.
TRANSIENT: Final = frozenset({"unavailable", "internal", "slow_down"})


class Reconnect(Exception):
    """This connection cannot keep the promise (a rejoin the store could not answer): start over."""


class Inbox:
    """Applies the server's frames to the rooms, the requests and the events queue."""

    def __init__(self, rooms: Rooms, requests: Requests, events: asyncio.Queue[Event | None]) -> None:
        self.rooms = rooms
        self.requests = requests
        self.events = events
        self.name: str | None = None  # the user's name as the server shows it (its welcome)
        self.uid: str | None = None  # and who the user is, where the server has identity
        self.refreshes: dict[str, asyncio.Future[Refreshed]] = {}  # refresh id -> its answer (runner.py)

    def receive(self, text: str | bytes) -> None:
        """Apply one frame; raises :class:`Reconnect` when the connection must start over."""
        try:
            event = parse_frame(text if isinstance(text, str) else text.decode())
        except (BadFrame, UnicodeDecodeError) as error:
            logger.warning("a frame the client cannot read, ignored: %s", error)
            return
        if isinstance(event, (Ack, Left, History, Members)):
            self.requests.answer(event.id, event)
        elif isinstance(event, Refreshed):
            self._settle_refresh(event.id, event)
            self.events.put_nowait(event)  # yours to see too: when the connection's token now expires
        elif isinstance(event, Error):
            self._error(event)
        elif isinstance(event, (Unknown, Welcome)):
            self.events.put_nowait(event)
        elif (room := self.rooms.get(event.room)) is not None:  # else: a room left meanwhile
            self._room_event(room, event)

    def _room_event(self, room: Room, event: Joined | Message | Gap | Presence) -> None:
        if isinstance(event, Joined):
            room.position.joined(event, room.history)
            if not room.first.done():
                room.first.set_result(event)
        elif isinstance(event, Message):
            if self._mine(event) and event.id is not None:
                # Your own line comes before its ack: the say is done, even if the ack is then lost.
                self.requests.answer(event.id, Ack(event.room, event.offset, event.id), room=event.room)
            if not room.position.admit(event):
                return
        elif isinstance(event, Gap) and not room.position.admit(event):
            return
        self.events.put_nowait(event)

    def _mine(self, line: Message) -> bool:
        """Whether ``line`` is the user's own: by uid where the server gives one, else by name."""
        if self.uid is not None and line.uid is not None:
            return line.uid == self.uid
        return line.user == self.name

    def _settle_refresh(self, request_id: str | None, answer: Refreshed | Refused) -> bool:
        waiter = self.refreshes.pop(request_id, None) if request_id is not None else None
        if waiter is None or waiter.done():
            return False
        if isinstance(answer, Refused):
            waiter.set_exception(answer)
        else:
            waiter.set_result(answer)
        return True

    def _error(self, error: Error) -> None:
        refused = Refused(error.code, error.message, error.retry_ms)
        if self._settle_refresh(error.id, refused):
            if error.code not in TRANSIENT:
                self.events.put_nowait(error)  # a token refused (4401 follows): the reason is yours to see
            return
        room = self.rooms.join_answered(error.id)
        if room is None:
            if not self.requests.refuse(error.id, refused):
                self.events.put_nowait(error)  # about no request of ours: yours to see
        elif error.code in TRANSIENT:
            # A room we cannot rejoin now (its store out of reach): without it this connection
            # would deliver the other rooms but not this one, so come back later for all of them.
            raise Reconnect(f"join {room.name}: {error.code}: {error.message}")
        else:
            self.rooms.remove(room.name)
            refused = Refused(error.code, f"join {room.name}: {error.message}")
            self.requests.refuse_room(room.name, None, refused)
            if room.first.done():
                self.events.put_nowait(error)  # a rejoin refused: the room is no longer yours
            else:
                room.first.set_exception(refused)
