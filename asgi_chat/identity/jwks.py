"""A key set (JWKS, RFC 7517 section 5) fetched from the operator's URL, cached by ``kid``.

An identity provider publishes its public keys at one URL and signs each token with one of
them, naming it in the token's ``kid`` header. :class:`JwksCache` keeps the keys of one URL,
which is one issuer's (``ASGI_CHAT_JWKS_URL`` beside ``ASGI_CHAT_JWT_ISSUER``), by ``kid``:

- fetched without blocking the event loop: urllib runs in a worker thread
  (:func:`asyncio.to_thread`), and one fetch at a time serves every connection that waits for it;
- a ``kid`` it does not know makes it fetch again, at most once per :attr:`refetch_interval`
  (a minute), so a key rotation at the provider works without a restart, and a client sending
  made-up ``kid`` values cannot make the server hammer the provider;
- the whole set is fetched again when it is older than :attr:`max_age` (an hour), so a key the
  provider withdrew stops being accepted; if that fetch fails, the keys it had stay in use (an
  outage of the provider does not lock everyone out);
- bounded: the fetch's time (:data:`TIMEOUT`) and size (:data:`MAX_BYTES`), and the keys kept
  (:data:`MAX_KEYS`); no redirect is followed.

What a key may be used for is decided by its own JWK: an ``oct`` (symmetric) key is never taken
from a URL (anyone can read a key set, RFC 8725 section 3.1's key confusion again), nor a key
whose ``use`` is not ``sig``, nor an RSA key under 2048 bits. Each key has one algorithm: its
``alg`` member, else its type's usual one (PyJWK decides: RSA: RS256, EC: by curve, OKP: EdDSA).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Final

import jwt

from .errors import KeysUnavailable, Unauthorized
from .keys import algorithms_for

logger = logging.getLogger("asgi_chat")

TIMEOUT: Final = 5.0  # seconds for one fetch, from connecting to the last byte
MAX_BYTES: Final = 256 * 1024  # a key set of 100 RSA-4096 keys is about 80 KiB
MAX_KEYS: Final = 100
REFETCH_INTERVAL: Final = 60.0
MAX_AGE: Final = 3600.0

Fetch = Callable[[str], Awaitable[bytes]]


class JwksCache:
    """The keys of one key set URL, by ``kid``; ``fetch`` and ``clock`` are a test's to replace."""

    def __init__(
        self,
        url: str,
        *,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.monotonic,
        refetch_interval: float = REFETCH_INTERVAL,
        max_age: float = MAX_AGE,
    ) -> None:
        self.url = url
        self.fetch = fetch or fetch_url
        self.clock = clock
        self.refetch_interval = refetch_interval
        self.max_age = max_age
        self.keys: dict[str, jwt.PyJWK] = {}
        self.fetches = 0  # attempts, for /metrics and tests
        self._fetched_at: float | None = None  # the last fetch that succeeded
        self._attempted_at: float | None = None  # the last fetch, whatever came of it
        self._failure: str | None = None  # why the last fetch failed, if it did
        self._running: asyncio.Task[None] | None = None

    async def key(self, kid: str) -> jwt.PyJWK:
        """The key ``kid`` names, fetching the set when allowed; :class:`Unauthorized` ("unknown
        kid") when the set does not hold it, :class:`KeysUnavailable` when it could not be fetched."""
        running = self._running
        if (running is None or running.done()) and self._may_fetch(kid):
            self._attempted_at = self.clock()
            self.fetches += 1
            running = self._running = asyncio.create_task(self._refresh())
        if running is not None and not running.done() and (kid not in self.keys or self._stale()):
            # A known kid of a fresh set does not wait for a fetch of another. Shielded: a connection
            # that goes away while waiting does not cancel the fetch the others wait for.
            await asyncio.shield(running)
        if kid in self.keys:
            return self.keys[kid]
        if self._failure is not None:
            raise KeysUnavailable(f"cannot fetch the key set: {self._failure}")
        raise Unauthorized("unknown kid", "no key of that kid in the key set")

    def _may_fetch(self, kid: str) -> bool:
        now = self.clock()
        if self._attempted_at is not None and now - self._attempted_at < self.refetch_interval:
            return False  # at most one fetch per interval, whatever tokens arrive
        return kid not in self.keys or self._stale()

    def _stale(self) -> bool:
        return self._fetched_at is None or self.clock() - self._fetched_at >= self.max_age

    async def _refresh(self) -> None:
        try:
            body = await self.fetch(self.url)
            if len(body) > MAX_BYTES:
                raise ValueError(f"more than {MAX_BYTES} bytes")
            self.keys = parse_key_set(body)
        except Exception as error:  # whatever went wrong, the keys it had stay in use
            self._failure = str(error) or type(error).__name__
            logger.warning("cannot fetch the key set at %s: %s", self.url, self._failure)
        else:
            self._fetched_at, self._failure = self._attempted_at, None

    async def close(self) -> None:
        """Stop a fetch under way (at shutdown): nothing is left running."""
        if self._running is not None and not self._running.done():
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)


def parse_key_set(body: bytes) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWKS document, by ``kid``; ValueError if it is not one."""
    document = json.loads(body)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('not a key set: expected {"keys": [...]}')
    found: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"][:MAX_KEYS]:
        key = _signing_key(entry)
        if key is not None:
            found[entry["kid"]] = key
    return found


def _signing_key(entry: object) -> jwt.PyJWK | None:
    """A JWK a token may be verified with, or None (it is skipped, as RFC 7517 section 5 says
    implementations should do with keys they do not understand)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
        return None  # a token finds its key by kid: a key without one can never be chosen
    if entry.get("kty") == "oct" or entry.get("use", "sig") != "sig":
        return None
    try:
        key = jwt.PyJWK(entry)
        usable = algorithms_for(key.key)
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    return key if key.algorithm_name in usable else None


async def fetch_url(url: str) -> bytes:
    """GET ``url`` in a worker thread, so the event loop goes on serving meanwhile."""
    return await asyncio.wait_for(asyncio.to_thread(_get, url), TIMEOUT)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the configured URL answers, or the fetch fails: keys come from nowhere else


def _get(url: str) -> bytes:
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "asgi-chat"})
    try:
        with opener.open(request, timeout=TIMEOUT) as response:
            body: bytes = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise OSError(f"HTTP {error.code}") from None
    except urllib.error.URLError as error:
        raise OSError(str(error.reason)) from None
    if len(body) > MAX_BYTES:
        raise ValueError(f"more than {MAX_BYTES} bytes")
    return body
