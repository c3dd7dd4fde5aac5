"""The ASGI callable: one ``async def __call__(scope, receive, send)`` that dispatches on
``scope["type"]`` and routes by path, with no framework in between.

The three scope types (ASGI spec, "www.rst" and "lifespan.rst"):

- ``http``: one request, one response;
- ``websocket``: one connection for as long as it lives, a :class:`Session`;
- ``lifespan``: once per process, start-up and shutdown of what the connections share.

:class:`App` knows no endpoint of its own: it is given its route tables and a context to hand
each endpoint. What an app adds around each connection (its checks before the endpoint runs,
the limits on what a client sends) and at start-up and shutdown are methods of :class:`App`
that do nothing here, for a subclass to fill in; what it counts goes to a
:class:`~asgi_chat.asgi.hooks.Counters` (hooks.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from asgiref.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    LifespanScope,
    Scope,
    WebSocketScope,
)

from .body import BadLength, BodyTooLarge, read_body
from .errors import CloseCode, Disconnected, GoingAway, NoRoute, NotFound, ProtocolError, Refusal
from .hooks import Counters, Guard, Tally
from .responses import Response, method_not_allowed, not_found, send_response, text
from .routing import Match, PathParams, Route, resolve
from .session import Session
from .states import State

logger = logging.getLogger("asgi_chat")

Ctx = TypeVar("Ctx")  # what the app hands every endpoint: whatever its endpoints share


@dataclass(frozen=True)
class HttpRequest:
    """What an HTTP endpoint gets of the request: plain values, never the scope."""

    path: str
    method: str
    headers: Iterable[tuple[bytes, bytes]]
    params: PathParams
    query_string: bytes = b""
    receive: ASGIReceiveCallable | None = None  # the body's chunks, for :meth:`body` alone

    async def body(self, limit: int) -> bytes:
        """The request's body, at most ``limit`` bytes (0: any), read in chunks (body.py).

        Raises :class:`~.body.BodyTooLarge` (413) or :class:`~.body.BadLength` (400) for the
        endpoint to answer, or :class:`~.errors.Disconnected` when the client went away: the app
        then sends nothing. An endpoint that never calls it never reads the body (GET, HEAD).
        """
        if self.receive is None:
            return b""
        return await read_body(self.receive, self.headers, limit)


# An HTTP endpoint: ``async def endpoint(request, ctx) -> Response``; the app sends the response.
HttpEndpoint = Callable[[HttpRequest, Ctx], Awaitable[Response]]
# A WebSocket endpoint gets the session and the app's context, and the path parameters the router
# typed as keyword arguments: chat(session, ctx, client_id=7).
WebSocketEndpoint = Callable[..., Awaitable[None]]


class App(Generic[Ctx]):
    """An ASGI 3 app over two route tables: its own context, counters and open sessions."""

    def __init__(
        self,
        ctx: Ctx,
        http_routes: Sequence[Route[HttpEndpoint[Ctx]]] = (),
        websocket_routes: Sequence[Route[WebSocketEndpoint]] = (),
        counters: Counters | None = None,
    ) -> None:
        self.ctx = ctx
        self.http_routes = http_routes
        self.websocket_routes = websocket_routes
        self.counters: Counters = counters or Tally()
        self.sessions: set[Session] = set()  # every WebSocket between connect and close

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
        else:
            # ASGI: an app "should raise an exception" for a scope type it does not understand.
            raise ValueError(f"unsupported ASGI scope type {scope['type']!r}")

    # --- http -------------------------------------------------------------------------------

    async def http(self, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        method = scope["method"]
        try:
            match = resolve(self.http_routes, scope["path"])
        except NoRoute:  # no route, or a typed parameter that does not parse: no such resource
            response = not_found()
        else:
            try:
                response = await self._respond(match, scope, receive, method)
            except Disconnected:  # "http.disconnect" while the body was read: nobody to answer
                return
            except (BodyTooLarge, BadLength) as error:  # an endpoint that left them to the app
                response = text(error.http_status, f"{error}\n")
        await send_response(send, response, method)

    async def _respond(
        self, match: Match[HttpEndpoint[Ctx]], scope: HTTPScope, receive: ASGIReceiveCallable, method: str
    ) -> Response:
        if method not in match.route.methods:
            return method_not_allowed(match.route.methods)
        # "query_string" is required by www.rst, but a hand-written scope may leave it out: none.
        path, headers, query = scope["path"], scope["headers"], scope.get("query_string", b"")
        request = HttpRequest(path, method, headers, match.params, query, receive)
        return await match.route.endpoint(request, self.ctx)

    # --- websocket --------------------------------------------------------------------------

    async def websocket(self, scope: WebSocketScope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        async with Session(scope, receive, send, self.guard(scope), self.counters) as session:
            self.sessions.add(session)
            with contextlib.ExitStack() as admitted:  # what admit() holds, given back at the very end
                try:
                    await session.wait_connect()
                    admitted.enter_context(self.admit(session))
                    await self._endpoint(session)
                except Refusal as refusal:
                    await self._refuse(session, refusal)
                except Disconnected:
                    pass  # the peer left: nothing to answer, nothing to log
                except ProtocolError as error:
                    logger.warning("websocket %s: ASGI protocol error: %s", _where(scope), error)
                    self.counters.closes[int(CloseCode.INTERNAL_ERROR)] += 1
                    await session.close(CloseCode.INTERNAL_ERROR, "internal error")
                finally:
                    self.sessions.discard(session)

    def guard(self, scope: WebSocketScope) -> Guard | None:
        """The limits on what this connection's client sends (none here), asked about each message."""
        return None

    def admit(self, session: Session) -> contextlib.AbstractContextManager[object]:
        """The app's checks once the client has asked to connect, before the endpoint runs.

        A check refuses by raising a :class:`Refusal`. What the checks take (a place under a
        connection limit, say) they give back when the context exits: as the connection ends,
        after its close. None here.
        """
        return contextlib.nullcontext()

    async def _refuse(self, session: Session, refusal: Refusal) -> None:
        logger.info("websocket %s closed with %d: %s", _where(session.scope), refusal.code, refusal.reason)
        # Every refusal and every close the app decides ends here, an endpoint's or a check's:
        # counted once, by code, also when the client is told by an HTTP response rather than a
        # close (Session.refuse).
        self.counters.closes[int(refusal.code)] += 1
        await session.refuse(refusal)

    def _endpoint(self, session: Session) -> Awaitable[None]:
        """The endpoint for the session's path, called with its typed path parameters.

        Only the endpoint's coroutine outlives this call, not the route match: a connection
        may idle for hours among thousands, and keeps nothing it does not use.
        """
        try:
            match = resolve(self.websocket_routes, session.scope["path"])
        except NoRoute as error:
            raise NotFound.from_route(error) from None
        return match.route.endpoint(session, self.ctx, **match.params)

    # --- lifespan ---------------------------------------------------------------------------

    async def lifespan(self, scope: LifespanScope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    # lifespan.rst: startup.failed's message is shown to whoever runs the server.
                    await send({"type": "lifespan.startup.failed", "message": f"asgi_chat cannot start: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Open what the connections share; an exception here is ``lifespan.startup.failed``."""

    async def shutdown(self) -> None:
        """Close every WebSocket still open with 1001 (going away).

        uvicorn has already closed its connections with 1012 by now; other servers may not have.
        A subclass closes what its connections shared after this.
        """
        going_away = GoingAway("server shutting down")
        open_sessions = [session for session in self.sessions if session.state is State.OPEN]
        # Counted as _refuse counts every close the app decides, without its log line per connection.
        self.counters.closes[int(going_away.code)] += len(open_sessions)
        await asyncio.gather(*(session.close(going_away.code, going_away.reason) for session in open_sessions))


def _where(scope: WebSocketScope) -> str:
    """Client and path for a log line; never the query string, which may carry a token."""
    client = scope.get("client")
    return f"{client[0]}:{client[1]} {scope['path']}" if client else scope["path"]
