"""The defences, each a small object decided in one place: origin, credentials, rate, size, connections.

Where a credential travels is endpoints/credentials.py's to say; here is only whether one is accepted.

docs/security.md explains the threat each one answers, its default and the test that proves it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from ..asgi.errors import MessageTooBig, PolicyViolation, TryAgainLater
from ..asgi.parsing import Origin, header_values, parse_origin, request_origin
from .logs import redact
from .settings import SettingsError

logger = logging.getLogger("asgi_chat")

CredentialVerifier = Callable[[str], bool]


# --- origin -------------------------------------------------------------------------------------


class OriginPolicy:
    """Refuse cross-site WebSocket hijacking: browsers attach cookies to a WebSocket opened by any
    page, and CORS does not apply to WebSockets, so the ``Origin`` header (RFC 6455 section 10.2)
    is the server's only way to tell its own pages from someone else's."""

    def __init__(self, allowed: Iterable[str]) -> None:
        allowed = list(allowed)
        self.allow_all = "*" in allowed
        self.allowed: frozenset[Origin] = frozenset(_setting_origin(item) for item in allowed if item != "*")

    def check(self, headers: Iterable[tuple[bytes, bytes]], scheme: str) -> None:
        """Pass a request without ``Origin`` (not a browser), a same-origin one, or an allowed one."""
        if self.allow_all:
            return
        headers = list(headers)
        origins = header_values(headers, b"origin")
        if not origins:
            return
        if len(origins) > 1:
            raise PolicyViolation("origin not allowed: more than one Origin header")
        text = origins[0].decode("latin-1")
        try:
            origin = parse_origin(text)
        except ValueError:
            # The reason goes to the client too (the denial's body): an Origin it quotes that
            # carries a token keeps it no more than the log line does.
            raise PolicyViolation(redact(f"origin not allowed: {text[:80]!r}")) from None
        if origin in self.allowed or origin == _own_origin(headers, scheme):
            return
        raise PolicyViolation(f"origin not allowed: {origin}")


def _own_origin(headers: list[tuple[bytes, bytes]], scheme: str) -> Origin | None:
    hosts = header_values(headers, b"host")
    if len(hosts) != 1:
        return None
    try:
        return request_origin(scheme, hosts[0].decode("latin-1"))
    except ValueError:
        return None


def _setting_origin(text: str) -> Origin:
    try:
        return parse_origin(text)
    except ValueError:
        raise SettingsError(f"ASGI_CHAT_ALLOWED_ORIGINS: {text!r} is not scheme://host[:port]") from None


# --- credentials --------------------------------------------------------------------------------


def any_credential(value: str) -> bool:
    """The tutorial's rule: any non-empty credential passes."""
    return bool(value)


class TokenSet:
    """Accept only the tokens listed in a file (one per line), compared in constant time.

    Each comparison is between SHA-256 digests with ``hmac.compare_digest``, and every listed token
    is compared, so the time taken says nothing about how much of a guess was right.
    """

    def __init__(self, tokens: Iterable[str]) -> None:
        self._digests = [_digest(token) for token in tokens if token]

    @classmethod
    def from_file(cls, path: str) -> TokenSet:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise SettingsError(f"ASGI_CHAT_TOKENS_FILE={path!r}: cannot read it ({exc.strerror})") from None
        return cls(line.strip() for line in lines)

    def __call__(self, value: str) -> bool:
        candidate = _digest(value)
        matches = [hmac.compare_digest(candidate, digest) for digest in self._digests]
        return any(matches)

    def __len__(self) -> int:
        return len(self._digests)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


# --- inbound messages ---------------------------------------------------------------------------


class InboundGuard:
    """Per-connection limits on what a client sends: size (1009) and rate (a token bucket, 1008).

    The rate is the client's, not the app's: ASGI hands the app no arrival time, only the next
    message when the app asks for it, so after the server was busy (another client's burst, a
    long history page) an honest client's queued messages are read back to back and look like
    one burst. The bucket therefore tells the two cases apart by whether the message was already
    waiting (``queued``: the receive returned without waiting for the client): while the app is
    behind, the tokens its own delay earned are kept beyond ``burst`` (up to ``STALL_CREDIT``
    seconds' worth), so the messages read late pass as they would have on arrival; once a
    receive waits for the client again, the app has caught up and the cap of ``burst`` applies.
    A flood still gets no more than ``rate`` per second on average: each message takes a token.
    """

    __slots__ = ("_clock", "_last", "_tokens", "burst", "max_bytes", "rate")

    STALL_CREDIT: Final = 30.0  # seconds of the app's own delay forgiven at most

    def __init__(self, max_bytes: int, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.rate = rate
        self.burst = max(burst, 1)
        self._clock = clock
        self._tokens = float(self.burst)
        self._last = clock()

    def admit(self, payload: str | bytes, queued: bool = False) -> None:
        if self.max_bytes and _utf8_size_over(payload, self.max_bytes):
            raise MessageTooBig(f"message too big: the limit is {self.max_bytes} bytes")
        if self.rate and not self._take(queued):
            raise PolicyViolation(f"too many messages: the limit is {self.rate:g} per second")

    def _take(self, queued: bool) -> bool:
        now = self._clock()
        cap = self.burst + self.STALL_CREDIT * self.rate if queued else self.burst
        self._tokens = min(cap, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


def _utf8_size_over(payload: str | bytes, limit: int) -> bool:
    # A character takes 1 to 4 bytes in UTF-8: encode only when the length alone cannot decide.
    if isinstance(payload, bytes) or len(payload) > limit or len(payload) * 4 <= limit:
        return len(payload) > limit
    return len(payload.encode("utf-8", "surrogatepass")) > limit


# --- connections --------------------------------------------------------------------------------


class ConnectionLimits:
    """Open WebSockets in total and per client address, counted from handshake to close."""

    def __init__(self, max_total: int, max_per_address: int) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.total = 0
        self._per_address: Counter[str] = Counter()

    def acquire(self, client: Iterable[object] | None) -> str:
        """Count one more connection from ``client`` (the scope's ``[host, port]``), or refuse it.

        Returns the key to :meth:`release` it with: the client's address, or "" when the server
        gave none (a Unix socket), which only the total limit applies to.
        """
        address = str(next(iter(client), "")) if client else ""
        if self.max_total and self.total >= self.max_total:
            raise TryAgainLater("server full: too many open connections")
        if address and self.max_per_address and self._per_address[address] >= self.max_per_address:
            raise TryAgainLater("too many open connections from your address")
        self.total += 1
        if address:
            self._per_address[address] += 1
        return address

    def release(self, address: str) -> None:
        self.total -= 1
        if address:
            self._per_address[address] -= 1
            if not self._per_address[address]:
                del self._per_address[address]
