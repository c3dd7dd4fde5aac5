"""Operators' tokens (identity/tokens.py, claims.py): the hostile ones, each refused with a reason
that says why and shows neither the token nor the key, and the valid ones of each key type."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from asgi_chat.identity.claims import Identity
from asgi_chat.identity.errors import Unauthorized
from asgi_chat.identity.tokens import MAX_TOKEN_CHARS, Verifier
from tests.identity_support import (
    SECRET,
    alice,
    claims,
    ec_key,
    ed_key,
    hmac_by_hand,
    public_pem,
    rsa_key,
    segments,
    sign,
    unsigned,
    verifier,
    write_pem,
)


def now() -> int:
    """The time a test's tokens are made at: read by each test, not once at collection (a suite
    that runs for minutes would otherwise make its "valid" tokens expired)."""
    return int(time.time())


def rsa_verifier(tmp_path: Path) -> Verifier:
    """The operator of most rows: an RSA public key, so the allowlist is RS256 alone."""
    return verifier(public_key_file=write_pem(tmp_path, rsa_key()))


def mixed_verifier(tmp_path: Path) -> Verifier:
    """An operator with an HMAC secret *and* an RSA key, both algorithms allowed: the case where
    key confusion would work if the RSA key could ever serve as an HMAC secret."""
    return verifier(SECRET, write_pem(tmp_path, rsa_key()), ("HS256", "RS256"))


def rs256(**overrides: object) -> str:
    return sign(rsa_key(), "RS256", claims(**overrides))


def tampered() -> str:
    """A valid token whose payload was swapped for another user's: the signature no longer fits."""
    header, _, signature = rs256().split(".")
    forged = segments({"alg": "RS256", "typ": "JWT"}, claims(sub="mallory", roles=["moderator"])).split(".")[1]
    return f"{header}.{forged}.{signature}"


# (what the row shows, the operator, the token, the reason it must be refused with)
HOSTILE: list[tuple[str, Callable[[Path], Verifier], Callable[[], str], str]] = [
    ("alg none", rsa_verifier, lambda: unsigned(claims()), "algorithm not allowed"),
    # Key confusion: HS256 with the RSA public key (its PEM text) as the HMAC secret...
    (
        "key confusion, RS256 only",
        rsa_verifier,
        lambda: hmac_by_hand(public_pem(rsa_key()), claims()),
        "algorithm not allowed",
    ),
    # ...and where HS256 is allowed too: the HMAC key is the operator's secret, never the PEM.
    (
        "key confusion, HS256 allowed",
        mixed_verifier,
        lambda: hmac_by_hand(public_pem(rsa_key()), claims()),
        "bad signature",
    ),
    ("signed by another key", rsa_verifier, lambda: sign(rsa_key(1), "RS256", claims()), "bad signature"),
    ("HS256 with a wrong secret", mixed_verifier, lambda: sign("x" * 40, "HS256", claims()), "bad signature"),
    ("tampered payload", rsa_verifier, tampered, "bad signature"),
    ("expired", rsa_verifier, lambda: rs256(exp=now() - 3600), "expired"),
    ("expired beyond the leeway", rsa_verifier, lambda: rs256(exp=now() - 60), "expired"),
    ("nbf in the future", rsa_verifier, lambda: rs256(nbf=now() + 3600), "not yet valid"),
    ("iat in the future", rsa_verifier, lambda: rs256(iat=now() + 3600), "not yet valid"),
    ("wrong aud", rsa_verifier, lambda: rs256(aud="another.example"), "wrong audience"),
    ("no aud", rsa_verifier, lambda: rs256(aud=None), "wrong audience"),
    ("wrong iss", rsa_verifier, lambda: rs256(iss="https://evil.example"), "wrong issuer"),
    # A prefix of the issuer is not the issuer (PyJWT 2.10.0 once accepted it: CVE-2024-53861).
    ("iss a prefix of the issuer", rsa_verifier, lambda: rs256(iss="https://auth"), "wrong issuer"),
    ("no exp", rsa_verifier, lambda: rs256(exp=None), "no exp"),
    ("no sub", rsa_verifier, lambda: rs256(sub=None), "no sub"),
    ("empty sub", rsa_verifier, lambda: rs256(sub=""), "no sub"),
    ("guest sub", rsa_verifier, lambda: rs256(sub="guest:AAAAAAAAAAAAAAAA"), "guest sub"),
    (
        "algorithm outside the allowlist",
        rsa_verifier,
        lambda: sign(ec_key(), "ES256", claims()),
        "algorithm not allowed",
    ),
    ("RS512 with the allowed key", rsa_verifier, lambda: sign(rsa_key(), "RS512", claims()), "algorithm not allowed"),
    ("not a JWT", rsa_verifier, lambda: "not-a-token", "malformed"),
    ("two segments", rsa_verifier, lambda: segments({"alg": "RS256"}, claims()), "malformed"),
    ("empty", rsa_verifier, lambda: "", "malformed"),
    ("too long", rsa_verifier, lambda: "a" * (MAX_TOKEN_CHARS + 1), "malformed"),
    (
        "alg not a string",
        rsa_verifier,
        lambda: hmac_by_hand(b"k", claims(), {"alg": ["RS256"]}),
        "algorithm not allowed",
    ),
    # An unknown critical extension must be refused (RFC 7515 section 4.1.11).
    ("unknown crit", rsa_verifier, lambda: sign(rsa_key(), "RS256", claims(), crit=["x"], x=1), "malformed"),
    ("exp not a number", rsa_verifier, lambda: rs256(exp="tomorrow"), "malformed"),
    ("name not a string", rsa_verifier, lambda: rs256(name=["Alice"]), "bad claim"),
    ("name with a zero-width space", rsa_verifier, lambda: rs256(name="Alice\u200b"), "bad claim"),
    ("reserved name, not a moderator", rsa_verifier, lambda: rs256(name="Admin"), "bad claim"),
    ("rooms not a list", rsa_verifier, lambda: rs256(rooms="staff"), "bad claim"),
    ("rooms with a bad pattern", rsa_verifier, lambda: rs256(rooms=["Staff/*"]), "bad claim"),
    ("roles not a list", rsa_verifier, lambda: rs256(roles="moderator"), "bad claim"),
]


