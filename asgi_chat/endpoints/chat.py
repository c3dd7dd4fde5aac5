"""``/chat/ws``: the ``asgi-chat.v1`` endpoint. Rooms, people, presence, history and resume.

A connection offers the subprotocol ``asgi-chat.v1`` (RFC 6455 4.1: the server answers with
one of the subprotocols the client offered, or refuses), says ``hello`` with a token or a name
(endpoints/identity.py decides who that makes it), then joins rooms, says lines, asks for
earlier history and leaves. Every frame is parsed once, here
(protocol.py), and every reply built by engine/frames.py, where the engine builds what it
delivers; a bad request gets an ``error`` frame and the connection stays open. Every reply goes
through the connection's member (engine/member.py), the same outbox as the room's messages, so
replies and messages reach the client in the order they were produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable

from ..asgi.errors import ChatError, PolicyViolation, TryAgainLater
from ..asgi.session import Session
from ..engine import frames
from ..engine.budget import SlowDown, client_address
from ..engine.member import Member
from ..engine.people import Person
from ..engine.rooms import JoinRequest
from ..engine.stores import Forbidden, RoomLimit, StoreUnavailable
from ..identity import Identity
from . import protocol
from .common import EndpointContext, require_text
from .credentials import bearer_token
from .identity import Deadline, NotAuthorized
from .moderation import moderate
from .protocol import BadRequest, Hello, History, Join, Leave, Members, Moderate, Refresh, Request, Say

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
            # A token may also come as the subprotocol after "bearer", as on the items page.
            await serve(session, Connection(member, ctx, bearer_token(session.scope.get("subprotocols") or ())))


async def serve(session: Session, connection: Connection) -> None:
    """Handle the client's requests, one at a time, until it goes; then leave every room."""
    try:
        while True:
            await connection.handle(require_text(await session.receive_message()))
            # Let replies and messages go out before reading the next request (see tutorial.chat).
            await asyncio.sleep(0)
    finally:
        connection.deadline.cancel()
        connection.ctx.rooms.unenroll(connection.member)
        await connection.leave_all()


async def start_rooms(ctx: EndpointContext) -> None:
    try:
        await ctx.rooms.open()
    except StoreUnavailable as error:
        logger.warning("rooms unavailable: %s", error)
        raise TryAgainLater("chat unavailable: its room store cannot be reached") from None


