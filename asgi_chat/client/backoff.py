"""When to reconnect, and after how long: the client's policy, in pure functions.

Two questions, answered without any I/O so that a table of tests can pin them down:

- **Whether** (:func:`verdict`): the close code (RFC 6455 section 7.4.1, and the 4000s this chat
  gives its own meanings) says whether the same connection would succeed a little later. A server
  that closed on purpose (policy, a binary frame, a frame too big, an unauthorized or banned user)
  would do it again, so the client stops and says why rather than hammer it.
- **When** (:class:`Backoff`): exponential backoff with *full jitter* (AWS Architecture Blog,
  "Exponential Backoff And Jitter"): the n-th retry waits a uniformly random time between 0 and
  ``min(cap, base * 2**n)``. The randomness spreads out the clients that one server restart
  disconnected all at once, so they do not all come back in the same instant; the cap bounds
  the wait, and ``attempts`` bounds how long the client keeps trying before it gives up.

And one more "when", for a live connection (:func:`refresh_in`): when to send ``get_token``'s new
token in a ``refresh``, before the token the connection stands on expires.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Final

# asgi_chat closes a client for its rate with 1008 and a reason that starts with this
# (asgi_chat/ops/security.py): a client that slows down is welcome back, unlike other 1008s.
RATE_REASON: Final = "too many messages"


class Verdict(enum.Enum):
    RETRY = "retry"  # the same connection may well succeed a little later
    REFRESH = "refresh"  # the token expired: get a new one (get_token), then retry
    STOP = "stop"  # the server would refuse again: stop, and say why


# Worth another try: going away (1001: a server stopping, a proxy restarting), dropped without a
# close frame (1006: a lost network, a killed server), server error (1011), service restart (1012:
# uvicorn's close as it restarts or stops), try again later (1013: a slow consumer, a store out of
# reach), bad gateway (1014: a proxy whose upstream is down).
RETRY_CODES: Final = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
# The identity issue's codes: 4001 the token expired (get a new one and come back); 4401
# unauthorized and 4403 disconnected by a moderator are final, like every code not listed here.
TOKEN_EXPIRED: Final = 4001
# HTTP answers to the handshake that may change by themselves: too many requests, and the 5xx
# (asgi_chat answers 503 while its room store is out of reach, or it is shutting down).
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
# A refresh goes a third of the token's remaining life before it expires, at most this many
# seconds before (a 10-minute token is refreshed a minute early, a 3-second one a second early).
REFRESH_LEAD_MAX: Final = 60.0


def verdict(code: int, reason: str = "") -> Verdict:
    """What to do after the server closed an open connection with ``code`` and ``reason``."""
    if code in RETRY_CODES or (code == 1008 and reason.startswith(RATE_REASON)):
        return Verdict.RETRY
    if code == TOKEN_EXPIRED:
        return Verdict.REFRESH
    # 1000 included: asgi_chat closes with it only for a path it does not serve, which stays so.
    return Verdict.STOP


def handshake_verdict(status: int) -> Verdict:
    """What to do after the server answered the opening handshake with HTTP ``status``."""
    return Verdict.RETRY if status in RETRY_STATUSES else Verdict.STOP


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before each retry, and for how many.

    ``base`` and ``cap`` are seconds; ``attempts`` is how many tries in a row may fail before the
    client gives up (None: never). A connection that was welcomed and then stayed up for
    ``stable`` seconds counts as a success: the next drop starts again from ``base``. (Starting
    again at every welcome would let a server that accepts and then closes at once be hammered.)
    """

    base: float = 0.5
    cap: float = 20.0
    attempts: int | None = 12
    stable: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError(f"need 0 < base <= cap, got base={self.base}, cap={self.cap}")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry number ``attempt`` (0 for the first)."""
        # min() before the power would overflow: 2**1100 is fine as an int, not as a float.
        return min(self.cap, self.base * 2.0 ** min(attempt, 64))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: a uniformly random wait in [0, ceiling(attempt)]."""
        return rng.uniform(0.0, self.ceiling(attempt))

    def exhausted(self, failures: int) -> bool:
        """True when ``failures`` tries in a row have failed and no more are allowed."""
        return self.attempts is not None and failures >= self.attempts


def refresh_in(expires_ms: int, now: float) -> float:
    """Seconds from ``now`` (seconds since 1970) until the refresh of a token that expires at
    ``expires_ms`` (ms since 1970): a third of its remaining life before then, at most a minute
    before; at once if that time has passed."""
    remaining = expires_ms / 1000 - now
    return max(remaining - min(remaining / 3, REFRESH_LEAD_MAX), 0.0)