@pytest.mark.parametrize(("operator", "token", "reason"), [row[1:] for row in HOSTILE], ids=[row[0] for row in HOSTILE])
async def test_a_hostile_token_is_refused_with_its_reason(
    tmp_path: Path, operator: Callable[[Path], Verifier], token: Callable[[], str], reason: str
) -> None:
    text = token()
    with pytest.raises(Unauthorized) as refused:
        await operator(tmp_path).verify(text)
    assert refused.value.reason == reason
    message = str(refused.value)
    # Neither the token, nor any part of it, nor a key appears in what is said.
    for part in [text, *text.split(".")]:
        assert len(part) < 8 or part not in message
    assert SECRET not in message
    assert "BEGIN" not in message


async def test_the_reason_repeats_only_known_algorithm_names(tmp_path: Path) -> None:
    token = hmac_by_hand(b"k", claims(), {"alg": "<script>"})
    with pytest.raises(Unauthorized) as refused:
        await rsa_verifier(tmp_path).verify(token)
    assert str(refused.value) == "algorithm not allowed: this one is not among RS256"
    with pytest.raises(Unauthorized) as refused:
        await rsa_verifier(tmp_path).verify(unsigned(claims()))
    assert str(refused.value) == "algorithm not allowed: none is not among RS256"


# --- valid tokens --------------------------------------------------------------------------------


async def test_an_hs256_token_is_accepted() -> None:
    at = now()
    identity = await verifier(SECRET).verify(sign(SECRET, "HS256", claims(exp=at + 60)))
    assert identity == alice(at + 60)


@pytest.mark.parametrize(
    ("key", "algorithm"), [(rsa_key, "RS256"), (ec_key, "ES256"), (ed_key, "EdDSA")], ids=["RS256", "ES256", "EdDSA"]
)
async def test_a_token_of_each_public_key_type_is_accepted(
    tmp_path: Path, key: Callable[[], object], algorithm: str
) -> None:
    private = key()
    operator = verifier(public_key_file=write_pem(tmp_path, private))  # type: ignore[arg-type]
    assert operator.keys.algorithms == {algorithm}  # the key's own algorithm, and no other
    at = now()
    identity = await operator.verify(sign(private, algorithm, claims(exp=at + 60)))  # type: ignore[arg-type]
    assert identity == alice(at + 60)


async def test_both_keys_of_a_mixed_operator_verify_their_own_tokens(tmp_path: Path) -> None:
    at = now()
    operator = mixed_verifier(tmp_path)
    assert await operator.verify(sign(SECRET, "HS256", claims(exp=at + 60))) == alice(at + 60)
    assert await operator.verify(rs256(exp=at + 60)) == alice(at + 60)


async def test_the_leeway_forgives_clock_skew(tmp_path: Path) -> None:
    at = now()
    """Expired 10 s ago, or valid from 10 s in the future: within the default 30 s of skew."""
    operator = rsa_verifier(tmp_path)
    assert (await operator.verify(rs256(exp=at - 10))).uid == "alice"
    assert (await operator.verify(rs256(nbf=at + 10))).uid == "alice"


async def test_without_an_audience_or_issuer_configured_they_are_not_checked(tmp_path: Path) -> None:
    operator = verifier(public_key_file=write_pem(tmp_path, rsa_key()), audience=None, issuer=None)
    assert (await operator.verify(rs256(aud=None, iss="anyone"))).uid == "alice"
    # A token meant for an audience is for whoever checks it: refused where none is configured.
    with pytest.raises(Unauthorized, match="wrong audience"):
        await operator.verify(rs256())


async def test_the_claims_the_chat_uses(tmp_path: Path) -> None:
    token = rs256(sub="u-42", name="  \uff2daria ", rooms=["staff-*", "ops"], roles=["moderator", "other"])
    identity = await rsa_verifier(tmp_path).verify(token)
    assert identity == Identity(
        "u-42", "Maria", guest=False, moderator=True, rooms=("staff-*", "ops"), expires_ms=claims()["exp"] * 1000
    )


async def test_the_name_defaults_to_the_sub_and_a_moderator_may_take_a_reserved_one(tmp_path: Path) -> None:
    operator = rsa_verifier(tmp_path)
    assert (await operator.verify(rs256(sub="bob", name=None))).name == "bob"
    uuid = "0b6f1e5c-2f7e-4a4e-9d3a-7c1e2b3a4d5f"  # 36 characters: longer than a name
    assert (await operator.verify(rs256(sub=uuid, name=None))).name == uuid[:32]
    assert (await operator.verify(rs256(name="Admin", roles=["moderator"]))).name == "Admin"


async def test_a_token_cannot_be_the_system_that_announces() -> None:
    with pytest.raises(Unauthorized) as refused:
        await verifier(SECRET).verify(sign(SECRET, "HS256", claims(sub="system")))
    assert (refused.value.reason, "system" in refused.value.detail) == ("bad claim", True)
