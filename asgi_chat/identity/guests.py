"""Guests: people without an operator's token, who keep one uid across their connections.

A ``hello`` with a name and no token makes a guest (when ``ASGI_CHAT_GUESTS`` is on, the
default). The server picks the uid, :data:`GUEST_PREFIX` and 96 random bits, so it can never be
an operator token's ``sub`` (claims.py refuses such a ``sub``), and hands the guest a *guest
token* that says "this uid is yours". Presented on the next connections, it keeps the same uid,
which presence and say-id deduplication count by.

A guest token is a JWT signed HS256 with the server's own ``ASGI_CHAT_SECRET``, and everything
about it differs from an operator's token, so neither can pass for the other (RFC 8725 section
3.12, "Use Mutually Exclusive Validation Rules for Different Kinds of JWTs"): its own ``typ``
header (section 3.11, explicit typing), issuer :data:`GUEST_ISSUER`, audience
:data:`GUEST_AUDIENCE`, key, and ``sub`` namespace. It lasts :data:`GUEST_TOKEN_SECONDS` (30
days) and carries no name (the guest says one in each ``hello``); the server may issue a fresh
one on each connection, so a guest who comes back within 30 days stays the same guest.

Every process that shares rooms must sign with the same secret, or a guest would be a stranger
to the next worker: :func:`server_secret` decides, at start-up.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Final, Protocol

import jwt

from .claims import GUEST_PREFIX, Identity
from .errors import ConfigError, Unauthorized
from .names import check_name
from .tokens import reason_for, unverified_header

logger = logging.getLogger("asgi_chat")

GUEST_ISSUER: Final = "asgi-chat"
GUEST_AUDIENCE: Final = "asgi-chat:guest"
GUEST_TYPE: Final = "asgi-chat-guest+jwt"
GUEST_ALGORITHM: Final = "HS256"
GUEST_TOKEN_SECONDS: Final = 30 * 24 * 3600
SECRET_BYTES: Final = 32  # RFC 7518 section 3.2: an HS256 key of 256 bits or more
_GUEST_UID: Final = re.compile(re.escape(GUEST_PREFIX) + r"[A-Za-z0-9_-]{16}")


class GuestSettings(Protocol):
    """What the guests read (``ASGI_CHAT_*``: ops/settings.py's Settings has them)."""

    @property
    def guests(self) -> bool: ...
    @property
    def secret(self) -> str | None: ...
    @property
    def jwt_secret(self) -> str | None: ...


def server_secret(
    settings: GuestSettings, *, shared: bool, generate: Callable[[int], bytes] = secrets.token_bytes
) -> bytes | None:
    """``ASGI_CHAT_SECRET`` as a key; with guests on and no secret set, one made for this process
    (with a warning: guests become new guests after a restart), unless ``shared`` (several
    processes share rooms: a Redis state URL, or several workers), which is a :class:`ConfigError`:
    each process would make its own, and a guest token of one would be refused by the others.
    None when guests are off and no secret is set: nothing needs one."""
    if settings.secret is not None:
        if len(settings.secret.encode()) < SECRET_BYTES:
            raise ConfigError(f"ASGI_CHAT_SECRET: a secret of at least {SECRET_BYTES} bytes is needed")
        if settings.secret == settings.jwt_secret:
            raise ConfigError(
                "ASGI_CHAT_SECRET must differ from ASGI_CHAT_JWT_SECRET: guests sign with the server's own"
            )
        return settings.secret.encode()
    if not settings.guests:
        return None
    if shared:
        raise ConfigError(
            "ASGI_CHAT_SECRET is required when guests are on (ASGI_CHAT_GUESTS) and several processes share rooms"
            " (Redis, or --workers > 1): set it to the same random text of 32 bytes or more in every process"
        )
    logger.warning("ASGI_CHAT_SECRET is not set: made one for this process; guests become new guests after a restart")
    return generate(SECRET_BYTES)


def new_uid() -> str:
    """A guest uid: the guests' prefix and 16 characters of base64url (96 random bits)."""
    return GUEST_PREFIX + secrets.token_urlsafe(12)


class Guests:
    """Issues and verifies guest tokens with the server's secret; ``clock`` is a test's to set."""

    def __init__(
        self,
        secret: bytes,
        *,
        lifetime: float = GUEST_TOKEN_SECONDS,
        leeway: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self.lifetime = lifetime
        self.leeway = leeway
        self.clock = clock

    def __repr__(self) -> str:  # never print the secret: reprs end up in logs and tracebacks
        return f"Guests(lifetime={self.lifetime})"

    def new(self, name: str) -> tuple[Identity, str]:
        """A new guest called ``name`` (:class:`~asgi_chat.identity.errors.BadName` if it cannot
        be), and the token that keeps its uid."""
        identity = guest_identity(new_uid(), name)
        return identity, self.issue(identity.uid)

    def issue(self, uid: str) -> str:
        """A guest token for ``uid``, valid for :attr:`lifetime` seconds from now."""
        now = int(self.clock())
        claims = {"iss": GUEST_ISSUER, "aud": GUEST_AUDIENCE, "sub": uid, "iat": now, "exp": now + int(self.lifetime)}
        return jwt.encode(claims, self._secret, algorithm=GUEST_ALGORITHM, headers={"typ": GUEST_TYPE})

    def verify(self, token: str, name: str) -> Identity:
        """The guest ``token`` keeps, now called ``name``: :class:`Unauthorized` for the token,
        :class:`~asgi_chat.identity.errors.BadName` for the name."""
        if unverified_header(token).get("typ") != GUEST_TYPE:
            raise Unauthorized("not a guest token", "a guest token is one this server issued to a guest")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[GUEST_ALGORITHM],
                audience=GUEST_AUDIENCE,
                issuer=GUEST_ISSUER,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise reason_for(error) from None
        uid = claims["sub"]
        if not isinstance(uid, str) or not _GUEST_UID.fullmatch(uid):
            raise Unauthorized("not a guest token", "its sub is not a guest uid")
        return guest_identity(uid, name)


def is_guest_token(token: str) -> bool:
    """Whether ``token`` says it is a guest token (its ``typ``): only to choose how to verify it;
    a token that cannot be read at all is not one (the operator's verifier says why)."""
    try:
        return unverified_header(token).get("typ") == GUEST_TYPE
    except Unauthorized:
        return False


def guest_identity(uid: str, name: str) -> Identity:
    """A guest: never a moderator, never in a private room, no deadline on the connection."""
    return Identity(uid, check_name(name), guest=True, moderator=False, rooms=(), expires_ms=None)
