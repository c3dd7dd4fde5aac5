"""asgi_chat: the FastAPI tutorial's WebSocket chat, written by hand on the ASGI protocol.

``asgi_chat.app`` is the app ``uvicorn asgi_chat:app`` serves; :func:`create_app` builds an
independent one (its own chat, its own settings) for tests and embedding.
"""

from __future__ import annotations

from .application import ChatApp, TracedChatApp
from .brokers import Broker, broker_from_url
from .context import Context
from .hub import Hub
from .metrics import Metrics
from .pages import Assets
from .security import ConnectionLimits, CredentialVerifier, OriginPolicy, TokenSet, any_credential
from .settings import Settings, from_env

__all__ = ["ChatApp", "Settings", "app", "create_app"]


def create_app(
    settings: Settings | None = None,
    *,
    verify_credential: CredentialVerifier | None = None,
    broker: Broker | None = None,
) -> ChatApp:
    """Build an app. ``settings=None`` reads ``ASGI_CHAT_*`` from the environment.

    ``verify_credential(value) -> bool`` decides which credentials the items endpoint accepts;
    by default the tokens in ``ASGI_CHAT_TOKENS_FILE`` if set, else any non-empty value.
    """
    settings = settings or from_env()
    if verify_credential is None:
        verify_credential = TokenSet.from_file(settings.tokens_file) if settings.tokens_file else any_credential
    metrics = Metrics()
    ctx = Context(
        settings=settings,
        metrics=metrics,
        hub=Hub(settings, broker or broker_from_url(settings.broker_url), metrics),
        assets=Assets(),
        origins=OriginPolicy(settings.allowed_origins),
        limits=ConnectionLimits(settings.max_connections, settings.max_connections_per_address),
        verify_credential=verify_credential,
    )
    return TracedChatApp(ctx) if settings.trace else ChatApp(ctx)


app = create_app()
