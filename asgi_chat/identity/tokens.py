"""Verifying an operator's connection token (a JWT, RFC 7519) into an :class:`Identity`.

The operator's backend signs a token for each user; the page hands it over in ``hello``. What
:meth:`Verifier.verify` checks, in order, each failure an :class:`Unauthorized` whose reason
says which (errors.py's REASONS), never showing the token or the key:

1. it is a compact JWS of at most :data:`MAX_TOKEN_CHARS` characters ("malformed");
2. its ``alg`` header is in the allowlist ("algorithm not allowed"): the header only *picks*
   among the configured algorithms (RFC 8725 section 3.1), and ``none`` is never among them;
3. the key is the one of that algorithm (keys.py: one algorithm per key): the HMAC secret for
   HS*, the PEM key, or the key set's key named by ``kid`` ("unknown kid");
4. PyJWT checks the signature against that key and that algorithm only ("bad signature"), then
   the registered claims (RFC 7519 section 4.1): ``exp`` required ("expired", "no exp"), ``nbf``
   and ``iat`` not in the future ("not yet valid"), ``aud`` and ``iss`` when configured ("wrong
   audience", "wrong issuer"), each time with :attr:`leeway` for clock skew;
5. the chat's own claims become an Identity (claims.py: "no sub", "guest sub", "bad claim").

Headers that point at keys elsewhere (``jku``, ``x5u``, ``jwk``) are never followed: keys come
from configuration only (RFC 8725 section 3.10 warns against fetching what a token names).
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import jwt

from .claims import Identity, identity_from_claims
from .errors import ConfigError, Unauthorized
from .jwks import JwksCache
from .keys import ALGORITHMS, HMAC, OperatorKeys, PublicKey, operator_keys

MAX_TOKEN_CHARS: Final = 8192
MAX_KID_CHARS: Final = 256


class TokenSettings(Protocol):
    """What the verifier reads (``ASGI_CHAT_*``: ops/settings.py's Settings has them)."""

    @property
    def jwt_secret(self) -> str | None: ...
    @property
    def jwt_public_key_file(self) -> str | None: ...
    @property
    def jwks_url(self) -> str | None: ...
    @property
    def jwt_algorithms(self) -> tuple[str, ...]: ...
    @property
    def jwt_audience(self) -> str | None: ...
    @property
    def jwt_issuer(self) -> str | None: ...
    @property
    def jwt_leeway(self) -> float: ...
    @property
    def guests(self) -> bool: ...


class Verifier:
    """Verifies operators' tokens with the configured keys; one per app, shared by its connections."""

    def __init__(
        self,
        keys: OperatorKeys,
        *,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 30.0,
        jwks: JwksCache | None = None,
    ) -> None:
        self.keys = keys
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        if jwks is None and keys.jwks_url is not None:
            jwks = JwksCache(keys.jwks_url)
        self.jwks = jwks

    @classmethod
    def from_settings(cls, settings: TokenSettings, *, jwks: JwksCache | None = None) -> Verifier | None:
        """The verifier the settings describe; None when no key is set (guests only), and
        :class:`ConfigError` for keys that cannot work, or for guests off with no key at all."""
        keys = operator_keys(
            settings.jwt_secret, settings.jwt_public_key_file, settings.jwks_url, settings.jwt_algorithms
        )
        if keys is None:
            if not settings.guests:
                raise ConfigError(
                    "ASGI_CHAT_GUESTS is off and no key verifies tokens, so nobody could connect: set"
                    " ASGI_CHAT_JWT_SECRET, ASGI_CHAT_JWT_PUBLIC_KEY_FILE or ASGI_CHAT_JWKS_URL"
                )
            return None
        return cls(
            keys, audience=settings.jwt_audience, issuer=settings.jwt_issuer, leeway=settings.jwt_leeway, jwks=jwks
        )

    async def close(self) -> None:
        """Stop a key set fetch under way (at shutdown)."""
        if self.jwks is not None:
            await self.jwks.close()

    async def verify(self, token: str) -> Identity:
        """The identity ``token`` stands for, or :class:`Unauthorized` saying why not (and
        :class:`~asgi_chat.identity.errors.KeysUnavailable` when the key set cannot be fetched)."""
        header = unverified_header(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.keys.algorithms:
            # Only a name we know is repeated back: the header is the sender's text.
            shown = algorithm if algorithm in (*ALGORITHMS, "none") else "this one"
            raise Unauthorized(
                "algorithm not allowed", f"{shown} is not among {' '.join(sorted(self.keys.algorithms))}"
            )
        key = await self._key(algorithm, header.get("kid"))
        claims = decode(token, key, algorithm, audience=self.audience, issuer=self.issuer, leeway=self.leeway)
        return identity_from_claims(claims)

    async def _key(self, algorithm: str, kid: object) -> bytes | PublicKey | jwt.PyJWK:
        """The one key that may verify a token of ``algorithm`` (RFC 8725 section 3.1)."""
        keys = self.keys
        if algorithm in HMAC:
            if keys.secret is None or keys.secret.algorithm != algorithm:
                raise Unauthorized("algorithm not allowed", f"no {algorithm} key")
            return keys.secret.material
        if keys.public is not None and keys.public.algorithm == algorithm:
            return keys.public.material
        if self.jwks is None:
            raise Unauthorized("algorithm not allowed", f"no {algorithm} key")
        if not isinstance(kid, str) or not 1 <= len(kid) <= MAX_KID_CHARS:
            raise Unauthorized("unknown kid", "the token names no key (kid), and the key set needs one")
        key = await self.jwks.key(kid)
        if key.algorithm_name != algorithm:
            raise Unauthorized("algorithm not allowed", f"that kid is a {key.algorithm_name} key, not {algorithm}")
        return key


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, not yet trusted: only to choose among what configuration allows."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
        raise Unauthorized("malformed", f"a token is 1 to {MAX_TOKEN_CHARS} characters")
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthorized("malformed", "not a signed JWT (header.payload.signature)") from None


def decode(
    token: str,
    key: bytes | PublicKey | jwt.PyJWK,
    algorithm: str,
    *,
    audience: str | None,
    issuer: str | None,
    leeway: float,
) -> dict[str, Any]:
    """PyJWT's verification with ``key`` and ``algorithm`` alone, its errors turned into reasons."""
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp"]},
        )
    except jwt.PyJWTError as error:
        raise reason_for(error) from None


def reason_for(error: jwt.PyJWTError) -> Unauthorized:
    """Why PyJWT refused a token, in the words of errors.py's REASONS (PyJWT's own message may
    quote the token's content: it is not passed on)."""
    # Subclasses first: InvalidSignatureError is a DecodeError, every other one an InvalidTokenError.
    if isinstance(error, jwt.ExpiredSignatureError):
        return Unauthorized("expired")
    if isinstance(error, jwt.ImmatureSignatureError):
        return Unauthorized("not yet valid")
    if isinstance(error, jwt.InvalidSignatureError):
        return Unauthorized("bad signature")
    if isinstance(error, jwt.InvalidAlgorithmError):
        return Unauthorized("algorithm not allowed")
    if isinstance(error, jwt.InvalidAudienceError):
        return Unauthorized("wrong audience")
    if isinstance(error, jwt.InvalidIssuerError):
        return Unauthorized("wrong issuer")
    if isinstance(error, jwt.MissingRequiredClaimError):
        if error.claim == "aud":
            return Unauthorized("wrong audience", "the token has no aud")
        if error.claim == "iss":
            return Unauthorized("wrong issuer", "the token has no iss")
        if error.claim in ("exp", "sub"):
            return Unauthorized(f"no {error.claim}")
        return Unauthorized("malformed", f"no {error.claim}")
    return Unauthorized("malformed", "a header or claim of the wrong type")
