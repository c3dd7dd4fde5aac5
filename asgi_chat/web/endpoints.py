"""The HTTP endpoints: the pages, their assets, ``/chat/config``, ``/healthz`` and ``/metrics``.

Each is ``async def endpoint(request, ctx) -> Response``: plain values in, a plain value out;
the app (asgi/app.py) sends the response. :class:`WebContext` says what they use of the app's
context (asgi_chat/context.py's ``Context`` is one).
"""

from __future__ import annotations

import os
from http import HTTPStatus
from typing import Protocol

from ..asgi.app import HttpRequest
from ..asgi.responses import Response, json_response, not_found
from ..engine.hub import Hub
from ..engine.rooms import Rooms
from .assets import Assets


class Figures(Protocol):
    """The app's counters as ``/healthz`` shows them (ops/metrics.py's Metrics)."""

    def as_dict(self) -> dict[str, object]: ...


class MetricsPage(Protocol):
    """``/metrics``' body and its media type (ops/metrics.py's Exposition)."""

    @property
    def content_type(self) -> str: ...

    def render(self) -> bytes: ...


class PageSettings(Protocol):
    """What the /chat page is told of the settings (ops/settings.py's Settings has them)."""

    @property
    def token_url(self) -> str | None: ...
    @property
    def guests(self) -> bool: ...


class WebContext(Protocol):
    """What the HTTP endpoints use of the app's context."""

    @property
    def settings(self) -> PageSettings: ...
    @property
    def assets(self) -> Assets: ...
    @property
    def hub(self) -> Hub: ...
    @property
    def rooms(self) -> Rooms: ...
    @property
    def metrics(self) -> Figures: ...
    @property
    def exposition(self) -> MetricsPage: ...


# path -> file: the tutorial's three pages.
PAGES = {"/": "chat.html", "/echo": "echo.html", "/items": "items.html", "/chat": "rooms.html"}


async def page(request: HttpRequest, ctx: WebContext) -> Response:
    return ctx.assets.response(PAGES[request.path], request.headers) or not_found()


async def asset(request: HttpRequest, ctx: WebContext) -> Response:
    name = request.path.rpartition("/")[2]
    return ctx.assets.response(name, request.headers) or not_found()


async def chat_config(request: HttpRequest, ctx: WebContext) -> Response:
    """How the /chat page signs people in: ``token_url``, where it fetches a token from the
    operator's backend before each hello (``ASGI_CHAT_TOKEN_URL``; null: nowhere), and ``guests``,
    whether a name alone will do (``ASGI_CHAT_GUESTS``). Nothing secret: what any visitor's page
    reads anyway. ``no-store``, so a changed setting holds from the page's next load."""
    settings = ctx.settings
    return json_response(HTTPStatus.OK, {"token_url": settings.token_url, "guests": settings.guests})


async def healthz(request: HttpRequest, ctx: WebContext) -> Response:
    """200 while the app can serve its chats; 503 while the broker or the rooms' store is down.

    The figures are this worker's (``pid`` says which one answered); ``/metrics`` adds workers up.
    """
    broker, store = ctx.hub.broker, ctx.rooms.store
    healthy = broker.healthy and store.healthy
    body: dict[str, object] = {
        "status": "ok" if healthy else "degraded",
        "pid": os.getpid(),
        "broker": "up" if broker.healthy else "down",
        "broker_dropped": broker.dropped,
        "rooms": "up" if store.healthy else "down",  # the rooms' store: memory, or Redis
        # Each bound of the store, and which are full (the oldest give way to the next: a full
        # bound is no outage, but an operator should know it is reached).
        "bounds": {bound.name: {"used": bound.used, "limit": bound.limit} for bound in store.bounds()},
        "full": [bound.name for bound in store.bounds() if bound.full],
    }
    body.update(ctx.metrics.as_dict())
    return json_response(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE, body)


async def metrics(request: HttpRequest, ctx: WebContext) -> Response:
    body = ctx.exposition.render()
    return Response(HTTPStatus.OK, body, ctx.exposition.content_type, ((b"cache-control", b"no-store"),))
