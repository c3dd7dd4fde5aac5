"""``/chat/ws``: the ``asgi-chat.v1`` endpoint. Rooms, names, presence, history and resume.

A connection offers the subprotocol ``asgi-chat.v1`` (RFC 6455 4.1: the server answers with
one of the subprotocols the client offered, or refuses), says ``hello`` with a name, then joins
rooms, says lines, asks for earlier history and leaves. Every frame is parsed once, here
(protocol.py), and every reply built by engine/frames.py, where the engine builds what it
delivers; a bad request gets an ``error`` frame and the connection stays open. Every reply goes
through the connection's member (engine/member.py), the same outbox as the room's messages, so
replies and messages reach the client in the order they were produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable

from ..asgi.errors import ChatError, PolicyViolation, TryAgainLater
from ..asgi.session import Session
from ..engine import frames
from ..engine.budget import SlowDown, client_address
from ..engine.member import Member
from ..engine.rooms import JoinRequest
from ..engine.stores import RoomLimit, StoreUnavailable
from . import protocol
from .common import EndpointContext, require_text
from .protocol import BadRequest, Hello, History, Join, Leave, Members, Request, Say

logger = logging.getLogger("asgi_chat")
_logged: set[type[BaseException]] = set()


def _log_internal(error: Exception) -> None:
    """Every unexpected error in one line; the traceback once per kind and process, not a flood."""
    first = type(error) not in _logged
    _logged.add(type(error))
    logger.error("chat connection: a request failed: %r", error, exc_info=first)


async def chat_v1(session: Session, ctx: EndpointContext) -> None:
    if protocol.SUBPROTOCOL not in (session.scope.get("subprotocols") or ()):
        raise PolicyViolation(f"this endpoint speaks the {protocol.SUBPROTOCOL} subprotocol: offer it")
    await start_rooms(ctx)
    await session.accept(protocol.SUBPROTOCOL)
    # What its requests may make the server send, per connection and per client address (the
    # address the connection limits count); the address's share goes with its last connection.
    with ctx.budgets.connection(client_address(session.scope.get("client"))) as budget:
        async with ctx.fanout.member(session, "chat connection") as member:
            member.budget = budget
            await serve(session, Connection(member, ctx))


async def serve(session: Session, connection: Connection) -> None:
    """Handle the client's requests, one at a time, until it goes; then leave every room."""
    try:
        while True:
            await connection.handle(require_text(await session.receive_message()))
            # Let replies and messages go out before reading the next request (see tutorial.chat).
            await asyncio.sleep(0)
    finally:
        await connection.leave_all()


async def start_rooms(ctx: EndpointContext) -> None:
    try:
        await ctx.rooms.open()
    except StoreUnavailable as error:
        logger.warning("rooms unavailable: %s", error)
        raise TryAgainLater("chat unavailable: its room store cannot be reached") from None


