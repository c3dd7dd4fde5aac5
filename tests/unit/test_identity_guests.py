"""Guests (identity/guests.py): a guest token round trip, guest and operator tokens never taken
for one another, tampered and expired guest tokens, and the start-up rule for ASGI_CHAT_SECRET."""

from __future__ import annotations

import logging
import time

import pytest

from asgi_chat.identity.claims import GUEST_PREFIX, Identity
from asgi_chat.identity.errors import BadName, ConfigError, Unauthorized
from asgi_chat.identity.guests import GUEST_TOKEN_SECONDS, Guests, server_secret
from asgi_chat.ops.settings import Settings
from tests.identity_support import SECRET, claims, segments, sign, verifier

GUEST_SECRET = b"the server's own secret, 32 bytes or more"


def guests(clock: float | None = None) -> Guests:
    return Guests(GUEST_SECRET, clock=(lambda: clock) if clock is not None else time.time)


def refused(call: object) -> str:
    assert callable(call)
    with pytest.raises(Unauthorized) as refusal:
        call()
    return refusal.value.reason


def test_a_guest_keeps_its_uid_with_its_token() -> None:
    identity, token = guests().new("Bob")
    assert identity == Identity(identity.uid, "Bob", guest=True, moderator=False, rooms=(), expires_ms=None)
    assert identity.uid.startswith(GUEST_PREFIX)
    assert len(identity.uid) == len(GUEST_PREFIX) + 16
    again = guests().verify(token, "Bobby")  # a guest may change its name, not its uid
    assert again == Identity(identity.uid, "Bobby", guest=True, moderator=False, rooms=(), expires_ms=None)


def test_each_new_guest_is_another_uid() -> None:
    assert len({guests().new("Bob")[0].uid for _ in range(100)}) == 100


def test_a_guest_name_follows_the_name_rules() -> None:
    with pytest.raises(BadName):
        guests().new("Bob\u202e")
    _, token = guests().new("Bob")
    with pytest.raises(BadName):
        guests().verify(token, "admin")  # reserved: a guest is never a moderator


async def test_a_guest_token_is_not_an_operator_token() -> None:
    _, token = guests().new("Bob")
    with pytest.raises(Unauthorized):
        await verifier(SECRET).verify(token)
    # Even an operator who (against server_secret's rule) used the same secret: the guest's
    # audience and its sub's prefix are not an operator token's.
    same = verifier(GUEST_SECRET.decode(), audience=None, issuer=None)
    with pytest.raises(Unauthorized, match="wrong audience"):
        await same.verify(token)
    same_audience = verifier(GUEST_SECRET.decode(), audience="asgi-chat:guest", issuer="asgi-chat")
    with pytest.raises(Unauthorized, match="guest sub"):
        await same_audience.verify(token)


def test_an_operator_token_is_not_a_guest_token() -> None:
    operator_token = sign(SECRET, "HS256", claims(sub="guest:AAAAAAAAAAAAAAAA"))
    assert refused(lambda: guests().verify(operator_token, "Bob")) == "not a guest token"
    # Its header claims to be a guest token: its signature is not the server's.
    typed = sign(SECRET, "HS256", claims(sub="guest:AAAAAAAAAAAAAAAA"), typ="asgi-chat-guest+jwt")
    assert refused(lambda: guests().verify(typed, "Bob")) == "bad signature"


def test_a_tampered_guest_token_is_refused() -> None:
    (_, token), (victim, _) = guests().new("Mallory"), guests().new("Alice")
    _header, _payload, signature = token.split(".")
    now = int(time.time())
    forged = segments(
        {"alg": "HS256", "typ": "asgi-chat-guest+jwt"},
        {"iss": "asgi-chat", "aud": "asgi-chat:guest", "sub": victim.uid, "iat": now, "exp": now + 60},
    )
    assert refused(lambda: guests().verify(f"{forged}.{signature}", "Alice")) == "bad signature"


def test_an_expired_guest_token_is_refused() -> None:
    _, token = guests(clock=time.time() - GUEST_TOKEN_SECONDS - 3600).new("Bob")
    assert refused(lambda: guests().verify(token, "Bob")) == "expired"


def test_a_guest_token_of_another_server_is_refused() -> None:
    _, token = Guests(b"another server's secret of 32 bytes...").new("Bob")
    assert refused(lambda: guests().verify(token, "Bob")) == "bad signature"


def test_a_token_signed_with_the_secret_for_a_sub_that_is_no_guest_uid_is_refused() -> None:
    now = int(time.time())
    payload = {"iss": "asgi-chat", "aud": "asgi-chat:guest", "sub": "alice", "iat": now, "exp": now + 60}
    token = sign(GUEST_SECRET, "HS256", payload, typ="asgi-chat-guest+jwt")
    assert refused(lambda: guests().verify(token, "Bob")) == "not a guest token"


def test_the_secret_is_never_shown() -> None:
    assert GUEST_SECRET.decode() not in repr(guests())


# --- ASGI_CHAT_SECRET at start-up ----------------------------------------------------------------

MADE = b"m" * 32


def made(size: int) -> bytes:
    assert size == 32
    return MADE


@pytest.mark.parametrize(
    ("guests_on", "secret", "shared", "expected"),
    [
        (True, SECRET, True, SECRET.encode()),  # set: used, whatever else
        (True, SECRET, False, SECRET.encode()),
        (False, SECRET, True, SECRET.encode()),
        (True, None, False, MADE),  # one process: one is made (and warned about)
        (False, None, True, None),  # no guests: nothing needs one
        (False, None, False, None),
    ],
)
def test_the_secret_a_process_signs_with(guests_on: bool, secret: str | None, shared: bool, expected: bytes) -> None:
    settings = Settings(guests=guests_on, secret=secret)
    assert server_secret(settings, shared=shared, generate=made) == expected


def test_several_processes_with_guests_and_no_secret_cannot_start() -> None:
    with pytest.raises(ConfigError) as refused:
        server_secret(Settings(guests=True), shared=True, generate=made)
    message = str(refused.value)
    assert message.startswith("ASGI_CHAT_SECRET is required when guests are on")
    assert "\n" not in message


def test_a_made_secret_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asgi_chat"):
        server_secret(Settings(), shared=False, generate=made)
    assert "ASGI_CHAT_SECRET is not set: made one for this process" in caplog.text
    assert MADE.decode() not in caplog.text


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Settings(secret=SECRET, jwt_secret=SECRET), "must differ from ASGI_CHAT_JWT_SECRET"),
        (Settings(secret="short"), "at least 32 bytes"),  # built in code, past the settings' parser
    ],
)
def test_a_secret_that_cannot_serve_is_refused(settings: Settings, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        server_secret(settings, shared=False)
    assert "short" not in str(refused.value)
    assert SECRET not in str(refused.value)


def test_the_made_secret_is_random_and_long_enough() -> None:
    first, second = server_secret(Settings(), shared=False), server_secret(Settings(), shared=False)
    assert first is not None
    assert second is not None
    assert len(first) == 32
    assert first != second
