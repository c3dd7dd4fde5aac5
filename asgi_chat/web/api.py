"""The gate of the HTTP API under ``/api/v1/`` (docs/api.md): keys, rates, routes, one error shape.

The API is on only when ``ASGI_CHAT_API_KEYS_FILE`` names a file of keys: the composition then
routes every path under ``/api/`` to one :class:`Api` (``/api/{rest:path}``), which routes on
its own (api_endpoints.py's table), so that an unknown path or method is answered in the API's
JSON, not the pages' text. Off, no route leads here, and a path under ``/api/`` is a 404 like any
unknown path.

In order, for each request: the key (``Authorization: Bearer KEY``: 401 with
``WWW-Authenticate`` otherwise), the key's rate (a token bucket of ``ASGI_CHAT_API_RATE_PER_SECOND``
holding one second's worth: 429 with ``Retry-After``), the route (404), the method (405 with
``Allow``), then the endpoint. Every refusal is ``{"error": CODE, "message": TEXT}``.

A key is never kept, logged or shown: only its SHA-256 digest is held, compared with
``hmac.compare_digest`` against every listed digest (the time taken says nothing of how much of
a guess was right, as ops/security.py's TokenSet does), and a log line names a key by its
fingerprint, the first 8 hex digits of the digest.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path

from ..asgi.app import HttpRequest
from ..asgi.body import BadLength, BodyTooLarge
from ..asgi.parsing import header_values
from ..asgi.responses import Response
from ..endpoints.fields import BadRequest
from ..engine.stores import Forbidden, RoomLimit, StoreUnavailable
from . import openapi
from .api_endpoints import GET, PREFIX, ROUTES, ApiContext, ApiError, Call, answer

logger = logging.getLogger("asgi_chat")

# Every method the gate takes in, to answer the API's own 405 for those a route does not take.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CHALLENGE = (b"www-authenticate", b'Bearer realm="asgi_chat"')


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class ApiKeys:
    """The keys the API takes, held as digests; :meth:`owner` is a key's fingerprint, or None."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(key) for key in keys if key]

    @classmethod
    def from_file(cls, path: str) -> ApiKeys:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"ASGI_CHAT_API_KEYS_FILE={path!r}: cannot read it ({exc.strerror})") from None
        keys = cls(line.strip() for line in lines)
        if not keys._digests:
            raise ValueError(f"ASGI_CHAT_API_KEYS_FILE={path!r}: it lists no key")
        return keys

    def owner(self, presented: str) -> str | None:
        candidate = _digest(presented)
        matches = [hmac.compare_digest(candidate, digest) for digest in self._digests]  # every one compared
        return "key:" + candidate.hex()[:8] if any(matches) else None


class Buckets:
    """A token bucket per key: ``rate`` requests a second, ``rate`` at once (0: no limit)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, max(rate, 1.0), clock
        self._held: dict[str, tuple[float, float]] = {}  # owner -> (tokens, when)

    def take(self, owner: str) -> float:
        """0 when a request may go now; else the seconds until it may."""
        if not self.rate:
            return 0.0
        now = self._clock()
        tokens, then = self._held.get(owner, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1:
            self._held[owner] = (tokens, now)
            return (1 - tokens) / self.rate
        self._held[owner] = (tokens - 1, now)
        return 0.0


class Api:
    """The HTTP endpoint every ``/api/`` path leads to (``async def (request, ctx) -> Response``)."""

    def __init__(self, keys: ApiKeys, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.keys = keys
        self.buckets = Buckets(rate, clock)

    async def __call__(self, request: HttpRequest, ctx: ApiContext) -> Response:
        try:
            owner = self._authorized(request.headers)
            wait = self.buckets.take(owner)
            if wait:
                retry = (b"retry-after", str(math.ceil(wait)).encode())
                raise ApiError(HTTPStatus.TOO_MANY_REQUESTS, "rate_limited", "too many requests for this key", (retry,))
            await ctx.rooms.open()  # idempotent: opened at start-up, or by the first API call here
            return await self._route(Call(request, ctx, owner))
        except ApiError as error:
            return answer(error.status, {"error": error.code, "message": error.message}, error.headers)
        except BadRequest as error:  # a field refused by the protocol's own parsers
            return answer(HTTPStatus.BAD_REQUEST, {"error": error.code, "message": error.message})
        except BodyTooLarge as error:
            return answer(error.http_status, {"error": "too_large", "message": str(error)})
        except BadLength as error:
            return answer(error.http_status, {"error": "bad_request", "message": str(error)})
        except Forbidden as error:  # the person published as is muted in the room
            return answer(HTTPStatus.FORBIDDEN, {"error": "forbidden", "message": str(error)})
        except RoomLimit as error:
            return answer(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "too_many_rooms", "message": str(error)})
        except StoreUnavailable:
            message = "the room store cannot be reached; try again"
            return answer(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "unavailable", "message": message})

    def _authorized(self, headers: Iterable[tuple[bytes, bytes]]) -> str:
        """The key's fingerprint; 401 for no key or a wrong one (RFC 6750 section 3)."""
        values = header_values(headers, b"authorization")
        scheme, _, key = (values[0].decode("latin-1") if len(values) == 1 else "").partition(" ")
        owner = self.keys.owner(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
        if owner is None:
            logger.info("api: a request without a valid key refused (401)")
            message = "send Authorization: Bearer KEY with a key of ASGI_CHAT_API_KEYS_FILE"
            raise ApiError(HTTPStatus.UNAUTHORIZED, "unauthorized", message, (CHALLENGE,))
        return owner

    async def _route(self, call: Call) -> Response:
        path, method = call.request.path, call.request.method
        if path == f"{PREFIX}/openapi.json":
            if method not in GET:
                raise _not_allowed(GET)
            return answer(HTTPStatus.OK, openapi.document())
        matches = [(route, route.match(path)) for route in ROUTES]
        found = [(route, params) for route, params in matches if params is not None]
        if not found:
            raise ApiError(HTTPStatus.NOT_FOUND, "not_found", f"no such API path: {path[:100]}")
        for route, params in found:
            if method in route.methods:
                return await route.endpoint(call, **params)
        raise _not_allowed(frozenset().union(*(route.methods for route, _ in found)))


def _not_allowed(allowed: frozenset[str]) -> ApiError:
    allow = (b"allow", ", ".join(sorted(allowed)).encode())  # RFC 9110 15.5.6: a 405 MUST send Allow
    return ApiError(HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed here", (allow,))
