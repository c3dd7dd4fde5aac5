"""The trace through the app: off, nothing is in the path; on, every message is a redacted line."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.typing import ASGIReceiveCallable, ASGIReceiveEvent, ASGISendCallable, ASGISendEvent, Scope

from asgi_chat import Settings, create_app
from asgi_chat.composition import ChatApp, TracedChatApp
from asgi_chat.ops.settings import from_env
from asgi_chat.ops.trace import Trace
from tests.helpers import DENIAL, TIMEOUT, WebSocketClient, http_get, lifespan, websocket_scope

SECRET = "s3cret-value"
TIME = re.compile(r" \+\d+\.\d{3}s ")


def untimed(lines: list[str]) -> list[str]:
    return [TIME.sub(" ", line) for line in lines]


class Lines(logging.Handler):
    """Collects what the ``asgi_chat.trace`` logger writes, times removed."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(TIME.sub(" ", record.getMessage()))


@pytest.fixture
def trace_lines() -> Iterator[list[str]]:
    trace_logger = logging.getLogger("asgi_chat.trace")
    handler, level = Lines(), trace_logger.level
    trace_logger.addHandler(handler)
    trace_logger.setLevel(logging.INFO)
    yield handler.lines
    trace_logger.removeHandler(handler)
    trace_logger.setLevel(level)


# --- off: free --------------------------------------------------------------------------------------


async def test_with_trace_off_the_endpoint_gets_the_servers_own_receive_and_send() -> None:
    app = create_app(Settings())
    inbox: asyncio.Queue[ASGIReceiveEvent] = asyncio.Queue()
    outbox: asyncio.Queue[ASGISendEvent] = asyncio.Queue()
    receive, send = inbox.get, outbox.put
    await inbox.put({"type": "websocket.connect"})
    task = asyncio.create_task(app(websocket_scope("/ws"), receive, send))
    assert (await asyncio.wait_for(outbox.get(), TIMEOUT))["type"] == "websocket.accept"
    (session,) = app.sessions
    assert session._receive is receive
    assert session._send is send
    await inbox.put({"type": "websocket.disconnect", "code": 1000, "reason": ""})
    await asyncio.wait_for(task, TIMEOUT)


def test_with_trace_off_nothing_sits_between_server_and_app() -> None:
    assert type(create_app(Settings())) is ChatApp
    assert isinstance(create_app(from_env({"ASGI_CHAT_TRACE": "1"})), TracedChatApp)


# --- on: every message --------------------------------------------------------------------------------


async def test_an_echo_session_reads_message_by_message(trace_lines: list[str]) -> None:
    app = create_app(Settings(trace=True))
    assert await lifespan(app, "startup", "shutdown") == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]
    client = WebSocketClient(app, "/ws")
    await client.accept()
    await client.send("hello")
    assert await client.receive() == "Message text was: hello"
    await client.send(data=b"\x01")
    await client.output()
    await client.disconnect(1001)
    assert trace_lines == [
        "#1 · lifespan",
        "#1 ← lifespan.startup",
        "#1 → lifespan.startup.complete",
        "#1 ← lifespan.shutdown",
        "#1 → lifespan.shutdown.complete",
        "#1 · end",
        "#2 · websocket /ws",
        "#2 ← websocket.connect",
        "#2 → websocket.accept",
        "#2 ← websocket.receive text='hello'",
        "#2 → websocket.send text='Message text was: hello'",
        r"#2 ← websocket.receive bytes=b'\x01'",
        r"#2 → websocket.send bytes=b'\x01'",
        "#2 ← websocket.disconnect code=1001",
        "#2 · end",
    ]


async def test_a_traced_app_keeps_its_context(trace_lines: list[str]) -> None:
    app = create_app(Settings(trace=True))
    status, _, body = await http_get(app, "/healthz")
    assert status == 200
    assert app.ctx.settings.trace
    assert trace_lines[0] == "#1 · http GET /healthz"
    assert trace_lines[-3:] == [
        "#1 → http.response.start status=200",
        f"#1 → http.response.body body={body[:60]!r}… ({len(body)} bytes)",
        "#1 · end",
    ]


@pytest.mark.parametrize(
    "scope",
    [
        {"query_string": f"token={SECRET}".encode()},
        {"headers": [(b"cookie", f"session={SECRET}".encode())]},
        {"subprotocols": ["bearer", SECRET]},
    ],
    ids=["query", "cookie", "bearer"],
)
async def test_no_line_shows_the_credential(trace_lines: list[str], scope: dict[str, Any]) -> None:
    app = create_app(Settings(trace=True))
    client = WebSocketClient(app, "/items/foo/ws", **scope)
    await client.accept()
    await client.send(f"mine is {SECRET}")
    echoed = await client.receive_many(2)
    assert echoed[0] == f"Session cookie or query token value is: {SECRET}"  # the app does echo it
    await client.disconnect()
    assert len(trace_lines) == 8
    assert not [line for line in trace_lines if SECRET in line]
    assert "#1 → websocket.send text='Session cookie or query token value is: [redacted]'" in trace_lines


