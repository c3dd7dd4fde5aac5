"""Small HTTP response helpers: a :class:`Response` value and the two ASGI messages that send it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus

from asgiref.typing import ASGISendCallable

from .errors import Refusal

# Sent with every HTTP response. The pages load script and style only from this server
# (no inline script, so an injected <script> or onerror= does not run), may open WebSockets
# only back to it, and may not be framed by another site (clickjacking).
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate CSP 2
)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[bytes, bytes], ...] = field(default=())

    def header_list(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-type", self.content_type.encode()),
            (b"content-length", str(len(self.body)).encode()),
            *self.headers,
            *SECURITY_HEADERS,
        ]


def text(status: int, body: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> Response:
    return Response(status, body.encode(), headers=tuple(headers))


def json_response(status: int, data: object) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(status, body, "application/json", ((b"cache-control", b"no-store"),))


def not_found() -> Response:
    return text(HTTPStatus.NOT_FOUND, "Not Found\n")


def denial(refusal: Refusal) -> Response:
    """The HTTP answer to a WebSocket handshake refused before accept: the refusal's status, and
    its reason as the body, the same text the app logs. A reason is written for the person at
    the other end: whatever raises a refusal keeps secrets out of it (see ops/security.py)."""
    retry = () if refusal.retry_after is None else ((b"retry-after", str(refusal.retry_after).encode()),)
    return text(refusal.http_status, refusal.reason + "\n", retry)


def method_not_allowed(allowed: Iterable[str]) -> Response:
    # RFC 9110 15.5.6: a 405 "MUST generate an Allow header field" listing the allowed methods.
    allow = ", ".join(sorted(allowed)).encode()
    return text(HTTPStatus.METHOD_NOT_ALLOWED, "Method Not Allowed\n", [(b"allow", allow)])


async def send_response(send: ASGISendCallable, response: Response, method: str) -> None:
    """Send ``response``; for HEAD, the same headers without the body (RFC 9110 9.3.2)."""
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": response.header_list(),
            "trailers": False,
        }
    )
    body = b"" if method == "HEAD" else response.body
    await send({"type": "http.response.body", "body": body, "more_body": False})
