"""The ASGI callable: one ``async def __call__(scope, receive, send)`` that dispatches on
``scope["type"]`` and routes by path, with no framework in between.

The three scope types (ASGI spec, "www.rst" and "lifespan.rst"):

- ``http``: one request, one response (the pages, ``/healthz``, ``/metrics``);
- ``websocket``: one connection for as long as it lives (echo, items, chat);
- ``lifespan``: once per process, start-up and shutdown of shared resources (the broker).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence

from asgiref.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    LifespanScope,
    Scope,
    WebSocketScope,
)

from ..context import Context
from ..endpoints import chat, tutorial
from ..endpoints.tutorial import WebSocketEndpoint
from ..ops.forwarded import untrusted_proxy
from ..ops.logs import install_redaction
from ..ops.security import InboundGuard
from ..ops.trace import Trace
from ..web import endpoints as web
from ..web.endpoints import HttpEndpoint, HttpRequest
from .errors import CloseCode, Disconnected, GoingAway, NoRoute, NotFound, ProtocolError, Refusal
from .responses import Response, method_not_allowed, not_found, send_response
from .routing import Match, Route, resolve
from .session import Session, State

logger = logging.getLogger("asgi_chat")

HTTP_ROUTES: Sequence[Route[HttpEndpoint]] = (
    Route("/", web.page),
    Route("/echo", web.page),
    Route("/items", web.page),
    Route("/chat", web.page),
    Route("/healthz", web.healthz),
    Route("/metrics", web.metrics),
)  # plus one "/static/<name>" route per file in web/static/, added by ChatApp

WEBSOCKET_ROUTES: Sequence[Route[WebSocketEndpoint]] = (
    Route("/ws", tutorial.echo),
    Route("/items/{item_id}/ws", tutorial.items),
    Route("/ws/{client_id:int}", tutorial.chat),
    Route("/chat/ws", chat.chat_v1),
)


class ChatApp:
    """An independent chat: its own settings, membership, counters and open sessions."""

    def __init__(
        self,
        ctx: Context,
        http_routes: Sequence[Route[HttpEndpoint]] = HTTP_ROUTES,
        websocket_routes: Sequence[Route[WebSocketEndpoint]] = WEBSOCKET_ROUTES,
    ) -> None:
        self.ctx = ctx
        self.sessions: set[Session] = set()  # every WebSocket between connect and close
        # A route per asset, so a missing file is an unknown path (404 for every method).
        assets = [Route[HttpEndpoint](f"/static/{name}", web.asset) for name in ctx.assets.names()]
        self.http_routes: Sequence[Route[HttpEndpoint]] = (*http_routes, *assets)
        self.websocket_routes = websocket_routes

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
            response = await self._respond(match, scope, method)
        await send_response(send, response, method)

    async def _respond(self, match: Match[HttpEndpoint], scope: HTTPScope, method: str) -> Response:
        if method not in match.route.methods:
            return method_not_allowed(match.route.methods)
        request = HttpRequest(scope["path"], method, scope["headers"], match.params)
        return await match.route.endpoint(request, self.ctx)

    # --- websocket --------------------------------------------------------------------------

    async def websocket(self, scope: WebSocketScope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        settings = self.ctx.settings
        guard = InboundGuard(settings.max_message_bytes, settings.rate_per_second, settings.rate_burst)
        ticket: str | None = None  # set once the connection counts against the limits
        async with Session(scope, receive, send, guard, self.ctx.metrics) as session:
            self.sessions.add(session)
            try:
                await session.wait_connect()
                untrusted_proxy.check(scope.get("client"), scope["headers"])  # behind a proxy: said once
                self.ctx.origins.check(scope["headers"], scope.get("scheme") or "ws")
                ticket = self.ctx.limits.acquire(scope.get("client"))
                await self._endpoint(session)
            except Refusal as refusal:
                await self._refuse(session, refusal)
            except Disconnected:
                pass  # the peer left: nothing to answer, nothing to log
            except ProtocolError as error:
                logger.warning("websocket %s: ASGI protocol error: %s", _where(scope), error)
                self.ctx.metrics.closes[int(CloseCode.INTERNAL_ERROR)] += 1
                await session.close(CloseCode.INTERNAL_ERROR, "internal error")
            finally:
                self.sessions.discard(session)
                if ticket is not None:
                    self.ctx.limits.release(ticket)

    async def _refuse(self, session: Session, refusal: Refusal) -> None:
        logger.info("websocket %s closed with %d: %s", _where(session.scope), refusal.code, refusal.reason)
        # Every refusal and every close the app decides ends here, a slow consumer's 1013 too
        # (the fan-out's drop raises it in the member's reader): counted once, by code, also
        # when the client is told by an HTTP response rather than a close (Session.refuse).
        self.ctx.metrics.closes[int(refusal.code)] += 1
        await session.refuse(refusal)

    def _endpoint(self, session: Session) -> Awaitable[None]:
        """The endpoint for the session's path, called with its typed path parameters.

        Only the endpoint's coroutine outlives this call, not the route match: a chat connection
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
        install_redaction()
        if self.ctx.origins.allow_all:
            logger.warning("ASGI_CHAT_ALLOWED_ORIGINS contains '*': any web page may open a WebSocket here")
        await self.ctx.hub.start()
        await self.ctx.rooms.open()
        self.ctx.exposition.start()  # under several workers, a periodic metrics sync

    async def shutdown(self) -> None:
        """Close every WebSocket still open with 1001 (going away), then the broker.

        uvicorn has already closed its connections with 1012 by now; other servers may not have.
        """
        self.ctx.hub.shutting_down = True
        going_away = GoingAway("server shutting down")
        open_sessions = [session for session in self.sessions if session.state is State.OPEN]
        # Counted as _refuse counts every close the app decides, without its log line per connection.
        self.ctx.metrics.closes[int(going_away.code)] += len(open_sessions)
        await asyncio.gather(*(session.close(going_away.code, going_away.reason) for session in open_sessions))
        await self.ctx.hub.stop()
        await self.ctx.exposition.stop()
        await self.ctx.rooms.close()


class TracedChatApp(ChatApp):
    """The same app inside the trace middleware (``ASGI_CHAT_TRACE=1``): every message printed.

    A subclass rather than a wrapper around every app, so that with tracing off nothing at all
    sits between the server and the app, and ``app.ctx`` works either way.
    """

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._traced = Trace(super().__call__)

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        await self._traced(scope, receive, send)


def _where(scope: WebSocketScope) -> str:
    """Client and path for a log line; never the query string, which may carry a token."""
    client = scope.get("client")
    return f"{client[0]}:{client[1]} {scope['path']}" if client else scope["path"]
