"""The session state machine: every legal transition, and every illegal (state, message) pair."""

from __future__ import annotations

import asyncio
import itertools
from http import HTTPStatus
from typing import Any

import pytest
from asgiref.typing import ASGISendEvent

from asgi_chat.asgi.errors import (
    CloseCode,
    Disconnected,
    NotFound,
    PolicyViolation,
    ProtocolError,
    Refusal,
    TryAgainLater,
)
from asgi_chat.asgi.responses import text
from asgi_chat.asgi.session import Session
from asgi_chat.asgi.states import MORE_BODY, TRANSITIONS, State
from asgi_chat.ops.metrics import Metrics
from tests.helpers import DENIAL, WebSocketClient

RECEIVED = ("websocket.connect", "websocket.receive", "websocket.disconnect")
RESPONSE = ("websocket.http.response.start", "websocket.http.response.body", MORE_BODY)
SENT = ("websocket.accept", "websocket.send", "websocket.close", *RESPONSE)

EVENTS: dict[str, Any] = {
    "websocket.connect": {"type": "websocket.connect"},
    "websocket.receive": {"type": "websocket.receive", "text": "hi"},
    "websocket.disconnect": {"type": "websocket.disconnect", "code": 1000},
}


def session_in(state: State, wire: WebSocketClient, metrics: Metrics | None = None) -> Session:
    session = Session(wire.scope, wire.asgi_receive, wire.asgi_send, metrics=metrics)
    session.state = state
    return session


def state_of(session: Session) -> State:
    return session.state  # a call, so mypy does not keep an earlier assert's narrowing


async def act(session: Session, direction: str, message_type: str, wire: WebSocketClient) -> None:
    if direction == "received":
        wire.feed(EVENTS[message_type])
        if session.state is State.CONNECTING:
            await session.wait_connect()
        else:
            await session.receive_message()
    elif message_type == "websocket.accept":
        await session.accept()
    elif message_type == "websocket.send":
        await session.send_text("hi")
    elif message_type == "websocket.http.response.start":
        await session.start_response(403, [])
    elif message_type in ("websocket.http.response.body", MORE_BODY):
        await session.send_body(b"no", more_body=message_type == MORE_BODY)
    else:
        await session.close(1000)


ILLEGAL = [
    (state, direction, kind)
    for state, (direction, kind) in itertools.product(
        [State.CONNECTING, State.HANDSHAKE, State.OPEN, State.RESPONDING],
        [*(("received", k) for k in RECEIVED), *(("sent", k) for k in SENT)],
    )
    if (state, direction, kind) not in TRANSITIONS
]


@pytest.mark.parametrize(("state", "direction", "kind"), ILLEGAL)
async def test_illegal_pairs_raise_a_protocol_error_naming_both(state: State, direction: str, kind: str) -> None:
    wire = WebSocketClient()
    session = session_in(state, wire)
    with pytest.raises(ProtocolError) as caught:
        await act(session, direction, kind, wire)
    assert caught.value.state == state.name
    assert caught.value.message_type == kind
    assert f"in state {state.name}, {direction} {kind!r}" == str(caught.value)
    assert wire.sent == []  # nothing illegal reached the server


def test_the_illegal_table_is_not_empty() -> None:
    assert len(ILLEGAL) >= 8
    # A response once started admits only its body: nothing of the WebSocket, not a second start.
    assert (State.RESPONDING, "sent", "websocket.close") in ILLEGAL
    assert (State.RESPONDING, "sent", "websocket.http.response.start") in ILLEGAL
    assert (State.OPEN, "sent", "websocket.http.response.start") in ILLEGAL  # too late once accepted
    assert (State.HANDSHAKE, "sent", "websocket.http.response.body") in ILLEGAL  # a body needs its start


async def test_the_happy_path_counts_the_open_connection() -> None:
    metrics = Metrics()
    wire = WebSocketClient(
        script=[EVENTS["websocket.connect"], EVENTS["websocket.receive"], EVENTS["websocket.disconnect"]]
    )
    session = session_in(State.CONNECTING, wire, metrics)
    await session.wait_connect()
    assert state_of(session) is State.HANDSHAKE
    await session.accept("bearer")
    assert metrics.connections == 1
    assert await session.receive_message() == "hi"
    await session.send_text("yo")
    with pytest.raises(Disconnected):
        await session.receive_message()
    assert session.state is State.CLOSED
    assert metrics.connections == 0
    assert (metrics.messages_received, metrics.messages_delivered) == (1, 1)
    assert wire.sent[0] == {"type": "websocket.accept", "subprotocol": "bearer", "headers": []}


