"""The HTTP endpoints: the pages, their assets, ``/healthz`` and ``/metrics``.

Each is ``async def endpoint(request, ctx) -> Response``: plain values in, a plain value out;
asgi/app.py sends the response.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus

from ..asgi.responses import Response, json_response, not_found
from ..asgi.routing import PathParams
from ..context import Context
from ..ops.metrics import Sample, prometheus_text

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
    """200 while the app can serve its chat; 503 while the broker is down (other processes cut off)."""
    healthy = ctx.hub.broker.healthy
    body: dict[str, object] = {
        "status": "ok" if healthy else "degraded",
        "connections": ctx.metrics.connections,
    }
    body["broker"] = "up" if healthy else "down"
    body.update(ctx.metrics.as_dict())
    return json_response(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE, body)


async def metrics(request: HttpRequest, ctx: Context) -> Response:
    broker = ctx.hub.broker
    extra = [
        Sample("asgi_chat_broker_up", "gauge", "1 while the broker is reachable, else 0.", int(broker.healthy)),
        Sample(
            "asgi_chat_broker_dropped_total", "counter", "Messages that did not reach other processes.", broker.dropped
        ),
    ]
    content_type = "text/plain; version=0.0.4; charset=utf-8"
    return Response(
        HTTPStatus.OK, prometheus_text(ctx.metrics, extra).encode(), content_type, ((b"cache-control", b"no-store"),)
    )