class Connection:
    """One ``asgi-chat.v1`` connection: its user, once it said hello, and the rooms it is in."""

    def __init__(self, member: Member, ctx: EndpointContext) -> None:
        self.member = member
        self.ctx = ctx
        self.user: str | None = None
        self.rooms: set[str] = set()

    async def handle(self, text: str) -> None:
        request: Request | None = None
        try:
            request = protocol.parse_request(text, self.ctx.settings.max_text_chars)
            await self._dispatch(request)
        except BadRequest as error:
            self.member.send(frames.error(error.code, error.message, error.request_id))
        except ChatError:
            raise  # a refusal or a gone peer ends the connection, as everywhere
        except Exception as error:  # our bug, not the client's: answered, and the connection goes on
            _log_internal(error)
            message = "the server could not handle this request"
            self.member.send(frames.error("internal", message, request.id if request else None))

    async def _dispatch(self, request: Request) -> None:
        if isinstance(request, Hello):
            self._hello(request)
            return
        if self.user is None:
            raise BadRequest("hello_first", "say hello with your name first", request.id)
        if isinstance(request, Join):
            await self._join(self.user, request)
        elif isinstance(request, Say):
            await self._say(self.user, request)
        elif isinstance(request, Leave):
            await self._leave(self.user, request)
        elif isinstance(request, Members):
            await self._members(request)
        else:
            await self._history(request)

    def _hello(self, request: Hello) -> None:
        if self.user is not None:
            raise BadRequest("bad_request", "hello comes once per connection", request.id)
        self.user = request.user
        self.member.label = f"user {request.user!r}"
        self.member.send(frames.welcome(request.user, request.id))

    async def _join(self, user: str, request: Join) -> None:
        if request.room in self.rooms:
            raise BadRequest("bad_request", f"already in room {request.room}", request.id)
        limit = self.ctx.settings.rooms_per_connection
        if limit and len(self.rooms) >= limit:
            raise BadRequest("too_many_rooms", f"a connection may be in {limit} rooms at most", request.id)
        since = (request.since.epoch, request.since.offset) if request.since else None
        self.rooms.add(request.room)  # before the await: a second join meanwhile is a duplicate
        try:
            join = JoinRequest(request.room, since, request.history, request.id, request.presence)
            await self.ctx.rooms.join(self.member, user, join)
        except RoomLimit as error:
            self.rooms.discard(request.room)
            raise BadRequest("too_many_rooms", str(error), request.id) from None
        except StoreUnavailable:
            self.rooms.discard(request.room)
            raise BadRequest("unavailable", "the room store cannot be reached; try again", request.id) from None
        except BaseException:
            self.rooms.discard(request.room)
            raise

    def _joined(self, room: str, request_id: str | None) -> None:
        if room not in self.rooms:
            raise BadRequest("not_joined", f"not in room {room}: join it first", request_id)

    async def _say(self, user: str, request: Say) -> None:
        self._joined(request.room, request.id)
        received_at = self.ctx.metrics.line_clock()  # 1 line in 16, for the delivery-time histogram
        try:
            # The engine answers with the ack, after the sender's own msg (engine/rooms.py).
            await self.ctx.rooms.say(self.member, user, request.room, request.text, request.id)
        except StoreUnavailable:
            raise BadRequest("unavailable", "the room store cannot be reached: not sent", request.id) from None
        if received_at is not None:  # the store has offered it to every member here by now
            self.ctx.metrics.observe_line(time.monotonic() - received_at)

    async def _leave(self, user: str, request: Leave) -> None:
        self._joined(request.room, request.id)
        self.rooms.discard(request.room)
        # Leaving never fails: a store out of reach forgets this connection when its entry expires.
        with contextlib.suppress(StoreUnavailable):
            await self.ctx.rooms.leave(self.member, user, request.room)
        self.member.send(frames.left(request.room, request.id))

    async def _history(self, request: History) -> None:
        self._joined(request.room, request.id)
        rooms = self.ctx.rooms
        await self._answer(
            rooms.history(self.member, request.room, request.before, request.limit, request.id), request.id
        )

    async def _members(self, request: Members) -> None:
        self._joined(request.room, request.id)
        await self._answer(self.ctx.rooms.members(self.member, request.room, request.id), request.id)

    async def _answer(self, reading: Awaitable[None], request_id: str | None) -> None:
        """A request whose answer is output (history, members): within the output budget."""
        try:
            await reading
        except SlowDown as wait:  # nothing was read nor sent: the client is told when to ask again
            self.member.send(frames.slow_down(wait.retry_ms, request_id))
        except StoreUnavailable:
            raise BadRequest("unavailable", "the room store cannot be reached; try again", request_id) from None

    async def leave_all(self) -> None:
        """A connection that closes leaves all its rooms (announced to the others as presence)."""
        if self.user is None:
            return
        rooms, self.rooms = self.rooms, set()
        for room in rooms:
            with contextlib.suppress(StoreUnavailable):
                await self.ctx.rooms.leave(self.member, self.user, room)
