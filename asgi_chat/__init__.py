"""asgi_chat: the FastAPI tutorial's WebSocket chat, written by hand on the ASGI protocol.

``asgi_chat.app`` is the app ``uvicorn asgi_chat:app`` serves; :func:`create_app` builds an
independent one (its own chat, its own settings) for tests and embedding.

The package's layout, and the way a message travels through it: docs/architecture.md.
"""

from __future__ import annotations

from .asgi.app import ChatApp, TracedChatApp
from .context import Context
from .endpoints import protocol
from .engine.brokers import Broker, broker_from_url
from .engine.fanout import Fanout
from .engine.hub import Hub
from .engine.policy import SlowConsumerPolicy
from .engine.rooms import Rooms
from .engine.stores import RoomStore, store_from_url
from .ops.deferred import DeferredApp
from .ops.metrics import Exposition, Metrics
from .ops.security import ConnectionLimits, CredentialVerifier, OriginPolicy, TokenSet, any_credential
from .ops.settings import Settings, from_env
from .web.assets import Assets

__all__ = ["ChatApp", "Settings", "app", "create_app"]


def create_app(
    settings: Settings | None = None,
    *,
    verify_credential: CredentialVerifier | None = None,
    broker: Broker | None = None,
    store: RoomStore | None = None,
) -> ChatApp:
    """Build an app. ``settings=None`` reads ``ASGI_CHAT_*`` from the environment.

    ``verify_credential(value) -> bool`` decides which credentials the items endpoint accepts;
    by default the tokens in ``ASGI_CHAT_TOKENS_FILE`` if set, else any non-empty value.
    Raises :class:`~asgi_chat.ops.settings.SettingsError` for a setting it cannot use.
    """
    settings = settings or from_env()
    if verify_credential is None:
        verify_credential = TokenSet.from_file(settings.tokens_file) if settings.tokens_file else any_credential
    metrics = Metrics()
    policy = SlowConsumerPolicy(settings.outbox_max_messages, settings.outbox_max_bytes, settings.send_timeout)
    fanout = Fanout(policy, metrics)
    hub = Hub(fanout, broker or broker_from_url(settings.broker_url))
    store = store or store_from_url(settings.broker_url, settings, protocol.msg)
    ctx = Context(
        settings=settings,
        metrics=metrics,
        exposition=Exposition(metrics, hub.broker, store),
        fanout=fanout,
        hub=hub,
        rooms=Rooms(store, settings),
        assets=Assets(),
        origins=OriginPolicy(settings.allowed_origins),
        limits=ConnectionLimits(settings.max_connections, settings.max_connections_per_address),
        verify_credential=verify_credential,
    )
    return TracedChatApp(ctx) if settings.trace else ChatApp(ctx)


# Built from the environment on the first scope the server hands it, not at import: importing
# any part of the package never fails because of a setting (see ops/deferred.py).
app = DeferredApp(create_app)
