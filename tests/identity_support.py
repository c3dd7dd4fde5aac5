"""What the identity tests share: keys made in memory, tokens signed with them (and hostile ones
built by hand), a key set served by a fake fetcher, and a clock the test moves."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from asgi_chat.identity.claims import Identity
from asgi_chat.identity.jwks import JwksCache
from asgi_chat.identity.keys import operator_keys
from asgi_chat.identity.tokens import Verifier

SECRET = "an operator secret of forty bytes, or so"  # 40 bytes: enough for HS256
AUDIENCE = "chat.example"
ISSUER = "https://auth.example"
KEYS_URL = "https://auth.example/.well-known/jwks.json"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def rsa_key(which: int = 0) -> rsa.RSAPrivateKey:
    """An RSA key; ``which`` tells independent ones apart (each is made once per test run)."""
    return _made("rsa", which)  # type: ignore[return-value]


def ec_key(which: int = 0) -> ec.EllipticCurvePrivateKey:
    return _made("ec", which)  # type: ignore[return-value]


def ed_key(which: int = 0) -> ed25519.Ed25519PrivateKey:
    return _made("ed", which)  # type: ignore[return-value]


@cache
def _made(kind: str, which: int) -> PrivateKey:  # positional: rsa_key() and rsa_key(0) are one key
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_pem(directory: Path, key: PrivateKey, name: str = "public.pem") -> str:
    path = directory / name
    path.write_bytes(public_pem(key))
    return str(path)


def claims(**overrides: Any) -> dict[str, Any]:
    """Claims that pass the verifiers built below: change one to see it refused. ``None`` removes it."""
    now = int(time.time())
    base: dict[str, Any] = {"sub": "alice", "name": "Alice", "aud": AUDIENCE, "iss": ISSUER, "exp": now + 600}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign(key: PrivateKey | str | bytes, algorithm: str, payload: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers or None)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())


def hmac_by_hand(secret: bytes, payload: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """An HS256 token signed with any bytes as the secret: PyJWT refuses to sign with a PEM key,
    which is exactly the token the key-confusion attack needs, so it is built here."""
    signing_input = segments(header or {"alg": "HS256", "typ": "JWT"}, payload)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def unsigned(payload: dict[str, Any]) -> str:
    """``alg: none``: RFC 7519 section 6's unsecured JWT, an empty signature."""
    return segments({"alg": "none", "typ": "JWT"}, payload) + "."


def public_jwk(key: PrivateKey, kid: str, **members: Any) -> dict[str, Any]:
    """The public JWK of ``key`` with its ``kid`` (and ``alg``, ``use``... as given)."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        text = jwt.algorithms.RSAAlgorithm.to_jwk(public)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        text = jwt.algorithms.ECAlgorithm.to_jwk(public)
    else:
        text = jwt.algorithms.OKPAlgorithm.to_jwk(public)
    return {**json.loads(text), "kid": kid, **members}


class FakeClock:
    """A monotonic clock that moves when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeKeySet:
    """An identity provider's key set URL, as a fetcher: serves ``keys`` (JWKs) as JSON, counts
    fetches, and, with ``gate`` set, answers only once the test opens it (``started`` tells when a
    fetch is waiting there)."""

    def __init__(self, *keys: dict[str, Any]) -> None:
        self.keys = list(keys)
        self.fetched: list[str] = []
        self.failure: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def __call__(self, url: str) -> bytes:
        self.fetched.append(url)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return json.dumps({"keys": self.keys}).encode()


def verifier(
    secret: str | None = None,
    public_key_file: str | None = None,
    algorithms: tuple[str, ...] = (),
    *,
    keys: FakeKeySet | None = None,
    clock: FakeClock | None = None,
    audience: str | None = AUDIENCE,
    issuer: str | None = ISSUER,
    leeway: float = 30.0,
) -> Verifier:
    """A verifier of the given keys (``keys``: a key set at :data:`KEYS_URL`, fetched from the fake)."""
    operator = operator_keys(secret, public_key_file, KEYS_URL if keys else None, algorithms)
    assert operator is not None
    cache = JwksCache(KEYS_URL, fetch=keys, clock=clock or FakeClock()) if keys else None
    return Verifier(operator, audience=audience, issuer=issuer, leeway=leeway, jwks=cache)


def alice(expires: int, *, moderator: bool = False, rooms: tuple[str, ...] = ()) -> Identity:
    return Identity("alice", "Alice", guest=False, moderator=moderator, rooms=rooms, expires_ms=expires * 1000)
