"""The defences as pure objects: origin policy, credentials, token files, rate and size, connection caps."""

from __future__ import annotations

from pathlib import Path

import pytest

from asgi_chat.asgi.errors import MessageTooBig, PolicyViolation, TryAgainLater
from asgi_chat.endpoints.credentials import Credential, bearer_token, find_credential
from asgi_chat.ops.logs import redact
from asgi_chat.ops.security import ConnectionLimits, InboundGuard, OriginPolicy, TokenSet
from asgi_chat.ops.settings import SettingsError

HOST = [(b"host", b"chat.example:8000")]


def with_origin(origin: bytes) -> list[tuple[bytes, bytes]]:
    return [*HOST, (b"origin", origin)]


@pytest.mark.parametrize(
    "headers",
    [
        HOST,  # no Origin: not a browser, nothing to check
        with_origin(b"http://chat.example:8000"),  # same origin
        with_origin(b"http://CHAT.example:8000"),
        with_origin(b"https://allowed.example"),  # listed
        with_origin(b"https://allowed.example:443"),  # the same origin, default port spelled out
    ],
)
def test_origin_policy_passes(headers: list[tuple[bytes, bytes]]) -> None:
    OriginPolicy(["https://allowed.example"]).check(headers, "ws")


@pytest.mark.parametrize(
    "headers",
    [
        with_origin(b"http://evil.example"),
        with_origin(b"http://chat.example:8001"),  # another port is another origin
        with_origin(b"https://chat.example:8000"),  # another scheme too
        with_origin(b"null"),  # sandboxed frames and file: pages
        with_origin(b"garbage"),
        [*with_origin(b"http://chat.example:8000"), (b"origin", b"http://evil.example")],  # two headers
        [(b"origin", b"http://chat.example:8000")],  # no Host: cannot be same-origin
        [*HOST, (b"host", b"evil.example"), (b"origin", b"http://evil.example")],  # two Hosts
    ],
)
def test_origin_policy_refuses(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(PolicyViolation, match="origin not allowed"):
        OriginPolicy(["https://allowed.example"]).check(headers, "ws")


def test_origin_policy_compares_wss_with_https() -> None:
    OriginPolicy([]).check(with_origin(b"https://chat.example:8000"), "wss")


def test_a_star_turns_the_origin_check_off() -> None:
    policy = OriginPolicy(["*"])
    assert policy.allow_all
    policy.check(with_origin(b"http://evil.example"), "ws")


def test_a_malformed_allowed_origin_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="ASGI_CHAT_ALLOWED_ORIGINS"):
        OriginPolicy(["not an origin"])


@pytest.mark.parametrize(
    ("cookies", "query", "subprotocols", "expected"),
    [
        ({"session": "c"}, {"token": "t"}, [], Credential("c", "cookie")),  # the cookie wins
        ({"session": ""}, {"token": "t"}, [], Credential("t", "query")),  # an empty cookie falls back
        ({}, {"token": "t"}, ["bearer", "b"], Credential("b", "subprotocol")),
        ({"session": "c"}, {}, ["bearer", "b"], Credential("c", "cookie")),
        ({}, {"token": ""}, [], None),  # an empty token is no token
        ({}, {}, ["bearer"], None),  # bearer with nothing after it
        ({"Session": "c"}, {"Token": "t"}, [], None),  # names are case-sensitive
        ({}, {}, [], None),
    ],
)
def test_find_credential(
    cookies: dict[str, str], query: dict[str, str], subprotocols: list[str], expected: Credential | None
) -> None:
    assert find_credential(cookies, query, subprotocols) == expected


def test_bearer_token_is_the_subprotocol_after_bearer() -> None:
    assert bearer_token(["chat", "bearer", "abc", "x"]) == "abc"
    assert bearer_token(["abc", "bearer"]) is None


def test_a_credential_never_shows_its_value() -> None:
    assert "s3cret" not in repr(Credential("s3cret", "query"))


def test_token_set_from_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("alpha\n  beta  \n\n")
    tokens = TokenSet.from_file(str(path))
    assert len(tokens) == 2
    assert tokens("alpha")
    assert tokens("beta")
    assert not tokens("gamma")
    assert not tokens("")
    assert not tokens("alph")


