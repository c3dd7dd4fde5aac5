"""What the client raises, as one small tree; each error carries what the caller needs to act.

::

    ClientError
     ├── Refused     the server answered a request with an ``error`` frame: its ``code``
     │               (docs/rooms.md), ``message``, and ``retry_ms`` for ``slow_down``
     └── Closed      the client stopped for good: its close ``code`` (None when no
                     connection opened) and ``reason``
    BadFrame         (a ValueError) a frame that is not what the protocol says: the client
                     logs it and reads on; only parse_frame raises it to you

``Refused`` answers one request and the client goes on; ``Closed`` ends every wait at once: the
pending ``say`` calls, ``join`` calls and the ``async for`` over the events.
"""

from __future__ import annotations


class ClientError(Exception):
    """The root of what :class:`asgi_chat.client.Client` raises on purpose."""


class Refused(ClientError):
    """The server answered a request with an ``error`` (``code`` is one of docs/rooms.md's)."""

    def __init__(self, code: str, message: str, retry_ms: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_ms = retry_ms


class Closed(ClientError):
    """The client stopped for good: you closed it, the server closed with a code that means "do not
    come back" (``code``; None when no connection opened), or the tries in a row ran out."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed ({code}): {reason}" if code is not None else f"closed: {reason}")
        self.code = code
        self.reason = reason


class BadFrame(ValueError):
    """A frame that is not what the protocol says: not JSON, not an object, a field missing."""
