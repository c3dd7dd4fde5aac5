"""The key set (identity/jwks.py) with a fake fetcher and a clock the test moves: keys found by
kid, a rotation picked up without a restart, fetches limited to one a minute, shared, bounded,
and the JWKs that are never used."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from asgi_chat.identity.errors import KeysUnavailable, Unauthorized
from asgi_chat.identity.jwks import MAX_BYTES, MAX_KEYS, JwksCache, parse_key_set
from tests.helpers import TIMEOUT
from tests.identity_support import (
    KEYS_URL,
    FakeClock,
    FakeKeySet,
    alice,
    claims,
    ec_key,
    ed_key,
    public_jwk,
    rsa_key,
    sign,
    verifier,
)

P384 = ec.generate_private_key(ec.SECP384R1())


def _jwk(which: int, kid: str, **members: Any) -> dict[str, Any]:
    """The public JWK of the test's RSA key number ``which``."""
    return public_jwk(rsa_key(which), kid, **members)


def rs256(kid: str | None, which: int = 0, **overrides: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return sign(rsa_key(which), "RS256", claims(**overrides), **headers)


async def refused(token: str, operator: Any) -> str:
    with pytest.raises(Unauthorized) as refusal:
        await operator.verify(token)
    return str(refusal.value.reason)


async def test_a_token_is_verified_with_the_key_its_kid_names() -> None:
    keys = FakeKeySet(_jwk(0, "old"), _jwk(1, "new"))
    operator = verifier(keys=keys)
    assert (await operator.verify(rs256("new", 1))).uid == "alice"
    assert (await operator.verify(rs256("old", 0))).uid == "alice"
    assert keys.fetched == [KEYS_URL]  # once, then from the cache


@pytest.mark.parametrize(
    ("key", "algorithm"), [(rsa_key, "RS256"), (ec_key, "ES256"), (ed_key, "EdDSA")], ids=["RSA", "EC", "OKP"]
)
async def test_each_key_type_of_a_key_set(key: Any, algorithm: str) -> None:
    operator = verifier(keys=FakeKeySet(public_jwk(key(), "k")))
    token = sign(key(), algorithm, claims(exp=claims()["exp"]), kid="k")
    assert await operator.verify(token) == alice(claims()["exp"])


async def test_a_rotated_key_is_picked_up_without_a_restart_at_most_once_a_minute() -> None:
    clock = FakeClock()
    keys = FakeKeySet(_jwk(0, "k1"))
    operator = verifier(keys=keys, clock=clock)
    assert (await operator.verify(rs256("k1", 0))).uid == "alice"
    # The provider rotates: a token signed with the new key names a kid the cache does not know.
    keys.keys.append(_jwk(1, "k2"))
    clock.now += 5
    assert await refused(rs256("k2", 1), operator) == "unknown kid"
    assert len(keys.fetched) == 1  # the last fetch was 5 s ago: no other before a minute has passed
    clock.now += 55
    assert (await operator.verify(rs256("k2", 1))).uid == "alice"  # fetched again: accepted
    assert len(keys.fetched) == 2


async def test_made_up_kids_cannot_make_it_fetch_more_than_once_a_minute() -> None:
    clock = FakeClock()
    keys = FakeKeySet(_jwk(0, "k1"))
    operator = verifier(keys=keys, clock=clock)
    for second in range(120):
        clock.now = 1000.0 + second
        assert await refused(rs256(f"made-up-{second}", 0), operator) == "unknown kid"
    assert len(keys.fetched) == 2  # at 0 s and at 60 s


async def test_connections_waiting_for_one_kid_share_one_fetch() -> None:
    keys = FakeKeySet(_jwk(0, "k1"))
    keys.gate = asyncio.Event()
    operator = verifier(keys=keys)
    waiting = [asyncio.create_task(operator.verify(rs256("k1", 0))) for _ in range(10)]
    await asyncio.wait_for(keys.started.wait(), TIMEOUT)
    keys.gate.set()
    identities = await asyncio.wait_for(asyncio.gather(*waiting), TIMEOUT)
    assert {identity.uid for identity in identities} == {"alice"}
    assert len(keys.fetched) == 1


async def test_a_connection_that_goes_away_does_not_cancel_the_others_fetch() -> None:
    keys = FakeKeySet(_jwk(0, "k1"))
    keys.gate = asyncio.Event()
    operator = verifier(keys=keys)
    gone = asyncio.create_task(operator.verify(rs256("k1", 0)))
    await asyncio.wait_for(keys.started.wait(), TIMEOUT)
    staying = asyncio.create_task(operator.verify(rs256("k1", 0)))
    gone.cancel()
    keys.gate.set()
    assert (await asyncio.wait_for(staying, TIMEOUT)).uid == "alice"


async def test_a_failed_fetch_is_unavailable_not_unauthorized_and_keeps_the_keys_it_had() -> None:
    clock = FakeClock()
    keys = FakeKeySet()
    keys.failure = OSError("connection refused")
    operator = verifier(keys=keys, clock=clock)
    with pytest.raises(KeysUnavailable, match="connection refused"):
        await operator.verify(rs256("k1", 0))
    keys.failure, keys.keys = None, [_jwk(0, "k1")]
    clock.now += 60
    assert (await operator.verify(rs256("k1", 0))).uid == "alice"
    # An hour later the set is stale and fetched again; the provider is down: the key stays in use.
    keys.failure = OSError("connection refused")
    clock.now += 3600
    assert (await operator.verify(rs256("k1", 0))).uid == "alice"
    assert len(keys.fetched) == 3
    with pytest.raises(KeysUnavailable):  # an unknown kid, though, cannot be checked now
        await operator.verify(rs256("k2", 1))


async def test_a_key_the_provider_withdrew_is_refused_once_the_set_is_fetched_again() -> None:
    clock = FakeClock()
    keys = FakeKeySet(_jwk(0, "k1"))
    operator = verifier(keys=keys, clock=clock)
    assert (await operator.verify(rs256("k1", 0))).uid == "alice"
    keys.keys = [_jwk(1, "k2")]
    clock.now += 3599
    assert (await operator.verify(rs256("k1", 0))).uid == "alice"  # cached, and the set is fresh
    clock.now += 1
    assert await refused(rs256("k1", 0), operator) == "unknown kid"


async def test_a_token_without_a_kid_is_refused_by_a_key_set() -> None:
    operator = verifier(keys=FakeKeySet(_jwk(0, "k1")))
    assert await refused(rs256(None), operator) == "unknown kid"


async def test_a_key_used_with_another_algorithm_than_its_own_is_refused() -> None:
    """RFC 8725 section 3.1: one algorithm per key. The JWK says RS384; an RS256 token naming it
    is refused, though RS256 is allowed and the signature would verify."""
    operator = verifier(keys=FakeKeySet(_jwk(0, "k1", alg="RS384")), algorithms=("RS256", "RS384"))
    assert await refused(rs256("k1"), operator) == "algorithm not allowed"
    assert (await operator.verify(sign(rsa_key(), "RS384", claims(), kid="k1"))).uid == "alice"


async def test_the_hostile_rows_are_refused_with_a_key_set_too() -> None:
    operator = verifier(keys=FakeKeySet(_jwk(0, "k1")))
    assert await refused(rs256("k1", 1), operator) == "bad signature"
    assert await refused(rs256("k1", exp=1), operator) == "expired"
    assert await refused(rs256("k1", sub="guest:AAAAAAAAAAAAAAAA"), operator) == "guest sub"


# --- which JWKs are used -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        {"kty": "oct", "kid": "k", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"},  # a symmetric key: never from a URL
        {**_jwk(0, "k"), "use": "enc"},  # for encryption, not signatures
        {key: value for key, value in _jwk(0, "k").items() if key != "kid"},  # no kid: never chosen
        {"kty": "RSA", "kid": "k", "n": "AQAB"},  # not a key
        {"kty": "EC", "kid": "k", "crv": "P-256", "alg": "RS256"},  # an alg its type cannot have
        public_jwk(P384, "k", alg="ES256"),  # an alg its curve cannot have (ES256 is P-256's)
        "not an object",
    ],
    ids=["oct", "use enc", "no kid", "broken", "wrong alg", "wrong curve", "not an object"],
)
def test_a_jwk_that_must_not_be_used_is_skipped(entry: object) -> None:
    assert list(parse_key_set(_json({"keys": [entry, _jwk(1, "good")]}).encode())) == ["good"]