def test_an_unreadable_token_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="ASGI_CHAT_TOKENS_FILE"):
        TokenSet.from_file(str(tmp_path / "missing"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_allows_the_burst_then_the_rate() -> None:
    clock = FakeClock()
    guard = InboundGuard(max_bytes=0, rate=2, burst=3, clock=clock)
    for _ in range(3):
        guard.admit("x")
    with pytest.raises(PolicyViolation, match="too many messages: the limit is 2 per second"):
        guard.admit("x")
    clock.now += 0.5  # refills one token at 2 per second
    guard.admit("x")
    with pytest.raises(PolicyViolation):
        guard.admit("x")


def test_rate_zero_is_off() -> None:
    guard = InboundGuard(max_bytes=0, rate=0, burst=1, clock=FakeClock())
    for _ in range(1000):
        guard.admit("x")


@pytest.mark.parametrize(
    ("payload", "too_big"),
    [
        ("a" * 8, False),
        ("a" * 9, True),
        ("\u00e9" * 4, False),  # 8 bytes of UTF-8
        ("\u00e9" * 4 + "a", True),  # 5 characters, 9 bytes: the length alone would pass it
        ("\U0001f600" * 2, False),  # 8 bytes
        (b"\x00" * 9, True),
    ],
)
def test_size_limit_counts_utf8_bytes(payload: str | bytes, too_big: bool) -> None:
    guard = InboundGuard(max_bytes=8, rate=0, burst=1)
    if too_big:
        with pytest.raises(MessageTooBig, match="the limit is 8 bytes"):
            guard.admit(payload)
    else:
        guard.admit(payload)


def test_connection_limits_total_and_per_address() -> None:
    limits = ConnectionLimits(max_total=3, max_per_address=2)
    first = limits.acquire(("10.0.0.1", 1000))
    assert first == "10.0.0.1"
    limits.acquire(("10.0.0.1", 1001))
    with pytest.raises(TryAgainLater, match="from your address"):
        limits.acquire(("10.0.0.1", 1002))
    limits.acquire(("10.0.0.2", 1000))
    with pytest.raises(TryAgainLater, match="server full"):
        limits.acquire(("10.0.0.3", 1000))
    limits.release(first)
    limits.acquire(("10.0.0.3", 1000))
    assert limits.total == 3


def test_a_connection_without_an_address_counts_only_in_the_total() -> None:
    limits = ConnectionLimits(max_total=0, max_per_address=1)
    tickets = [limits.acquire(None) for _ in range(5)]  # a Unix socket: the server knows no address
    assert tickets == [""] * 5
    for ticket in tickets:
        limits.release(ticket)
    assert limits.total == 0


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '"WebSocket /items/f/ws?token=s3cret&q=1" [accepted]',
            '"WebSocket /items/f/ws?token=[redacted]&q=1" [accepted]',
        ),
        ("/items/f/ws?q=1&token=s3cret", "/items/f/ws?q=1&token=[redacted]"),
        ("/items/f/ws?%74oken=s3cret", "/items/f/ws?%74oken=[redacted]"),  # an escaped name
        ("/items/f/ws?TOKEN=s3cret", "/items/f/ws?TOKEN=[redacted]"),
        ("(b'cookie', b'a=1; session=s3cret')", "(b'cookie', b'a=1; session=[redacted]')"),
        ("['bearer', 's3cret']", "['bearer', '[redacted]']"),
        ("sec-websocket-protocol: bearer, s3cret", "sec-websocket-protocol: bearer, [redacted]"),
        ("authorization: Bearer s3cret", "authorization: [redacted]"),
        ("> TEXT 'Session cookie or query token value is: s3cret' [46 bytes]", "> TEXT [redacted] [46 bytes]"),
        ("< TEXT 'Ses...s3cret' [text, 46 bytes, continued]", "< TEXT [redacted] [text, 46 bytes, continued]"),
        ("< CLOSE 1000 (OK) [2 bytes]", "< CLOSE 1000 (OK) [2 bytes]"),  # control frames stay readable
        (
            "'text': 'Session cookie or query token value is: s3cret'}",
            "'text': 'Session cookie or query token value is: [redacted]'}",
        ),
        ("/ws/5?q=token", "/ws/5?q=token"),  # a value that merely looks like a name
        ("mytoken=5", "mytoken=5"),
    ],
)
def test_redact(line: str, expected: str) -> None:
    assert redact(line) == expected


# --- the rate by arrival, not by reading (issue 18) ---------------------------------------------


def test_messages_an_honest_client_sent_while_the_app_was_stalled_all_pass() -> None:
    """10 a second against a limit of 20 (burst 40): the app is stalled for 10 s, then reads the
    100 messages that queued meanwhile back to back. Counted as read, they would be one burst of
    100 and the client closed at the 41st; counted by the time the app fell behind, they pass."""
    clock = FakeClock()
    guard = InboundGuard(0, rate=20, burst=40, clock=clock)
    guard.admit("before the stall")  # the app waited for it: caught up
    clock.now += 10.0  # the stall
    for _ in range(100):
        guard.admit("sent during the stall", queued=True)
    clock.now += 0.1
    guard.admit("caught up again")  # waited for: the cap of the burst applies again


def test_a_burst_beyond_the_limit_is_refused_however_it_is_read() -> None:
    clock = FakeClock()
    guard = InboundGuard(0, rate=20, burst=40, clock=clock)
    guard.admit("first")  # waited for
    for _ in range(39):
        guard.admit("burst", queued=True)
    with pytest.raises(PolicyViolation, match="too many messages"):
        guard.admit("one too many", queued=True)


def test_the_stall_credit_is_bounded_and_the_cap_returns_once_the_app_caught_up() -> None:
    clock = FakeClock()
    guard = InboundGuard(0, rate=1, burst=2, clock=clock)
    clock.now += 3600.0  # an hour behind: at most STALL_CREDIT seconds of it are forgiven
    allowed = guard.burst + guard.STALL_CREDIT * guard.rate
    for _ in range(int(allowed)):
        guard.admit("queued", queued=True)
    with pytest.raises(PolicyViolation):
        guard.admit("queued", queued=True)
    fresh = InboundGuard(0, rate=1, burst=2, clock=clock)
    fresh.admit("queued", queued=True)
    clock.now += 3600.0
    fresh.admit("waited for")  # caught up: min(burst, ...) again
    fresh.admit("queued", queued=True)
    with pytest.raises(PolicyViolation):
        fresh.admit("queued", queued=True)