class Connection:
    """One ``asgi-chat.v1`` connection: who it is, once it said hello, and the rooms it is in."""

    def __init__(self, member: Member, ctx: EndpointContext, bearer: str | None = None) -> None:
        self.member = member
        self.ctx = ctx
        self.bearer = bearer  # a token offered in the handshake's subprotocols, if any
        self.identity: Identity | None = None  # verified at hello, replaced at each refresh
        self.person: Person | None = None  # who the rooms see: fixed from hello on
        self.rooms: set[str] = set()
        self.deadline = Deadline(ctx.authority.grace, member.end)  # the token's exp, plus the grace

    async def handle(self, text: str) -> None:
        request: Request | None = None
        try:
            request = protocol.parse_request(text, self.ctx.settings.max_text_chars)
            await self._dispatch(request)
        except BadRequest as error:
            self.member.send(frames.error(error.code, error.message, error.request_id))
            if error.code == "unauthorized":  # the same token will never pass: the client must stop
                raise NotAuthorized(error.message) from None
        except ChatError:
            raise  # a refusal or a gone peer ends the connection, as everywhere
        except Exception as error:  # our bug, not the client's: answered, and the connection goes on
            _log_internal(error)
            message = "the server could not handle this request"
            self.member.send(frames.error("internal", message, request.id if request else None))

    async def _dispatch(self, request: Request) -> None:
        if isinstance(request, Hello):
            await self._hello(request)
            return
        if self.identity is None or self.person is None:
            raise BadRequest("hello_first", "say hello with your name first", request.id)
        if isinstance(request, Refresh):
            await self._refresh(self.identity, request)
        elif isinstance(request, Join):
            await self._join(self.identity, self.person, request)
        elif isinstance(request, Say):
            await self._say(self.identity, self.person, request)
        elif isinstance(request, Leave):
            await self._leave(self.person, request)
        elif isinstance(request, Members):
            await self._members(request)
        elif isinstance(request, Moderate):
            await moderate(self.ctx, self.member, self.identity, request)
        else:
            await self._history(request)

    async def _hello(self, request: Hello) -> None:
        if self.identity is not None:
            raise BadRequest("bad_request", "hello comes once per connection", request.id)
        try:
            welcome = await self.ctx.authority.hello(request.token or self.bearer, request.user)
        except BadRequest as error:
            error.request_id = request.id
            raise
        identity = self.identity = welcome.identity
        self.person = Person(identity.uid, identity.name, identity.guest)
        self.ctx.rooms.enroll(self.member, self.person)  # so that a disconnect of its uid finds it
        self.member.label = f"user {identity.name!r} ({identity.uid})"
        self.deadline.set(identity.expires_ms)
        self.member.send(frames.welcome(identity, welcome.guest_token, request.id))

    async def _refresh(self, identity: Identity, request: Refresh) -> None:
        try:
            renewed = await self.ctx.authority.refresh(identity, request.token)
        except BadRequest as error:
            error.request_id = request.id
            raise
        # The token's roles and rooms now hold; the name the room knows this connection by stays.
        self.identity = dataclasses.replace(renewed, name=identity.name)
        self.deadline.set(renewed.expires_ms)
        self.member.send(frames.refreshed(renewed.expires_ms, request.id))

    async def _join(self, identity: Identity, person: Person, request: Join) -> None:
        allowed = self.ctx.authority.policy.may_join(identity, request.room)
        if not allowed:
            raise BadRequest("forbidden", allowed.reason, request.id)
        if self._in(request.room):
            raise BadRequest("bad_request", f"already in room {request.room}", request.id)
        limit = self.ctx.settings.rooms_per_connection
        if limit and len(self.rooms) >= limit:
            raise BadRequest("too_many_rooms", f"a connection may be in {limit} rooms at most", request.id)
        since = (request.since.epoch, request.since.offset) if request.since else None
        self.rooms.add(request.room)  # before the await: a second join meanwhile is a duplicate
        try:
            join = JoinRequest(request.room, since, request.history, request.id, request.presence)
            await self.ctx.rooms.join(self.member, person, join)
        except RoomLimit as error:
            self.rooms.discard(request.room)
            raise BadRequest("too_many_rooms", str(error), request.id) from None
        except Forbidden as error:  # banned from the room
            self.rooms.discard(request.room)
            raise BadRequest("forbidden", str(error), request.id) from None
        except StoreUnavailable:
            self.rooms.discard(request.room)
            raise BadRequest("unavailable", "the room store cannot be reached; try again", request.id) from None
        except BaseException:
            self.rooms.discard(request.room)
            raise

    def _in(self, room: str) -> bool:
        if room in self.rooms and not self.ctx.rooms.seated(self.member, room):
            self.rooms.discard(room)  # kicked out of it meanwhile, by a moderator on any worker
        return room in self.rooms

    def _joined(self, room: str, request_id: str | None) -> None:
        if not self._in(room):
            raise BadRequest("not_joined", f"not in room {room}: join it first", request_id)

    async def _say(self, identity: Identity, person: Person, request: Say) -> None:
        self._joined(request.room, request.id)
        allowed = self.ctx.authority.policy.may_say(identity, request.room)
        if not allowed:
            raise BadRequest("forbidden", allowed.reason, request.id)
        received_at = self.ctx.metrics.line_clock()  # 1 line in 16, for the delivery-time histogram
        try:
            # The engine answers with the ack, after the sender's own msg (engine/rooms.py).
            await self.ctx.rooms.say(self.member, person, request.room, request.text, request.id)
        except StoreUnavailable:
            raise BadRequest("unavailable", "the room store cannot be reached: not sent", request.id) from None
        except Forbidden as error:  # muted in the room
            raise BadRequest("forbidden", str(error), request.id) from None
        if received_at is not None:  # the store has offered it to every member here by now
            self.ctx.metrics.observe_line(time.monotonic() - received_at)

    async def _leave(self, person: Person, request: Leave) -> None:
        self._joined(request.room, request.id)
        self.rooms.discard(request.room)
        # Leaving never fails: a store out of reach forgets this connection when its entry expires.
        with contextlib.suppress(StoreUnavailable):
            await self.ctx.rooms.leave(self.member, person, request.room)
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
        if self.person is None:
            return
        rooms, self.rooms = self.rooms, set()
        for room in rooms:
            with contextlib.suppress(StoreUnavailable):
                await self.ctx.rooms.leave(self.member, self.person, room)
