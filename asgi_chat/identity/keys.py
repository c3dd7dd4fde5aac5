"""The operator's keys, and the one algorithm each may be used with, decided at start-up.

RFC 8725 (JSON Web Token Best Current Practices) is the rule book here:

- section 3.1: "libraries MUST enable the caller to specify a supported set of algorithms and
  MUST NOT use any other algorithms"; so ``ASGI_CHAT_JWT_ALGORITHMS`` is an allowlist from
  configuration, and a token's ``alg`` header only picks among it;
- section 3.1 again: "each key MUST be used with exactly one algorithm, and this MUST be checked
  when the cryptographic operation is performed"; so each key here is a :class:`Key`, an
  algorithm and its material together, and a token whose ``alg`` is not its key's is refused.
  That is what defeats the key-confusion attack (a token signed HS256 with the server's RSA
  *public* key as the HMAC secret): the RSA key is an RS256 key and nothing else, and the
  HMAC secret, if any, is only ever ``ASGI_CHAT_JWT_SECRET``;
- section 2.1 / 3.2: ``none`` is never an algorithm, whatever the configuration says.

A configuration that cannot work is refused here, at start-up, with one line
(:class:`~asgi_chat.identity.errors.ConfigError`): an algorithm no key can verify, a key with no
algorithm or with two, a secret shorter than its hash (RFC 7518 section 3.2), an RSA key under
2048 bits (RFC 7518 section 3.3), a PEM holding a private key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from .errors import ConfigError

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey

# RFC 7518 section 3.2: an HMAC key at least as long as the hash's output.
HMAC: Final = {"HS256": 32, "HS384": 48, "HS512": 64}
RSA: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC: Final = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}  # curve -> its one algorithm
EDDSA: Final = "EdDSA"
ALGORITHMS: Final = (*HMAC, *RSA, *EC.values(), EDDSA)
MIN_RSA_BITS: Final = 2048  # RFC 7518 section 3.3: "A key of size 2048 bits or larger MUST be used"
# A key set holds the keys of many; unless told otherwise, these are the algorithms it may use.
KEY_SET_DEFAULT: Final = ("RS256", "ES256", EDDSA)

SECRET_VAR: Final = "ASGI_CHAT_JWT_SECRET"
FILE_VAR: Final = "ASGI_CHAT_JWT_PUBLIC_KEY_FILE"
JWKS_VAR: Final = "ASGI_CHAT_JWKS_URL"
ALGORITHMS_VAR: Final = "ASGI_CHAT_JWT_ALGORITHMS"


@dataclass(frozen=True, slots=True)
class Key:
    """Key material and the one algorithm it verifies (RFC 8725 section 3.1)."""

    algorithm: str
    material: bytes | PublicKey

    def __repr__(self) -> str:  # never print a secret: reprs end up in logs and tracebacks
        return f"Key({self.algorithm})"


@dataclass(frozen=True, slots=True)
class OperatorKeys:
    """What verifies operators' tokens: the allowlist, and the keys (a key set is fetched later)."""

    algorithms: frozenset[str]
    secret: Key | None = None  # ASGI_CHAT_JWT_SECRET: the one HMAC key
    public: Key | None = None  # ASGI_CHAT_JWT_PUBLIC_KEY_FILE
    jwks_url: str | None = None  # ASGI_CHAT_JWKS_URL


def operator_keys(
    secret: str | None, public_key_file: str | None, jwks_url: str | None, algorithms: Iterable[str] = ()
) -> OperatorKeys | None:
    """The keys the settings describe, or None when none is set (then only guests can connect)."""
    allowed = allowlist(algorithms)
    if secret is None and public_key_file is None and jwks_url is None:
        if allowed:
            raise ConfigError(f"{ALGORITHMS_VAR} is set, but no key is: set {SECRET_VAR}, {FILE_VAR} or {JWKS_VAR}")
        return None
    if public_key_file is not None and jwks_url is not None:
        raise ConfigError(f"set one of {FILE_VAR} and {JWKS_VAR}, not both")
    hmac = _secret_key(secret, allowed) if secret is not None else None
    public = _file_key(public_key_file, allowed) if public_key_file is not None else None
    if not allowed:  # unset: each key's own algorithm, and the usual ones for a key set
        allowed = frozenset(key.algorithm for key in (hmac, public) if key is not None)
        allowed |= frozenset(KEY_SET_DEFAULT if jwks_url else ())
    for algorithm in sorted(allowed):
        if not _verifiable(algorithm, hmac, public, jwks_url):
            raise ConfigError(f"{ALGORITHMS_VAR} allows {algorithm}, but no key set here can verify it")
    return OperatorKeys(allowed, hmac, public, jwks_url)