async def test_a_refusal_shows_its_close_code_and_reason(trace_lines: list[str]) -> None:
    app = create_app(Settings(trace=True))
    client = WebSocketClient(app, "/items/foo/ws")
    assert (await client.connect())["code"] == 1008
    await client.finished()
    assert trace_lines == [
        "#1 · websocket /items/foo/ws",
        "#1 ← websocket.connect",
        "#1 → websocket.close code=1008"
        " reason='missing credentials: send a session cookie, a bearer subprotocol or a token'",
        "#1 · end",
    ]


async def test_a_refusal_answered_with_an_http_response_shows_its_status_and_body(trace_lines: list[str]) -> None:
    app = create_app(Settings(trace=True))
    client = WebSocketClient(app, "/items/foo/ws", query_string=f"token={SECRET}&q=x".encode(), extensions=DENIAL)
    await client.denied()
    assert trace_lines == [
        "#1 · websocket /items/foo/ws?token=[redacted]&q=x",
        "#1 ← websocket.connect",
        "#1 → websocket.http.response.start status=403",
        r"#1 → websocket.http.response.body body=b'invalid q: expected an integer\n'",
        "#1 · end",
    ]


# --- any ASGI app ---------------------------------------------------------------------------------------


async def inline_app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """A raw ASGI app: accepts, sends once, then fails."""
    await receive()
    await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
    await send({"type": "websocket.send", "text": "one", "bytes": None})
    raise ValueError("boom")


async def test_the_middleware_wraps_any_app_and_shows_what_it_raised() -> None:
    lines: list[str] = []
    sent: list[ASGISendEvent] = []

    async def receive() -> ASGIReceiveEvent:
        return {"type": "websocket.connect"}

    async def send(message: ASGISendEvent) -> None:
        sent.append(message)

    traced = Trace(inline_app, write=lines.append, clock=iter(range(100)).__next__)
    with pytest.raises(ValueError, match="boom"):
        await traced(websocket_scope("/anything"), receive, send)
    assert len(sent) == 2
    assert lines == [
        "#1 +1.000s · websocket /anything",
        "#1 +2.000s ← websocket.connect",
        "#1 +3.000s → websocket.accept",
        "#1 +4.000s → websocket.send text='one'",
        "#1 +5.000s · the app raised ValueError: boom",
    ]


async def test_a_send_the_server_refuses_is_shown_and_still_raised() -> None:
    lines: list[str] = []

    async def receive() -> ASGIReceiveEvent:
        return {"type": "websocket.connect"}

    async def send(message: ASGISendEvent) -> None:
        raise OSError("client gone")  # ASGI 2.4: what a send after a disconnect raises

    app = create_app(Settings())
    traced = Trace(app, write=lines.append)
    await traced(websocket_scope("/ws"), receive, send)
    assert untimed(lines) == [
        "#1 · websocket /ws",
        "#1 ← websocket.connect",
        "#1 → websocket.accept",
        "#1 →   the server raised OSError: client gone",
        "#1 · end",
    ]


async def test_connections_are_numbered_in_the_order_they_start() -> None:
    lines: list[str] = []
    traced = Trace(create_app(Settings()), write=lines.append)
    first, second = WebSocketClient(traced, "/ws/1"), WebSocketClient(traced, "/ws/2")
    await first.accept()
    await second.accept()
    for client in (second, first):
        await client.disconnect()
    assert untimed(lines)[:4] == [
        "#1 · websocket /ws/1",
        "#1 ← websocket.connect",
        "#1 → websocket.accept",
        "#2 · websocket /ws/2",
    ]


def test_unconfigured_logging_still_shows_the_trace(capsys: pytest.CaptureFixture[str]) -> None:
    """Plain ``uvicorn asgi_chat:app`` configures no handler for asgi_chat: the trace adds one."""
    trace_logger = logging.getLogger("asgi_chat.trace")
    saved = trace_logger.handlers[:], trace_logger.level, trace_logger.propagate
    trace_logger.handlers.clear()
    trace_logger.propagate = False  # as if nothing above it had a handler either
    try:
        asyncio.run(http_get(Trace(create_app(Settings())), "/healthz"))
        assert "trace #1 +" in capsys.readouterr().err
    finally:
        trace_logger.handlers[:], trace_logger.propagate = saved[0], saved[2]
        trace_logger.setLevel(saved[1])
