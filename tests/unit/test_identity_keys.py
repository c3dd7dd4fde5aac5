"""The operator's keys at start-up (identity/keys.py, Verifier.from_settings): the allowlist each
configuration gets, and every configuration that cannot work refused with one line."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from asgi_chat.identity.errors import ConfigError
from asgi_chat.identity.keys import operator_keys
from asgi_chat.identity.tokens import Verifier
from asgi_chat.ops.settings import Settings
from tests.identity_support import SECRET, claims, ec_key, ed_key, public_pem, rsa_key, sign, verifier, write_pem

URL = "https://auth.example/jwks.json"


@pytest.mark.parametrize(
    ("secret", "key", "url", "expected"),
    [
        (SECRET, None, None, {"HS256"}),
        (None, "rsa", None, {"RS256"}),
        (None, "ec", None, {"ES256"}),
        (None, "ec384", None, {"ES384"}),  # the curve decides
        (None, "ed", None, {"EdDSA"}),
        (None, None, URL, {"RS256", "ES256", "EdDSA"}),
        (SECRET, "rsa", None, {"HS256", "RS256"}),
        (SECRET, None, URL, {"HS256", "RS256", "ES256", "EdDSA"}),
    ],
)
def test_without_an_allowlist_each_key_brings_its_own_algorithm(
    tmp_path: Path, secret: str | None, key: str | None, url: str | None, expected: set[str]
) -> None:
    private = {"rsa": rsa_key(), "ec": ec_key(), "ec384": ec.generate_private_key(ec.SECP384R1()), "ed": ed_key()}
    path = write_pem(tmp_path, private[key]) if key else None  # type: ignore[arg-type]
    keys = operator_keys(secret, path, url)
    assert keys is not None
    assert keys.algorithms == expected


def test_no_key_at_all_means_guests_only() -> None:
    assert operator_keys(None, None, None) is None
    assert Verifier.from_settings(Settings()) is None


def pem_file(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "key.pem"
    path.write_bytes(data)
    return str(path)


def private_pem() -> bytes:
    return rsa_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def weak_rsa_pem() -> bytes:
    return public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))


# (what the row shows, secret, PEM file content or None, JWKS URL, allowlist, part of the one-line message)
REFUSED = [
    ("none in the allowlist", SECRET, None, None, ("HS256", "none"), "'none' (an unsigned token) is never accepted"),
    ("None, any case", SECRET, None, None, ("None",), "never accepted"),
    ("an unknown algorithm", SECRET, None, None, ("HS257",), "'HS257' is not one of"),
    ("HS256 allowed, no secret", None, public_pem(rsa_key()), None, ("HS256", "RS256"), "allows HS256, but no key"),
    ("an asymmetric algorithm, secret only", SECRET, None, None, ("HS256", "ES256"), "allows ES256, but no key"),
    ("no HMAC algorithm for the secret", SECRET, None, URL, ("RS256",), "allows none of HS256 HS384 HS512"),
    ("two algorithms for one secret", SECRET, None, None, ("HS256", "HS512"), "exactly one algorithm"),
    ("two algorithms for one RSA key", None, public_pem(rsa_key()), None, ("RS256", "PS256"), "exactly one algorithm"),
    ("a secret too short for HS512", SECRET, None, None, ("HS512",), "HS512 needs a secret of at least 64 bytes"),
    ("a PEM key as the secret", public_pem(rsa_key()).decode(), None, None, (), "never an HMAC secret"),
    ("a private key in the file", None, private_pem(), None, (), "holds a private key"),
    ("a weak RSA key", None, weak_rsa_pem(), None, (), "1024 bits"),
    ("not a PEM", None, b"hello", None, (), "not a PEM public key or certificate"),
    ("a key file and a key set", None, public_pem(rsa_key()), URL, (), "not both"),
    ("an allowlist and no key", None, None, None, ("RS256",), "no key is"),
]


@pytest.mark.parametrize(
    ("secret", "pem", "url", "algorithms", "message"), [row[1:] for row in REFUSED], ids=[row[0] for row in REFUSED]
)
def test_a_configuration_that_cannot_work_is_one_line_at_start_up(
    tmp_path: Path, secret: str | None, pem: bytes | None, url: str | None, algorithms: tuple[str, ...], message: str
) -> None:
    path = pem_file(tmp_path, pem) if pem is not None else None
    with pytest.raises(ConfigError) as refused:
        operator_keys(secret, path, url, algorithms)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert SECRET not in str(refused.value)


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ASGI_CHAT_JWT_PUBLIC_KEY_FILE='.*nowhere.pem': cannot read it"):
        operator_keys(None, str(tmp_path / "nowhere.pem"), None)


def test_guests_off_without_a_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="ASGI_CHAT_GUESTS is off and no key verifies tokens"):
        Verifier.from_settings(Settings(guests=False))


def test_the_settings_reach_the_verifier(tmp_path: Path) -> None:
    settings = Settings(
        jwt_public_key_file=write_pem(tmp_path, rsa_key()),
        jwt_algorithms=("PS256",),
        jwt_audience="a",
        jwt_issuer="i",
        jwt_leeway=5.0,
    )
    operator = Verifier.from_settings(settings)
    assert operator is not None
    assert operator.keys.algorithms == frozenset({"PS256"})
    assert (operator.audience, operator.issuer, operator.leeway) == ("a", "i", 5.0)
    assert operator.keys.public is not None
    assert operator.keys.public.algorithm == "PS256"


async def test_an_x509_certificate_serves_as_the_public_key(tmp_path: Path) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "auth.example")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_key().public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(rsa_key(), hashes.SHA256())
    )
    path = pem_file(tmp_path, certificate.public_bytes(serialization.Encoding.PEM))
    assert (await verifier(public_key_file=path).verify(sign(rsa_key(), "RS256", claims()))).uid == "alice"


def test_a_key_never_shows_its_material() -> None:
    keys = operator_keys(SECRET, None, None)
    assert keys is not None
    assert SECRET not in repr(keys)
