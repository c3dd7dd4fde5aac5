"""What the Redis broker decides without I/O: the envelope a message travels in, the broker URL
as it may be shown, and how long to wait before reconnecting.

Kept apart from :mod:`asgi_chat.engine.brokers.redis` so that these can be read, and tested, without
redis-py installed.
"""

from __future__ import annotations

import json
from typing import Final, NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit

HIDDEN: Final = "***"


class Envelope(NamedTuple):
    """One message as it travels through Redis: who sent it, for which channel, and the text."""

    origin: str
    channel: str
    text: str


def frame(envelope: Envelope) -> bytes:
    """A JSON array: any text round-trips, separators and quotes included."""
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def unframe(data: bytes) -> Envelope | None:
    """The envelope in ``data``, or None when ``data`` is not one (something else published it)."""
    try:
        value = json.loads(data)
    except ValueError:  # not JSON, or not UTF-8
        return None
    if isinstance(value, list) and len(value) == 3 and all(isinstance(item, str) for item in value):
        return Envelope(*value)
    return None


def redact_url(url: str) -> str:
    """``url`` fit for a log line: any password (in the user info or a ``password=`` query
    parameter) replaced by ``***``. A lone user name is hidden too: people put the password there."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced "[" in the host: nothing is safe to show
        return f"{url.partition('://')[0]}://{HIDDEN}"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{HIDDEN}@{hostport}" if colon else f"{HIDDEN}@{hostport}"
    query = "&".join(_redact_parameter(pair) for pair in parts.query.split("&")) if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _redact_parameter(pair: str) -> str:
    name, equals, _ = pair.partition("=")
    return f"{name}={HIDDEN}" if equals and unquote(name).lower() == "password" else pair


def backoff_delay(attempt: int, first: float, cap: float, jitter: float) -> float:
    """Seconds to wait before reconnection attempt ``attempt`` (0, 1, ...); ``jitter`` in [0, 1).

    Exponential, capped, and "equal jitter" (between half the ceiling and the ceiling): after a
    Redis restart the processes do not all reconnect in the same millisecond, and none waits
    longer than ``cap``.
    """
    ceiling = min(cap, first * 2.0 ** min(attempt, 64))  # the exponent bound avoids OverflowError
    return ceiling * (0.5 + jitter / 2)


def describe(error: BaseException) -> str:
    """The error for a log line or a message, without a final period: it goes mid-sentence."""
    return (str(error) or type(error).__name__).rstrip(".")
