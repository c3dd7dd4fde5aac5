"""Close codes and the small tree of errors that carry them.

::

    ChatError
     ├── Refusal              the app ends a WebSocket on purpose, with a code and a reason
     │    ├── NotFound              1000  no WebSocket route at this path
     │    ├── PolicyViolation       1008  missing/invalid credentials, bad parameter, origin, rate
     │    ├── UnsupportedData       1003  a binary frame on an endpoint that speaks text
     │    ├── MessageTooBig         1009  an inbound message over the size limit
     │    ├── TryAgainLater         1013  slow consumer, too many connections
     │    └── GoingAway             1001  the server is shutting down
     ├── Disconnected         the peer is gone; the connection ends quietly
     ├── ProtocolError        a message arrived that the ASGI state machine does not allow
     └── NoRoute              the router's answer, the same for HTTP and WebSocket:
          └── BadParameter        the path matches a route but a typed parameter does not parse

A refusal raised before ``websocket.accept`` becomes an HTTP 403 on the wire (ASGI spec,
"Close - send event": the server "must close the connection with a HTTP 403 error code");
raised after, it becomes a close frame with its code and reason.
"""

from __future__ import annotations

from enum import IntEnum


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
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013


class ChatError(Exception):
    """The root of every error this package raises on purpose."""


class Refusal(ChatError):
    """End the WebSocket with ``code`` and ``reason`` (a short text for the person at the other end)."""

    code: CloseCode = CloseCode.POLICY_VIOLATION

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self.code)}, {self.reason!r})"


class NotFound(Refusal):
    # Starlette closes an unmatched WebSocket with 1000 too: nothing went wrong, there is just nothing here.
    code = CloseCode.NORMAL

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


class GoingAway(Refusal):
    code = CloseCode.GOING_AWAY


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
