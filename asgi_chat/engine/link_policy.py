"""What the Redis link (redis_link.py) decides without I/O: how long to wait (its timeouts, and
before reconnecting), the Redis URL as it may be shown, and an error as it goes into a sentence.

Kept apart from :mod:`asgi_chat.engine.redis_link` so that these can be read, and tested, without
redis-py installed. The broker's envelope is in brokers/wire.py, the store's messages in
stores/redis.py: each is the concern of one user of the link.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit, urlunsplit

HIDDEN: Final = "***"


@dataclass(frozen=True, slots=True)
class Timing:
    """How long the link waits, in seconds. Tests shorten them; the defaults suit a LAN."""

    timeout: float = 2.0  # to connect, and for each reply (a PING's included)
    idle_ping: float = 1.0  # a subscription this long without traffic is PINGed to prove it alive
    backoff_first: float = 0.1  # the first wait before reconnecting; it doubles up to backoff_cap,
    backoff_cap: float = 2.0  # so the subscriptions are back within about 2 s of Redis returning

    @property
    def open_timeout(self) -> float:
        # Connecting, the handshake, and the SUBSCRIBE reply, each bounded by ``timeout``.
        return 3 * self.timeout


def backoff_delay(attempt: int, first: float, cap: float, jitter: float) -> float:
    """Seconds to wait before reconnection attempt ``attempt`` (0, 1, ...); ``jitter`` in [0, 1).

    Exponential, capped, and "equal jitter" (between half the ceiling and the ceiling): after a
    Redis restart the processes do not all reconnect in the same millisecond, and none waits
    longer than ``cap``.
    """
    ceiling = min(cap, first * 2.0 ** min(attempt, 64))  # the exponent bound avoids OverflowError
    return ceiling * (0.5 + jitter / 2)


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


def describe(error: BaseException) -> str:
    """The error for a log line or a message, without a final period: it goes mid-sentence."""
    return (str(error) or type(error).__name__).rstrip(".")