def allowlist(words: Iterable[str]) -> frozenset[str]:
    """The configured algorithms, each one a name of :data:`ALGORITHMS` (case-sensitive, RFC 7515
    section 4.1.1); ``none`` is refused outright."""
    allowed = frozenset(words)
    for name in sorted(allowed):
        if name.lower() == "none":
            raise ConfigError(f"{ALGORITHMS_VAR}: 'none' (an unsigned token) is never accepted (RFC 8725 section 3.2)")
        if name not in ALGORITHMS:
            raise ConfigError(f"{ALGORITHMS_VAR}: {name!r} is not one of {' '.join(ALGORITHMS)}")
    return allowed


def _verifiable(algorithm: str, hmac: Key | None, public: Key | None, jwks_url: str | None) -> bool:
    if algorithm in HMAC:
        return hmac is not None and hmac.algorithm == algorithm
    return (public is not None and public.algorithm == algorithm) or jwks_url is not None


def _secret_key(secret: str, allowed: frozenset[str]) -> Key:
    algorithm = _one_algorithm(SECRET_VAR, tuple(HMAC), allowed, default="HS256")
    material = secret.encode()
    if material.lstrip().startswith((b"-----BEGIN", b"ssh-", b"ecdsa-")):
        # PyJWT refuses these too; said at start-up, it is a mistake to fix rather than a token to refuse.
        raise ConfigError(f"{SECRET_VAR} holds a PEM or SSH key: an asymmetric key is never an HMAC secret")
    if len(material) < HMAC[algorithm]:
        raise ConfigError(f"{SECRET_VAR}: {algorithm} needs a secret of at least {HMAC[algorithm]} bytes")
    return Key(algorithm, material)


def _file_key(path: str, allowed: frozenset[str]) -> Key:
    key = load_public_key(path)
    try:
        usable = algorithms_for(key)
    except ValueError as unusable:
        raise ConfigError(f"{FILE_VAR}={path!r}: {unusable}") from None
    return Key(_one_algorithm(f"the key in {FILE_VAR}", usable, allowed, default=usable[0]), key)


def _one_algorithm(what: str, usable: tuple[str, ...], allowed: frozenset[str], default: str) -> str:
    """The one algorithm of ``usable`` that the allowlist names (``default`` when it is unset)."""
    if not allowed:
        return default
    chosen = [name for name in usable if name in allowed]
    if not chosen:
        raise ConfigError(f"{ALGORITHMS_VAR} allows none of {' '.join(usable)}, the algorithms of {what}")
    if len(chosen) > 1:
        raise ConfigError(
            f"{ALGORITHMS_VAR} allows {' and '.join(chosen)} for {what}: a key is used with exactly one algorithm"
            " (RFC 8725 section 3.1)"
        )
    return chosen[0]


def load_public_key(path: str) -> PublicKey:
    """The public key of a PEM file: a public key, or an X.509 certificate's."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"{FILE_VAR}={path!r}: cannot read it ({error.strerror})") from None
    if b"PRIVATE KEY-----" in data:
        raise ConfigError(f"{FILE_VAR}={path!r} holds a private key: give the public key only")
    try:
        key: object = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = x509.load_pem_x509_certificate(data).public_key()
        except ValueError:
            raise ConfigError(f"{FILE_VAR}={path!r}: not a PEM public key or certificate") from None
    if not isinstance(key, PublicKey):
        raise ConfigError(f"{FILE_VAR}={path!r}: a {type(key).__name__}, not an RSA, EC or Ed25519/Ed448 key")
    return key


def algorithms_for(key: object) -> tuple[str, ...]:
    """The algorithms a public key can verify, the usual one first; ValueError for a key too weak,
    of an unknown curve, or of another type."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"an RSA key of {key.key_size} bits; RFC 7518 section 3.3 wants {MIN_RSA_BITS} or more")
        return RSA
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC:
            raise ValueError(f"an EC key on {key.curve.name}, not P-256, P-384 or P-521")
        return (EC[key.curve.name],)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return (EDDSA,)
    raise ValueError(f"a {type(key).__name__}, not an RSA, EC or Ed25519/Ed448 key")
