"""The HTTP answer to a handshake refused before accept: each refusal's status, and what its body says."""

from __future__ import annotations

import pytest

from asgi_chat.asgi.errors import (
    BadParameter,
    GoingAway,
    MessageTooBig,
    NotFound,
    PolicyViolation,
    Refusal,
    TryAgainLater,
    UnsupportedData,
)
from asgi_chat.asgi.responses import denial
from asgi_chat.ops.security import OriginPolicy


@pytest.mark.parametrize(
    ("refusal", "status", "retry_after"),
    [
        (PolicyViolation("missing credentials"), 403, None),
        (PolicyViolation("origin not allowed: https://evil.example"), 403, None),
        (NotFound("not found"), 404, None),  # as HTTP answers the same path
        # A path that has a route's shape but a bad integer: WebSocket says 1008 naming the parameter.
        (NotFound.from_route(BadParameter("invalid client_id: expected an integer")), 403, None),
        (TryAgainLater("server full: too many open connections"), 503, b"5"),
        (GoingAway("server shutting down"), 503, None),
        # Only ever raised after accept (a message, not a handshake): the default, for completeness.
        (UnsupportedData("binary messages are not supported here: send text"), 403, None),
        (MessageTooBig("message too big"), 403, None),
    ],
    ids=repr,
)
def test_each_refusal_has_its_status_and_its_reason_as_the_body(
    refusal: Refusal, status: int, retry_after: bytes | None
) -> None:
    response = denial(refusal)
    headers = dict(response.header_list())
    assert response.status == status
    assert response.body == refusal.reason.encode() + b"\n"
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert headers.get(b"retry-after") == retry_after
    assert headers[b"x-content-type-options"] == b"nosniff"  # a reason may quote what the client sent


def test_a_quoted_origin_keeps_its_token_out_of_the_body() -> None:
    """The origin check quotes an Origin it cannot parse: a token in it goes no further than in
    the log line (the check redacts its reason; the denial shows the reason as it is)."""
    with pytest.raises(PolicyViolation) as refused:
        OriginPolicy([]).check([(b"origin", b"http://x/?token=s3cret")], "ws")
    assert denial(refused.value).body == b"origin not allowed: 'http://x/?token=[redacted]'\n"
