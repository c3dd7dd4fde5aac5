"""The composition: the chat app put together from its parts, the one module that knows them all.

:class:`~asgi_chat.asgi.app.App` is the ASGI lesson's callable and knows no endpoint; here it gets
the route tables, the context its endpoints share (context.py), and what the chat wires around
each connection:

- before the endpoint runs: the forwarded-headers warning (ops/forwarded.py), the origin check
  and the connection limits (ops/security.py), see :meth:`ChatApp.admit`;
- on every message: the size and rate limits (ops/security.py's InboundGuard);
- everything counted into ops/metrics.py's Metrics;
- at start-up and shutdown: log redaction (ops/logs.py), the broker, the rooms' store and the
  metrics' sync; with ``ASGI_CHAT_TRACE=1``, the trace middleware around it all (ops/trace.py).

:func:`create_app` reads the settings once and builds one independent app.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope, WebSocketScope

from .asgi.app import App, HttpEndpoint, WebSocketEndpoint
from .asgi.routing import Route
from .asgi.session import Session
from .context import Context
from .endpoints import chat, tutorial
from .endpoints.identity import Authority
from .engine.brokers import Broker
from .engine.brokers.memory import MemoryBroker
from .engine.budget import OutputBudgets
from .engine.fanout import Fanout
from .engine.hub import Hub
from .engine.policy import SlowConsumerPolicy
from .engine.rooms import Rooms
from .engine.stores import RoomStore
from .engine.stores.memory import MemoryStore
from .identity import Guests, RoomPolicy, Verifier, server_secret
from .ops.exposition import MULTIPROC_DIR, Exposition
from .ops.forwarded import untrusted_proxy
from .ops.logs import install_redaction
from .ops.metrics import Metrics
from .ops.security import (
    ConnectionLimits,
    CredentialVerifier,
    InboundGuard,
    OriginPolicy,
    TokenSet,
    any_credential,
)
from .ops.settings import Settings, SettingsError, from_env
from .ops.trace import Trace
from .web import endpoints as web
from .web.api import METHODS as API_METHODS
from .web.api import Api, ApiKeys
from .web.assets import Assets

logger = logging.getLogger("asgi_chat")

HTTP_ROUTES: Sequence[Route[HttpEndpoint[Context]]] = (
    Route("/", web.page),
    Route("/echo", web.page),
    Route("/items", web.page),
    Route("/chat", web.page),
    Route("/chat/config", web.chat_config),
    Route("/healthz", web.healthz),
    Route("/metrics", web.metrics),
)  # plus one "/static/<name>" route per file in web/static/, added by ChatApp, and "/api/{rest:path}"
# for the HTTP API while ASGI_CHAT_API_KEYS_FILE is set (api_routes)

WEBSOCKET_ROUTES: Sequence[Route[WebSocketEndpoint]] = (
    Route("/ws", tutorial.echo),
    Route("/items/{item_id}/ws", tutorial.items),
    Route("/ws/{client_id:int}", tutorial.chat),
    Route("/chat/ws", chat.chat_v1),
)


class ChatApp(App[Context]):
    """An independent chat: its own settings, membership, counters and open sessions."""

    def __init__(
        self,
        ctx: Context,
        http_routes: Sequence[Route[HttpEndpoint[Context]]] = HTTP_ROUTES,
        websocket_routes: Sequence[Route[WebSocketEndpoint]] = WEBSOCKET_ROUTES,
    ) -> None:
        # A route per asset, so a missing file is an unknown path (404 for every method).
        assets = [Route[HttpEndpoint[Context]](f"/static/{name}", web.asset) for name in ctx.assets.names()]
        super().__init__(
            ctx, (*http_routes, *assets, *api_routes(ctx.settings)), websocket_routes, counters=ctx.metrics
        )

    def guard(self, scope: WebSocketScope) -> InboundGuard:
        settings = self.ctx.settings
        return InboundGuard(settings.max_message_bytes, settings.rate_per_second, settings.rate_burst)

    @contextlib.contextmanager
    def admit(self, session: Session) -> Iterator[None]:
        """The defences, before any endpoint runs: a refusal here is an HTTP answer to the handshake.

        The connection counts against the limits from here until it has closed.
        """
        scope = session.scope
        untrusted_proxy.check(scope.get("client"), scope["headers"])  # behind a proxy: said once
        self.ctx.origins.check(scope["headers"], scope.get("scheme") or "ws")
        ticket = self.ctx.limits.acquire(scope.get("client"))
        try:
            yield
        finally:
            self.ctx.limits.release(ticket)

    async def startup(self) -> None:
        install_redaction()
        if self.ctx.origins.allow_all:
            logger.warning("ASGI_CHAT_ALLOWED_ORIGINS contains '*': any web page may open a WebSocket here")
        await self.ctx.hub.start()
        await self.ctx.rooms.open()
        self.ctx.exposition.start()  # under several workers, a periodic metrics sync

    async def shutdown(self) -> None:
        """Close every WebSocket still open with 1001, announcing no leave, then the shared resources."""
        self.ctx.hub.shutting_down = True
        await super().shutdown()
        await self.ctx.hub.stop()
        await self.ctx.exposition.stop()
        await self.ctx.rooms.close()
        await self.ctx.authority.close()


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


def create_app(
    settings: Settings | None = None,
    *,
    verify_credential: CredentialVerifier | None = None,
    broker: Broker | None = None,
    store: RoomStore | None = None,
    budgets: OutputBudgets | None = None,
    authority: Authority | None = None,
) -> ChatApp:
    """Build an app. ``settings=None`` reads ``ASGI_CHAT_*`` from the environment.

    ``verify_credential(value) -> bool`` decides which credentials the items endpoint accepts;
    by default the tokens in ``ASGI_CHAT_TOKENS_FILE`` if set, else any non-empty value.
    ``budgets`` replaces the output budgets the settings describe (a test's, on its own clock);
    ``authority`` the judge of who is speaking on /chat/ws (a test's keys, or its clock).
    Raises :class:`~asgi_chat.ops.settings.SettingsError` for a setting it cannot use.
    """
    settings = settings or from_env()
    if verify_credential is None:
        verify_credential = TokenSet.from_file(settings.tokens_file) if settings.tokens_file else any_credential
    metrics = Metrics()
    policy = SlowConsumerPolicy(settings.outbox_max_messages, settings.outbox_max_bytes, settings.send_timeout)
    fanout = Fanout(policy, metrics)
    if broker is None or store is None:
        shared_broker, shared_store = shared_state(settings)
        broker, store = broker or shared_broker, store or shared_store
    hub = Hub(fanout, broker)
    ctx = Context(
        settings=settings,
        metrics=metrics,
        exposition=Exposition(metrics, hub.broker, store),
        fanout=fanout,
        hub=hub,
        rooms=Rooms(store, settings.replay_max, settings.presence_interval),
        budgets=budgets if budgets is not None else output_budgets(settings),
        assets=Assets(),
        origins=OriginPolicy(settings.allowed_origins),
        limits=ConnectionLimits(settings.max_connections, settings.max_connections_per_address),
        verify_credential=verify_credential,
        authority=authority if authority is not None else identity_authority(settings),
    )
    return TracedChatApp(ctx) if settings.trace else ChatApp(ctx)


def api_routes(settings: Settings) -> tuple[Route[HttpEndpoint[Context]], ...]:
    """The HTTP API's one route, every path under /api/ (web/api.py routes on its own), when
    ASGI_CHAT_API_KEYS_FILE names the keys; none while it is unset: /api/... is then a 404."""
    if not settings.api_keys_file:
        return ()
    try:
        keys = ApiKeys.from_file(settings.api_keys_file)
    except ValueError as error:
        raise SettingsError(str(error)) from None
    api = Api(keys, settings.api_rate_per_second)
    return (Route[HttpEndpoint[Context]]("/api/{rest:path}", api, API_METHODS),)


def identity_authority(settings: Settings) -> Authority:
    """Who may speak on /chat/ws, as the settings say; a ConfigError (one line) when they cannot.

    Guests' tokens are signed with ASGI_CHAT_SECRET, which must be the same in every process that
    shares rooms (a Redis state URL, or several workers: the command line sets the multiprocess
    directory for those), or a guest would be a stranger to the next one.
    """
    shared = settings.state_url.partition("://")[0].lower() != "memory" or bool(os.environ.get(MULTIPROC_DIR))
    secret = server_secret(settings, shared=shared)
    guests = Guests(secret, leeway=settings.jwt_leeway) if settings.guests and secret is not None else None
    return Authority(Verifier.from_settings(settings), guests, RoomPolicy.from_settings(settings), settings.token_grace)


def output_budgets(settings: Settings) -> OutputBudgets:
    """Bytes per second a connection's requests may make it send, and its client address's."""
    return OutputBudgets(settings.output_bytes_per_second, settings.address_output_bytes_per_second)


def shared_state(settings: Settings) -> tuple[Broker, RoomStore]:
    """The tutorial chat's broker and the rooms' store, where ``ASGI_CHAT_STATE_URL`` says: both in
    this process (``memory://``), or both on one Redis link, so that a process opens one pub/sub
    connection to Redis, not one for each (engine/redis_link.py)."""
    url = settings.state_url
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        return MemoryBroker(), MemoryStore(settings)
    if scheme not in ("redis", "rediss"):
        raise ValueError(f"ASGI_CHAT_STATE_URL={url!r}: expected memory:// or redis://host:port/db")
    # Imported only for a Redis URL: redis-py is the optional dependency (pip install '.[redis]').
    from .engine.brokers.redis import RedisBroker
    from .engine.redis_link import RedisLink
    from .engine.stores.redis import RedisStore

    link = RedisLink(url)
    return RedisBroker(link), RedisStore(link, settings)