def _json(value: object) -> str:
    return json.dumps(value)


def test_a_weak_rsa_key_of_a_key_set_is_skipped() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assert parse_key_set(_json({"keys": [public_jwk(weak, "weak")]}).encode()) == {}


@pytest.mark.parametrize("body", [b"[]", b'{"keys": {}}', b"not json", b'{"other": []}'])
def test_a_document_that_is_not_a_key_set_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  # what matters is that nothing is taken from it
        parse_key_set(body)


def test_at_most_max_keys_are_kept() -> None:
    entries = [_jwk(0, f"k{i}") for i in range(MAX_KEYS + 20)]
    assert len(parse_key_set(_json({"keys": entries}).encode())) == MAX_KEYS


async def test_a_response_too_large_is_refused() -> None:
    async def huge(url: str) -> bytes:
        return b" " * (MAX_BYTES + 1)

    cache = JwksCache(KEYS_URL, fetch=huge, clock=FakeClock())
    with pytest.raises(KeysUnavailable, match="more than"):
        await cache.key("k1")


async def test_closing_the_verifier_stops_a_fetch_under_way() -> None:
    """At shutdown (lifespan), no fetch is left running, and whoever waited for it hears so."""
    keys = FakeKeySet(_jwk(0, "k1"))
    keys.gate = asyncio.Event()  # never opened
    operator = verifier(keys=keys)
    waiting = asyncio.create_task(operator.verify(rs256("k1")))
    await asyncio.wait_for(keys.started.wait(), TIMEOUT)
    await asyncio.wait_for(operator.close(), TIMEOUT)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, TIMEOUT)
