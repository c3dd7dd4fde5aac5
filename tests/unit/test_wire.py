"""The pure parts of Redis: the broker's envelope on the wire (brokers/wire.py), and the link's URL
as logged and backoff (link_policy.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_chat.engine.brokers.wire import Envelope, frame, unframe
from asgi_chat.engine.link_policy import backoff_delay, redact_url


@given(st.text(), st.text(), st.text())
def test_any_text_round_trips(origin: str, channel: str, text: str) -> None:
    envelope = Envelope(origin, channel, text)
    assert unframe(frame(envelope)) == envelope


@pytest.mark.parametrize(
    "text",
    [
        "",
        '","',  # the separator, quoted
        '["x","y","z"]',  # a whole envelope inside the text
        "\\u0000 \x00 \n \r",  # an escape that is text, and the control characters JSON escapes
        "é ✓ 🙂",  # kept as UTF-8, not \\u escapes
    ],
)
def test_awkward_text_round_trips(text: str) -> None:
    assert unframe(frame(Envelope("0123456789abcdef", "asgi_chat", text))) == ("0123456789abcdef", "asgi_chat", text)


def test_non_ascii_travels_as_utf8() -> None:
    assert "🙂".encode() in frame(Envelope("o", "c", "🙂"))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",  # someone else's message on our channel
        b'["o","c"]',  # too short
        b'["o","c","t","extra"]',
        b'["o","c",1]',  # not all strings
        b'{"origin":"o","channel":"c","text":"t"}',
        b'["o","c","\xff"]',  # not UTF-8
        b"null",
    ],
)
def test_anything_else_is_not_an_envelope(data: bytes) -> None:
    assert unframe(data) is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0"),
        ("redis://chat:s3cret@redis/1", "redis://chat:***@redis/1"),
        ("rediss://chat:s3cret@redis.example:6380", "rediss://chat:***@redis.example:6380"),
        ("redis://s3cret@redis", "redis://***@redis"),  # redis-py reads a user, but it may be a password
        ("redis://:p@ss:w@rd@redis/0", "redis://:***@redis/0"),  # "@" in the password, unencoded
        ("redis://:p%40ss@redis/0", "redis://:***@redis/0"),
        ("redis://redis/0?password=s3cret&db=1", "redis://redis/0?password=***&db=1"),
        ("redis://redis/0?PassWord=s3cret", "redis://redis/0?PassWord=***"),
        ("redis://redis/0?pass%77ord=s3cret", "redis://redis/0?pass%77ord=***"),  # percent-encoded name
        ("redis://:s3cret@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("redis://:s3cret@[::1/0", "redis://***"),  # unparseable: show nothing that could be the secret
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("attempt", "jitter", "delay"),
    [
        (0, 0.0, 0.05),  # half the ceiling at the least...
        (0, 0.999999, 0.1),  # ...and up to the ceiling
        (1, 0.999999, 0.2),  # doubling
        (3, 0.999999, 0.8),
        (4, 0.999999, 1.6),
        (5, 0.999999, 2.0),  # capped
        (5, 0.0, 1.0),
        (10_000, 0.5, 1.5),  # no overflow, however long the outage
    ],
)
def test_backoff_delay(attempt: int, jitter: float, delay: float) -> None:
    assert backoff_delay(attempt, 0.1, 2.0, jitter) == pytest.approx(delay, rel=1e-5)
