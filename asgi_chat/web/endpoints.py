"""The HTTP endpoints: the pages, their assets, ``/healthz`` and ``/metrics``.

Each is ``async def endpoint(request, ctx) -> Response``: plain values in, a plain value out;
asgi/app.py sends the response.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus

from ..asgi.responses import Response, json_response, not_found
from ..asgi.routing import PathParams
from ..context import Context
from ..ops.metrics import TEXT_FORMAT

# path -> file: the tutorial's three pages.
PAGES = {"/": "chat.html", "/echo": "echo.html", "/items": "items.html", "/chat": "rooms.html"}


@dataclass(frozen=True)
class HttpRequest:
    path: str
    method: str
    headers: Iterable[tuple[bytes, bytes]]
    params: PathParams


HttpEndpoint = Callable[[HttpRequest, Context], Awaitable[Response]]


async def page(request: HttpRequest, ctx: Context) -> Response:
    return ctx.assets.response(PAGES[request.path], request.headers) or not_found()


async def asset(request: HttpRequest, ctx: Context) -> Response:
    name = request.path.rpartition("/")[2]
    return ctx.assets.response(name, request.headers) or not_found()


async def healthz(request: HttpRequest, ctx: Context) -> Response:
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
    }
    body.update(ctx.metrics.as_dict())
    return json_response(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE, body)


async def metrics(request: HttpRequest, ctx: Context) -> Response:
    body = ctx.exposition.render()
    return Response(HTTPStatus.OK, body, TEXT_FORMAT, ((b"cache-control", b"no-store"),))
