"""The server matrix: the same app under every ASGI server we support, with a real client.

ASGI is one contract between one app and many servers, and they differ in the corners. Each test
here asserts what a client actually sees on each server, with the differences written down in
``BEHAVIOUR`` (and in docs/servers.md's table), so a change in any server shows up as a failure.

The servers run with ``ASGI_CHAT_TRACE=1``: the trace is how a test sees what each server handed
the app, and it says at once when the app raised (``the app raised ...``), where some servers log
an application's traceback only later (daphne checks its applications once a second).

Each server process serves the whole module; the shutdown test, which runs last, ends it.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import SERVERS, TIMEOUT, Server, closed, free_port, recv, recv_many, wait_until

TRACE = {"ASGI_CHAT_TRACE": "1"}

# What must never appear in a server's log: the app failing, whatever the client did.
APP_FAILURES = (
    "Exception in ASGI application",  # uvicorn
    "Error in ASGI Framework",  # hypercorn
    "Exception inside application",  # daphne
    "the app raised",  # the trace, on every server
    "ASGI protocol error",  # the app's own warning for a message its state machine does not allow
)


@dataclass(frozen=True)
class Behaviour:
    """How one server treats the app, where servers differ. The defaults are uvicorn's."""

    # A close after accept reaches the client with the app's code and reason (RFC 6455 7.4.1).
    keeps_close_codes: bool = True
    # An empty message the app sends (b"" or "") reaches the client as an empty frame.
    sends_empty_messages: bool = True
    # The server offers ASGI's "WebSocket Denial Response" extension, so a handshake refused
    # before accept gets the app's HTTP response: its status, and its reason as the body.
    # Without it, every such refusal is a bare 403.
    denial_responses: bool = True
    # On SIGTERM, with a chat client connected: the close code the client gets (None: the TCP
    # connection ends without a close frame, which clients report as 1006) and within how long.
    shutdown_close: int | None = 1012
    shutdown_close_within: tuple[float, float] = (0.0, 2.0)
    # What the app is told after the signal: lines of its trace (in whatever order they come);
    # None: nothing at all.
    shutdown_trace: tuple[str, ...] | None = ("← websocket.disconnect code=1012", "← lifespan.shutdown")
    exit_code: int = 0
    # A traceback the server logs at shutdown from its own code (none from the app's).
    shutdown_traceback: str | None = None


BEHAVIOUR: dict[str, Behaviour] = {
    # uvicorn closes every WebSocket with 1012 (service restart) before lifespan.shutdown, and
    # after its graceful shutdown re-raises the signal, so its exit status is "killed by SIGTERM".
    "uvicorn-sansio": Behaviour(exit_code=-signal.SIGTERM),
    "uvicorn-websockets": Behaviour(exit_code=-signal.SIGTERM),
    "uvicorn-wsproto": Behaviour(exit_code=-signal.SIGTERM),
    # hypercorn waits graceful_timeout (3 s) for connections to end, then cancels the app's
    # connection task and closes with 1011; lifespan.shutdown comes after, too late for the
    # app's 1001. It logs a CancelledError traceback from its own TCP server while doing so
    # (it does the same under a ten-line raw ASGI app).
    "hypercorn": Behaviour(
        shutdown_close=1011,
        shutdown_close_within=(2.5, TIMEOUT),
        shutdown_trace=("· cancelled", "← lifespan.shutdown"),
        shutdown_traceback="hypercorn/asyncio/tcp_server.py",
    ),
    # daphne (autobahn) takes only 1000 or 3000-4999 from an app and drops the reason: the app
    # falls back to 1000 (Session._close_normally). It has no lifespan, and on SIGTERM it drops
    # every connection without a close frame and without telling the app.
    # It also sends nothing for an empty message: it tests `if message.get("bytes")`, and it
    # does not offer the denial-response extension.
    "daphne": Behaviour(
        keeps_close_codes=False,
        sends_empty_messages=False,
        denial_responses=False,
        shutdown_close=None,
        shutdown_trace=None,
    ),
    # granian drops every WebSocket without a close frame and sends lifespan.shutdown; the app
    # receives websocket.disconnect 1005 before or after it. If after, the app's 1001 goes
    # nowhere and waits CLOSE_TIMEOUT (1 s) for a send that does not return.
    # Its denial responses also carry the 101's Connection: upgrade, Upgrade and
    # Sec-WebSocket-Accept headers (clients go by the status and ignore them).
    "granian": Behaviour(
        shutdown_close=None, shutdown_trace=("← lifespan.shutdown", "← websocket.disconnect code=1005")
    ),
}
assert BEHAVIOUR.keys() == SERVERS.keys(), "every server in the matrix needs a row here"

