"""Close codes and the small tree of errors that carry them.

::

                                    close HTTP (refused before accept, with the extension)
    ChatError
     ├── Refusal              the app ends a WebSocket on purpose, with a code and a reason
     │    ├── NotFound              1000  404  no WebSocket route at this path
     │    ├── PolicyViolation       1008  403  missing/invalid credentials, bad parameter, origin, rate
     │    ├── UnsupportedData       1003  403  a binary frame on an endpoint that speaks text
     │    ├── MessageTooBig         1009  403  an inbound message over the size limit
     │    ├── TryAgainLater         1013  503  slow consumer, too many connections, store or broker down
     │    └── GoingAway             1001  503  the server is shutting down
     ├── Disconnected         the peer is gone; the connection ends quietly
     ├── ProtocolError        a message arrived that the ASGI state machine does not allow
     └── NoRoute              the router's answer, the same for HTTP and WebSocket:
          └── BadParameter        the path matches a route but a typed parameter does not parse

A refusal raised after ``websocket.accept`` becomes a close frame with its code and reason.
Raised before, it is an HTTP response instead of the 101 that would open the WebSocket: with its
own ``http_status`` and its reason as a text body when the server offers ASGI's "WebSocket Denial
Response" extension (``websocket.http.response`` in the scope's extensions), else a bare 403 (ASGI
spec, "Close - send event": the server "must close the connection with a HTTP 403 error code").
UnsupportedData and MessageTooBig only ever happen after accept: their 403 is the default, unused.
"""

from __future__ import annotations

from enum import IntEnum
from http import HTTPStatus


class CloseCode(IntEnum):
    """The WebSocket close codes this app sends (RFC 6455 section 7.4.1, and IANA's registry)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005  # never sent: a close frame without a code reads as 1005 (RFC 6455 7.1.5)
    ABNORMAL = 1006  # never sent: the connection dropped without a close frame
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012  # never sent: uvicorn's own, as it restarts or stops (engine/hub.py reads it)
    TRY_AGAIN_LATER = 1013


# The codes above that only ever arrive (from the server, or the peer's side): every other one is
# a close the app itself sends, and /metrics shows each of those from 0 (ops/metrics.py).
NEVER_SENT = frozenset({CloseCode.NO_STATUS, CloseCode.ABNORMAL, CloseCode.SERVICE_RESTART})


class ChatError(Exception):
    """The root of every error this package raises on purpose."""


class Refusal(ChatError):
    """End the WebSocket with ``code`` and ``reason`` (a short text for the person at the other end).

    Before accept, a server with the denial-response extension answers ``http_status`` instead,
    with the reason as its body and, when ``retry_after`` is set, a ``Retry-After`` of that many
    seconds (RFC 9110 10.2.3: how long "the user agent ought to wait before making a follow-up
    request").
    """

    # A CloseCode, or an application's own code: RFC 6455 7.4.2 leaves 4000-4999 "reserved for
    # private use" (the rooms endpoint's 4001, 4401 and 4403: endpoints/identity.py).
    code: int = CloseCode.POLICY_VIOLATION
    http_status: HTTPStatus = HTTPStatus.FORBIDDEN  # what a bare refusal is anyway (ASGI's 403)
    retry_after: int | None = None

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self.code)}, {self.reason!r})"


class NotFound(Refusal):
    # Starlette closes an unmatched WebSocket with 1000 too: nothing went wrong, there is just nothing here.
    code = CloseCode.NORMAL
    http_status = HTTPStatus.NOT_FOUND  # as HTTP answers the same path (NoRoute.http_status)

    @classmethod
    def from_route(cls, error: NoRoute) -> Refusal:
        """The WebSocket answer to a routing error: 1000 "not found", or 1008 naming the parameter."""
        return PolicyViolation(error.reason) if isinstance(error, BadParameter) else cls(error.reason)


class PolicyViolation(Refusal):
    code = CloseCode.POLICY_VIOLATION


class UnsupportedData(Refusal):
    code = CloseCode.UNSUPPORTED_DATA


class MessageTooBig(Refusal):
    code = CloseCode.MESSAGE_TOO_BIG


class TryAgainLater(Refusal):
    code = CloseCode.TRY_AGAIN_LATER
    # RFC 9110 15.6.4: 503, "the server is currently unable to handle the request due to a
    # temporary overload"; not 429, which would blame this client for a server that is full.
    http_status = HTTPStatus.SERVICE_UNAVAILABLE
    # A hint, not a promise: the Redis clients reconnect within about 2 s of Redis returning
    # (engine/brokers/redis.py, backoff_cap), and a full server frees slots as people leave.
    retry_after = 5


class GoingAway(Refusal):
    code = CloseCode.GOING_AWAY
    http_status = HTTPStatus.SERVICE_UNAVAILABLE


class Disconnected(ChatError):
    """The peer has gone (or the server dropped it); ``code`` is the close code the server reported."""

    def __init__(self, code: int = CloseCode.NO_STATUS) -> None:
        super().__init__(f"disconnected with code {code}")
        self.code = code


class ProtocolError(ChatError):
    """An ASGI message that is not allowed in the session's current state.

    It names both, so a server bug (or a test sending the wrong event) reads plainly:
    ``in state CONNECTING, received 'websocket.receive'``.
    """

    def __init__(self, state: str, direction: str, message_type: str, detail: str = "") -> None:
        super().__init__(f"in state {state}, {direction} {message_type!r}" + (f": {detail}" if detail else ""))
        self.state = state
        self.direction = direction
        self.message_type = message_type


class NoRoute(ChatError):
    """No route matches the path. Protocol-neutral: HTTP answers 404, WebSocket closes with 1000.

    The router raises it and knows nothing of either protocol; each side maps it (asgi/app.py).
    """

    http_status = 404

    def __init__(self, reason: str = "not found") -> None:
        super().__init__(reason)
        self.reason = reason


class BadParameter(NoRoute):
    """The path has a route's shape, but a typed parameter does not parse (``/ws/abc`` for
    ``{client_id:int}``): HTTP answers 404 (no such resource), WebSocket closes with 1008 naming it."""
