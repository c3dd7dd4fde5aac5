"""The trace's pure parts: how a scope, a message and an error read, and what is redacted."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_chat.ops.trace import Describer, Redactor
from tests.helpers import websocket_scope

SECRET = "s3cret-value"


def plain(limit: int = 20) -> Describer:
    return Describer(Redactor(), limit)


@pytest.mark.parametrize(
    ("message", "line"),
    [
        ({"type": "websocket.connect"}, "websocket.connect"),
        # None and empty fields are left out: the defaults say nothing.
        ({"type": "websocket.accept", "subprotocol": None, "headers": []}, "websocket.accept"),
        (
            {"type": "websocket.accept", "subprotocol": "bearer", "headers": []},
            "websocket.accept subprotocol='bearer'",
        ),
        ({"type": "websocket.receive", "text": "hi", "bytes": None}, "websocket.receive text='hi'"),
        # A server may leave out the key that is None (ASGI: "one or both keys may be present").
        ({"type": "websocket.receive", "bytes": b"\x00\xff"}, r"websocket.receive bytes=b'\x00\xff'"),
        # An empty text is still a message, so it shows; the None beside it does not.
        ({"type": "websocket.send", "text": "", "bytes": None}, "websocket.send text=''"),
        ({"type": "websocket.close", "code": 1008, "reason": "no"}, "websocket.close code=1008 reason='no'"),
        ({"type": "websocket.close", "code": 1000, "reason": ""}, "websocket.close code=1000"),
        ({"type": "websocket.disconnect", "code": 1005}, "websocket.disconnect code=1005"),
        (
            {"type": "http.response.start", "status": 404, "headers": [(b"a", b"b")]},
            "http.response.start status=404",
        ),
        ({"type": "http.response.body", "body": b"ok", "more_body": False}, "http.response.body body=b'ok'"),
        # The denial-response extension: an HTTP answer in place of websocket.accept.
        (
            {"type": "websocket.http.response.start", "status": 403, "headers": [(b"a", b"b")]},
            "websocket.http.response.start status=403",
        ),
        (
            {"type": "websocket.http.response.body", "body": b"no\n", "more_body": False},
            r"websocket.http.response.body body=b'no\n'",
        ),
        (
            {"type": "websocket.http.response.body", "body": b"", "more_body": True},
            "websocket.http.response.body body=b'' more_body=True",
        ),
        (
            {"type": "lifespan.startup.failed", "message": "no redis"},
            "lifespan.startup.failed message='no redis'",
        ),
        # A type the table does not know prints every field.
        ({"type": "x.custom", "n": 3, "flag": True}, "x.custom n=3 flag=True"),
    ],
)
def test_a_message_reads_as_its_type_and_salient_fields(message: dict[str, Any], line: str) -> None:
    assert plain().message(message) == line


def test_long_text_is_cut_with_its_length() -> None:
    text = "a" * 25
    assert (
        plain(20).message({"type": "websocket.send", "text": text}) == f"websocket.send text='{'a' * 20}'… (25 chars)"
    )


def test_a_close_reason_is_never_cut() -> None:
    reason = "r" * 123  # RFC 6455 5.5 keeps it short anyway: 125 bytes with the code
    assert plain(20).message({"type": "websocket.close", "code": 1008, "reason": reason}).endswith(f"'{reason}'")


def test_long_bytes_are_cut_with_their_length() -> None:
    data = bytes(range(30))
    line = plain(4).message({"type": "websocket.send", "bytes": data})
    assert line == r"websocket.send bytes=b'\x00\x01\x02\x03'… (30 bytes)"


@pytest.mark.parametrize(
    ("scope", "line"),
    [
        ({"type": "lifespan", "asgi": {"version": "3.0"}}, "lifespan"),
        (websocket_scope("/ws"), "websocket /ws"),
        (websocket_scope("/ws/1", b"a=1"), "websocket /ws/1?a=1"),
        (websocket_scope("/ws", headers=[(b"origin", b"http://x")]), "websocket /ws origin='http://x'"),
        (websocket_scope("/ws", subprotocols=["chat"]), "websocket /ws subprotocols=['chat']"),
    ],
)
def test_a_scope_reads_as_its_type_and_target(scope: Any, line: str) -> None:
    assert plain().scope(scope) == line


# --- redaction ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scope",
    [
        websocket_scope("/items/a/ws", f"token={SECRET}".encode()),
        websocket_scope("/items/a/ws", headers=[(b"cookie", f"theme=dark; session={SECRET}".encode())]),
        websocket_scope("/items/a/ws", subprotocols=["bearer", SECRET]),
        # Percent-escaped in the query string: the parser decodes it, and so does the redactor.
        websocket_scope("/items/a/ws", b"%74oken=s3cret%2Dvalue"),
    ],
    ids=["query", "cookie", "bearer", "escaped-query"],
)
def test_a_connections_credential_is_redacted_wherever_it_appears(scope: Any) -> None:
    describe = Describer(Redactor.for_scope(scope), 200)
    lines = [
        describe.scope(scope),
        # The items endpoint echoes the credential back.
        describe.message({"type": "websocket.send", "text": f"Session cookie or query token value is: {SECRET}"}),
        describe.message({"type": "websocket.send", "bytes": SECRET.encode()}),
        describe.exception(ValueError(f"bad {SECRET}")),
    ]
    assert not [line for line in lines if SECRET in line or "s3cret" in line]
    assert "[redacted]" in lines[1]


def test_redaction_happens_before_the_cut() -> None:
    """A credential cut in two would no longer match: the cut must come after."""
    scope = websocket_scope("/items/a/ws", f"token={SECRET}".encode())
    describe = Describer(Redactor.for_scope(scope), 12)
    line = describe.message({"type": "websocket.send", "text": f"value: {SECRET}"})
    assert line == "websocket.send text='value: [reda'… (17 chars)"


def test_longer_secrets_are_replaced_first() -> None:
    redactor = Redactor(["abc", "abcdef"])
    assert redactor("x abcdef y abc") == "x [redacted] y [redacted]"


def test_a_one_letter_credential_leaves_the_markers_alone() -> None:
    """A short credential hides innocent letters too (saying less is the safe side), but never
    the ``[redacted]`` markers: ``token=a`` once printed ``[red[redacted]cted]``."""
    scope = websocket_scope("/items/a/ws", b"token=a&q=x")
    describe = Describer(Redactor.for_scope(scope), 200)
    assert describe.scope(scope) == "websocket /items/[redacted]/ws?token=[redacted]&q=x"


def test_the_bearer_subprotocol_list_reads_cleanly() -> None:
    scope = websocket_scope("/items/a/ws", subprotocols=["bearer", SECRET])
    assert plain().scope(scope) == "websocket /items/a/ws subprotocols=['bearer', '[redacted]']"
    assert Describer(Redactor.for_scope(scope), 60).scope(scope) == plain().scope(scope)


def test_non_secret_cookies_and_parameters_are_shown() -> None:
    scope = websocket_scope("/ws", b"q=5", headers=[(b"cookie", b"theme=dark")])
    assert Redactor.for_scope(scope).secrets == ()
    assert plain().scope(scope) == "websocket /ws?q=5 cookie='theme=dark'"