_STARTED = re.compile(r"#(\d+) \+\d+\.\d+s · (?:websocket|http) ")
_ENDED = re.compile(r"#(\d+) \+\d+\.\d+s · (?:end|cancelled|the app raised)")


def open_connections(log: str) -> set[str]:
    """Connections the trace shows as started and not yet ended."""
    return set(_STARTED.findall(log)) - set(_ENDED.findall(log))


def trace_lines(log: str) -> list[str]:
    """The trace's lines without the connection number, the time, or the server's log prefix."""
    return [match.group(1) for match in re.finditer(r"#\d+ \+\d+\.\d+s (.*)", log)]


def missing(expected: tuple[str, ...], lines: list[str]) -> list[str]:
    """The ``expected`` line beginnings that begin none of ``lines``."""
    return [prefix for prefix in expected if not any(line.startswith(prefix) for line in lines)]


@pytest.fixture(scope="module", params=list(SERVERS))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def shared_server(name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One process per server for the whole module; the shutdown test is the one that ends it."""
    port = free_port()
    shared = Server(SERVERS[name](port), port, tmp_path_factory.mktemp(name) / "server.log", env=TRACE)
    yield shared
    shared.stop()
    assert not found(APP_FAILURES, shared.output()), shared.output()


@pytest.fixture
def server(shared_server: Server) -> Server:
    """The shared server, started by the first test that needs it (again, if the shutdown ran)."""
    return shared_server if shared_server.process is not None else shared_server.start()


def found(markers: tuple[str, ...], text: str) -> list[str]:
    return [marker for marker in markers if marker in text]


# --- the behaviours -------------------------------------------------------------------------------


class TestBehaviours:
    @pytest.fixture(autouse=True)
    def app_never_fails(self, server: Server) -> Iterator[None]:
        """After each test, once every connection it opened has ended: nothing failed in the app."""
        before = len(server.output())
        yield
        asyncio.run(wait_until(lambda: not open_connections(server.output())))
        written = server.output()[before:]
        assert not found((*APP_FAILURES, "Traceback"), written), written

    async def test_echo_text(self, server: Server) -> None:
        async with connect(f"{server.url}/ws", open_timeout=TIMEOUT) as ws:
            await ws.send("hello")
            assert await recv(ws) == "Message text was: hello"

    async def test_echo_binary_frames(self, server: Server) -> None:
        async with connect(f"{server.url}/ws", open_timeout=TIMEOUT) as ws:
            await ws.send(b"\x00\xff\x01")
            assert await recv(ws) == b"\x00\xff\x01"

    async def test_an_empty_binary_frame(self, name: str, server: Server) -> None:
        async with connect(f"{server.url}/ws", open_timeout=TIMEOUT) as ws:
            await ws.send(b"")
            await ws.send(b"after")
            echoes = [b"", b"after"] if BEHAVIOUR[name].sends_empty_messages else [b"after"]
            assert await recv_many(ws, len(echoes)) == echoes

    @pytest.mark.parametrize(
        ("path", "status", "reason"),
        [
            ("/items/foo/ws", 403, "missing credentials: send a session cookie, a bearer subprotocol or a token"),
            ("/items/foo/ws?token=t&q=x", 403, "invalid q: expected an integer"),
            ("/ws/abc", 403, "invalid client_id: expected an integer"),  # 1008 before accept
            ("/nope", 404, "not found"),  # 1000 "not found" before accept
        ],
    )
    async def test_a_refusal_before_accept_names_its_reason_where_the_server_lets_it(
        self, name: str, server: Server, path: str, status: int, reason: str
    ) -> None:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{server.url}{path}", open_timeout=TIMEOUT):
                pass
        response = refused.value.response
        seen = (response.status_code, bytes(response.body or b""))
        if BEHAVIOUR[name].denial_responses:
            assert seen == (status, f"{reason}\n".encode())
        else:
            # ASGI: a websocket.close before accept means the server "must close the connection
            # with a HTTP 403 error code". Whatever the close code, the client sees 403 and no reason.
            assert seen == (403, b"")

    async def test_the_bearer_subprotocol_is_accepted(self, server: Server) -> None:
        async with connect(
            f"{server.url}/items/foo/ws",
            subprotocols=["bearer", "tok"],  # type: ignore[list-item]  # websockets types this as Subprotocol
            open_timeout=TIMEOUT,
        ) as ws:
            assert ws.subprotocol == "bearer"
            await ws.send("hi")
            assert await recv(ws) == "Session cookie or query token value is: tok"

    @pytest.mark.parametrize(
        ("path", "message", "code", "reason"),
        [
            ("/ws/1", b"\x01", 1003, "binary messages are not supported here: send text"),
            ("/ws", "x" * 70_000, 1009, "message too big: the limit is 65536 bytes"),
        ],
        ids=["binary-on-chat", "too-big"],
    )
    async def test_close_codes_seen_by_the_client(
        self, name: str, server: Server, path: str, message: str | bytes, code: int, reason: str
    ) -> None:
        async with connect(f"{server.url}{path}", open_timeout=TIMEOUT, max_size=None) as ws:
            await ws.send(message)
            seen = await closed(ws)
        assert seen == ((code, reason) if BEHAVIOUR[name].keeps_close_codes else (1000, ""))

    async def test_a_chat_with_two_clients(self, server: Server) -> None:
        async with (
            connect(f"{server.url}/ws/1", open_timeout=TIMEOUT) as first,
            connect(f"{server.url}/ws/2", open_timeout=TIMEOUT) as second,
        ):
            await first.send("hello")
            assert await recv_many(first, 2) == ["You wrote: hello", "Client #1 says: hello"]
            assert await recv(second) == "Client #1 says: hello"
            await second.close()
            assert await recv(first) == "Client #2 left the chat"


# --- shutdown: the last test of each server, since it ends the process ---------------------------


async def test_shutdown_with_a_client_connected(name: str, server: Server) -> None:
    expected = BEHAVIOUR[name]
    process = server.process
    assert process is not None
    try:
        async with connect(f"{server.url}/ws/1", open_timeout=TIMEOUT) as ws:
            await ws.send("hi")
            await recv_many(ws, 2)
            before = len(server.output())
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code, _ = await closed(ws)
            closed_after = time.monotonic() - signalled
        returncode = await asyncio.to_thread(process.wait, TIMEOUT)
    finally:
        server.stop()
    after = server.output()[before:]
    low, high = expected.shutdown_close_within
    assert (code, low <= closed_after <= high) == (expected.shutdown_close, True), (closed_after, after)
    assert returncode == expected.exit_code
    told = trace_lines(after)
    assert (told == []) if expected.shutdown_trace is None else not missing(expected.shutdown_trace, told), after
    assert not found(APP_FAILURES, after), after
    tracebacks = after.split("Traceback")[1:]
    if expected.shutdown_traceback is None:
        assert not tracebacks, after
    else:
        assert tracebacks, "the server no longer logs its shutdown traceback: update BEHAVIOUR and docs/servers.md"
        assert all(expected.shutdown_traceback in text and "asgi_chat" not in text for text in tracebacks), after