async def test_closing_before_accept_is_a_refusal() -> None:
    wire = WebSocketClient()
    session = session_in(State.HANDSHAKE, wire)
    await session.close(1008, "no")
    assert wire.sent == [{"type": "websocket.close", "code": 1008, "reason": "no"}]
    assert (session.state, session.close_code) == (State.CLOSED, 1008)


# --- the denial response: an HTTP answer in place of accept ----------------------------------------


async def test_a_denial_response_is_a_start_then_one_body_and_ends_the_session() -> None:
    metrics = Metrics()
    wire = WebSocketClient(extensions=DENIAL)
    session = session_in(State.HANDSHAKE, wire, metrics)
    await session.deny(text(403, "no\n"), 1008, "no")
    assert [message["type"] for message in wire.sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    start, body = wire.sent
    assert start["status"] == 403  # type: ignore[typeddict-item]
    assert (b"content-type", b"text/plain; charset=utf-8") in start["headers"]  # type: ignore[typeddict-item]
    assert body == {"type": "websocket.http.response.body", "body": b"no\n", "more_body": False}
    assert (session.state, session.close_code, session.close_reason) == (State.CLOSED, 1008, "no")
    assert metrics.connections == 0  # never open


async def test_a_body_with_more_to_follow_keeps_the_response_open() -> None:
    session = session_in(State.HANDSHAKE, WebSocketClient())
    await session.start_response(403, [])
    await session.send_body(b"part ", more_body=True)
    assert state_of(session) is State.RESPONDING
    await session.send_body(b"two")
    assert state_of(session) is State.CLOSED


async def test_the_status_is_sent_as_a_plain_int() -> None:
    wire = WebSocketClient()
    await session_in(State.HANDSHAKE, wire).deny(text(HTTPStatus.NOT_FOUND, "x"), 1000, "x")
    assert type(wire.sent[0].get("status")) is int  # like close codes: servers may check the type


@pytest.mark.parametrize(
    ("extensions", "state", "expected"),
    [
        (DENIAL, State.HANDSHAKE, "websocket.http.response.start"),
        ({}, State.HANDSHAKE, "websocket.close"),  # a server without the extension: its bare 403
        (None, State.HANDSHAKE, "websocket.close"),  # ASGI: extensions is optional
        (DENIAL, State.OPEN, "websocket.close"),  # after accept, a close frame is the only answer
    ],
)
async def test_refuse_answers_with_a_response_only_before_accept_on_a_server_that_takes_one(
    extensions: dict[str, dict[object, object]] | None, state: State, expected: str
) -> None:
    wire = WebSocketClient(extensions=extensions)
    session = session_in(state, wire)
    await session.refuse(PolicyViolation("no"))
    assert [message["type"] for message in wire.sent][:1] == [expected]
    assert (session.state, session.close_code) == (State.CLOSED, 1008)


@pytest.mark.parametrize(
    ("refusal", "status"),
    [(PolicyViolation("no"), 403), (NotFound("not found"), 404), (TryAgainLater("full"), 503)],
)
async def test_refuse_sends_the_refusals_own_status(refusal: Refusal, status: int) -> None:
    wire = WebSocketClient(extensions=DENIAL)
    await session_in(State.HANDSHAKE, wire).refuse(refusal)
    assert wire.sent[0].get("status") == status


async def test_a_denial_the_server_never_takes_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("asgi_chat.asgi.session.CLOSE_TIMEOUT", 0.05)
    wire = WebSocketClient(mode="block", affects={"websocket.http.response.start"})
    session = session_in(State.HANDSHAKE, wire)
    await asyncio.wait_for(session.deny(text(403, "no"), 1008, "no"), 1)
    assert session.state is State.CLOSED


async def test_a_denial_to_a_peer_already_gone_ends_quietly() -> None:
    wire = WebSocketClient(mode="raise", affects={"websocket.http.response.body"})
    session = session_in(State.HANDSHAKE, wire)
    await session.deny(text(403, "no"), 1008, "no")
    assert session.state is State.CLOSED


async def test_close_is_idempotent() -> None:
    wire = WebSocketClient()
    session = session_in(State.OPEN, wire)
    await session.close(1000)
    await session.close(1001)
    assert len(wire.sent) == 1


async def test_a_send_after_close_is_a_disconnect_not_a_protocol_error() -> None:
    # The hub's writer may send while another task closes the session: the peer is gone for both.
    session = session_in(State.CLOSED, WebSocketClient())
    with pytest.raises(Disconnected):
        await session.send_text("late")


@pytest.mark.parametrize("error", [OSError("gone"), ConnectionResetError(), RuntimeError("closed")])
async def test_a_failing_send_is_a_disconnect(error: BaseException) -> None:
    metrics = Metrics()
    wire = WebSocketClient(error=error)
    session = session_in(State.HANDSHAKE, wire, metrics)
    await session.accept()
    wire.mode = "raise"
    with pytest.raises(Disconnected):
        await session.send_text("hi")
    assert session.state is State.CLOSED
    assert metrics.connections == 0


@pytest.mark.parametrize(
    "event",
    [
        {"type": "websocket.receive", "text": "a", "bytes": b"b"},  # both
        {"type": "websocket.receive", "text": None, "bytes": None},  # neither
        {"type": "websocket.receive"},  # neither key at all
    ],
)
async def test_a_receive_without_exactly_one_payload_is_a_protocol_error(event: dict[str, Any]) -> None:
    session = session_in(State.OPEN, WebSocketClient(script=[event]))
    with pytest.raises(ProtocolError, match="not exactly one of text/bytes"):
        await session.receive_message()


async def test_bytes_may_come_without_a_text_key() -> None:
    session = session_in(State.OPEN, WebSocketClient(script=[{"type": "websocket.receive", "bytes": b"\x00"}]))
    assert await session.receive_message() == b"\x00"


async def test_a_close_that_the_server_never_takes_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("asgi_chat.asgi.session.CLOSE_TIMEOUT", 0.05)
    session = session_in(State.OPEN, WebSocketClient(mode="block", affects={"websocket.close"}))
    await asyncio.wait_for(session.close(1013, "slow"), 1)
    assert session.state is State.CLOSED


# --- what other servers need (tests/e2e/test_servers.py shows them on the wire) ---------------------


async def test_a_disconnect_after_our_own_close_ends_the_reader_quietly() -> None:
    # granian at shutdown: the app closes from one task while its reader waits in receive, and the
    # server answers that receive with websocket.disconnect.
    session = session_in(State.OPEN, WebSocketClient(script=[{"type": "websocket.disconnect", "code": 1005}]))
    await session.close(1001, "server shutting down")
    with pytest.raises(Disconnected):
        await session.receive_message()
    assert (session.state, session.close_code) == (State.CLOSED, 1001)


async def test_close_codes_are_sent_as_plain_ints() -> None:
    # daphne (autobahn) checks type(code) == int: an IntEnum member fails the connection.
    wire = WebSocketClient()
    await session_in(State.OPEN, wire).close(CloseCode.POLICY_VIOLATION, "no")
    assert [type(message.get("code")) for message in wire.sent] == [int]


async def test_a_close_code_the_server_refuses_becomes_1000() -> None:
    wire = WebSocketClient()

    async def autobahn_send(message: ASGISendEvent) -> None:  # daphne's quirk, on the fake server
        if message["type"] == "websocket.close" and message["code"] != 1000:
            raise Exception(f"invalid close code {message['code']} (must be 1000 or from [3000, 4999])")
        await wire.asgi_send(message)

    session = session_in(State.OPEN, wire)
    session._send = autobahn_send
    await session.close(1003, "binary messages are not supported here: send text")
    assert wire.sent == [
        {"type": "websocket.close", "code": 1000, "reason": "binary messages are not supported here: send text"}
    ]
    assert (session.state, session.close_code) == (State.CLOSED, 1003)


class Recorder:
    """A guard that lets everything pass and remembers what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str | bytes, bool]] = []

    def admit(self, payload: str | bytes, queued: bool = False) -> None:
        self.calls.append((payload, queued))


async def test_the_guard_hears_whether_a_message_was_waiting_for_the_app() -> None:
    """Queued (already there when asked) or waited for: what lets the rate guard forgive the app's
    own delay (ops/security.py, InboundGuard)."""
    wire = WebSocketClient()
    recorder = Recorder()
    session = Session(wire.scope, wire.asgi_receive, wire.asgi_send, guard=recorder)
    session.state = State.OPEN
    wire.feed(EVENTS["websocket.receive"])  # there before the app asks
    assert await session.receive_message() == "hi"
    reading = asyncio.ensure_future(session.receive_message())
    await asyncio.sleep(0.01)  # the app waits in receive: this is the case under test, not a sync
    wire.feed({"type": "websocket.receive", "text": "later"})
    assert await reading == "later"
    assert recorder.calls == [("hi", True), ("later", False)]
