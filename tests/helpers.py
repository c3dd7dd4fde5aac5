"""Helpers shared by the test levels: the one fake server, ASGI communicators, real servers on free ports.

One timeout unit for the whole suite (``TIMEOUT``): every wait is bounded by it, none is a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

from asgiref.testing import ApplicationCommunicator
from asgiref.typing import ASGI3Application, ASGIReceiveEvent, ASGISendEvent, WebSocketScope
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from asgi_chat import testing

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 5.0  # seconds: the longest any single expected event may take
QUIET = 0.1  # seconds of silence that count as "nothing was sent" (WebSocketClient.nothing)
# The scope extensions of a server with ASGI's "WebSocket Denial Response" (uvicorn, hypercorn,
# granian): the app may answer a handshake with an HTTP response of its own instead of accepting.
DENIAL: dict[str, dict[object, object]] = {"websocket.http.response": {}}


# --- ASGI level --------------------------------------------------------------------------------


def websocket_scope(
    path: str,
    query_string: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
    subprotocols: Sequence[str] = (),
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    extensions: dict[str, dict[object, object]] | None = None,
) -> WebSocketScope:
    """:func:`asgi_chat.testing.websocket_scope`, the query string also positional as the suite
    passes it, and ASGI 2.4: unlike asgiref's communicator, WebSocketClient's ``"raise"`` mode
    fails a send to a peer that is gone."""
    return testing.websocket_scope(
        path,
        query_string=query_string,
        headers=headers,
        subprotocols=subprotocols,
        client=client,
        extensions=extensions,
        spec_version="2.4",
    )


SendMode = Literal["ok", "block", "gate", "raise"]


class WebSocketClient:
    """The server's side of one WebSocket connection over ASGI: the suite's one fake server.

    The app under test gets :meth:`asgi_receive` and :meth:`asgi_send` as its ``receive`` and
    ``send``: given an ``app``, it runs at once as :attr:`task`, on a scope from
    :func:`websocket_scope`; a unit test hands them to a ``Session`` itself. The test plays the
    client, in the spirit of channels' WebsocketCommunicator: ``connect``, ``send`` and
    ``disconnect`` queue what the app receives (``feed`` any event, ``leave`` a disconnect
    without waiting for the app), and ``output``, ``receive`` and ``receive_close`` read what it
    sent, all of which :attr:`sent` records in order. Every wait is bounded by ``TIMEOUT``.

    ``script`` is what the app receives first; with ``then_gone``, a receive with nothing left
    to hand over returns a disconnect (1006), as a real server does once the peer has gone.

    What the app's sends do, for the slow-consumer tests, is :attr:`mode`: ``"ok"`` delivers at
    once, ``"block"`` never returns (a client that stopped reading), ``"gate"`` waits until
    :attr:`room` is set (a full buffer that drains later), ``"raise"`` raises :attr:`error`
    (OSError by default: a client that is gone, as ASGI 2.4 servers report it). The mode applies
    to the message types in ``affects``, data sends by default, so that a close still comes
    through; :attr:`data_sends` counts the ``websocket.send`` calls that reached this server,
    however they ended.
    """

    def __init__(
        self,
        app: ASGI3Application | None = None,
        path: str = "/ws",
        *,
        script: Iterable[Mapping[str, Any]] = (),
        then_gone: bool = False,
        mode: SendMode = "ok",
        error: BaseException | None = None,
        affects: Collection[str] = ("websocket.send",),
        **scope: Any,
    ) -> None:
        self.scope = websocket_scope(path, **scope)
        self.then_gone = then_gone
        self.mode: SendMode = mode
        self.error = error if error is not None else OSError("peer gone")
        self.affects = frozenset(affects)
        self.room = asyncio.Event()  # for mode "gate"
        self.sent: list[ASGISendEvent] = []
        self.data_sends = 0
        self._inbox: asyncio.Queue[ASGIReceiveEvent] = asyncio.Queue()
        self._unread: deque[ASGISendEvent] = deque()
        self._changed = asyncio.Event()  # set when the app sends something, or ends
        self.task: asyncio.Future[None] | None = None
        for event in script:
            self.feed(event)
        if app is not None:
            self.task = asyncio.ensure_future(app(self.scope, self.asgi_receive, self.asgi_send))
            self.task.add_done_callback(lambda _: self._changed.set())

    # --- the server's receive and send, as the app sees them ------------------------------------

    async def asgi_receive(self) -> ASGIReceiveEvent:
        if self.then_gone and self._inbox.empty():
            return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        return await self._inbox.get()

    async def asgi_send(self, message: ASGISendEvent) -> None:
        if message["type"] == "websocket.send":
            self.data_sends += 1
        if message["type"] in self.affects:
            if self.mode == "block":
                await asyncio.Event().wait()  # never set: this send never returns
            elif self.mode == "gate":
                await self.room.wait()
            elif self.mode == "raise":
                raise self.error
        self.sent.append(message)
        self._unread.append(message)
        self._changed.set()

    # --- the client's side ------------------------------------------------------------------------

    def feed(self, event: Mapping[str, Any]) -> None:
        """An event for the app's next ``receive``, well-formed or not: the app must cope with either."""
        self._check_app()
        self._inbox.put_nowait(cast(ASGIReceiveEvent, event))

    async def connect(self) -> dict[str, Any]:
        """Send ``websocket.connect``; return the app's answer (an accept, a close, or a response's start)."""
        self.feed({"type": "websocket.connect"})
        return await self.output()

    async def accept(self) -> dict[str, Any]:
        answer = await self.connect()
        assert answer["type"] == "websocket.accept", answer
        return answer

    async def denied(self) -> tuple[int, dict[bytes, bytes], bytes]:
        """Send ``websocket.connect``; return the app's HTTP response in its place (the scope needs
        ``extensions=DENIAL``) as (status, headers, body), once the app has finished."""
        start = await self.connect()
        assert start["type"] == "websocket.http.response.start", start
        body = await self.output()
        assert body["type"] == "websocket.http.response.body", body
        assert not body.get("more_body", False), body  # the app sends its body in one piece
        await self.finished()
        return start["status"], dict(start["headers"]), body["body"]

    async def send(self, text: str | None = None, data: bytes | None = None) -> None:
        self.feed({"type": "websocket.receive", "text": text, "bytes": data})

    def leave(self, code: int = 1000) -> None:
        """The peer has gone: the app's next receive is a disconnect. Does not wait for the app."""
        self.feed({"type": "websocket.disconnect", "code": code, "reason": ""})

    async def disconnect(self, code: int = 1000) -> None:
        """Tell the app the peer has gone, then wait for the app to finish."""
        self.leave(code)
        await self.finished()

    async def output(self) -> dict[str, Any]:
        """The app's next message, whatever its type; raises what the app raised, if it crashed."""
        if not await self._arrival(TIMEOUT, until_the_app_ends=True):
            self._check_app()
            if self.task is not None and self.task.done():
                raise AssertionError("the app returned without sending anything more")
            raise TimeoutError(f"the app sent nothing within {TIMEOUT} s")
        return dict(self._unread.popleft())

    async def receive(self) -> str:
        """The next text message; fails on anything else."""
        message = await self.output()
        assert message["type"] == "websocket.send", message
        assert message.get("text") is not None, message
        return str(message["text"])

    async def receive_many(self, count: int) -> list[str]:
        return [await self.receive() for _ in range(count)]

    async def receive_close(self) -> tuple[int, str]:
        message = await self.output()
        assert message["type"] == "websocket.close", message
        return message.get("code", 1000), message.get("reason") or ""

    async def nothing(self) -> bool:
        """True when the app sends nothing (more) for QUIET seconds; leaves what it sent unread.

        A silence window: only for where there is no event to wait on. Where there is, use
        :meth:`next_is` (a line sent now is the very next frame) or :meth:`ended_quietly`.
        """
        return not await self._arrival(QUIET, until_the_app_ends=False)

    async def next_is(self, expected: str, sender: WebSocketClient | None = None, text: str = "sync") -> None:
        """Nothing else is on its way: ``sender`` (default: this client) sends ``text`` now, and the
        very next frame this client gets is ``expected``. An event to wait on, not a silence."""
        await (sender or self).send(text)
        assert await self.receive() == expected

    async def ended_quietly(self, code: int = 1000) -> None:
        """The peer goes (``code``), the app returns, and it sent nothing this test has not read:
        nothing more can come."""
        await self.disconnect(code)
        assert not self._unread, list(self._unread)

    async def finished(self) -> None:
        """Wait (bounded) for the app's coroutine to return, and raise what it raised."""
        assert self.task is not None, "no app runs on this connection"
        try:
            async with asyncio.timeout(TIMEOUT):
                await self.task  # on the timeout, this cancels the app
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the test itself is being cancelled
            raise AssertionError("the app ended cancelled") from None

    async def _arrival(self, within: float, *, until_the_app_ends: bool) -> bool:
        """Wait up to ``within`` seconds for a message not yet read; whether there is one."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while not self._unread:
                    if until_the_app_ends and self.task is not None and self.task.done():
                        break
                    self._changed.clear()
                    await self._changed.wait()
        return bool(self._unread)

    def _check_app(self) -> None:
        """Raise what the app raised, if it has ended by an exception (or a cancellation)."""
        if self.task is not None and self.task.done():
            if self.task.cancelled():
                raise AssertionError("the app ended cancelled")
            self.task.result()


async def accepted(app: ASGI3Application, *paths: str) -> list[WebSocketClient]:
    """One client per path, each connected and accepted, in order."""
    clients = [WebSocketClient(app, path) for path in paths]
    for client in clients:
        await client.accept()
    return clients


async def http_get(
    app: ASGI3Application, path: str, method: str = "GET", headers: Iterable[tuple[bytes, bytes]] = ()
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One HTTP request through the app: (status, headers, body)."""
    communicator = ApplicationCommunicator(app, testing.http_scope(path, method=method, headers=headers))
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(TIMEOUT)
    body = await communicator.receive_output(TIMEOUT)
    await communicator.wait(TIMEOUT)
    return start["status"], dict(start["headers"]), body["body"]


class LifespanClient(testing.LifespanCommunicator):
    """The server's side of a lifespan scope: ``startup()``, ``shutdown()``, each returning the
    answer (asgi_chat.testing's, with the suite's TIMEOUT)."""

    def __init__(self, app: ASGI3Application) -> None:
        super().__init__(app, timeout=TIMEOUT)


async def lifespan(app: ASGI3Application, *events: str) -> list[dict[str, Any]]:
    """Drive one lifespan scope through ``events`` ("startup", "shutdown"); return the answers."""
    client = LifespanClient(app)
    steps = {"startup": client.startup, "shutdown": client.shutdown}
    return [dict(await steps[event]()) for event in events]


# --- real servers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 15.0) -> None:
    """Poll until 127.0.0.1:port accepts a TCP connection (bounded), or the process has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)  # polling a port that is not open yet: there is no event to wait on
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def uvicorn_command(port: int, ws: str = "websockets-sansio", app: str = "asgi_chat:app") -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--ws", ws]


# Server name -> command for 127.0.0.1:port. uvicorn's three WebSocket implementations are the
# core issue's matrix; the server-matrix tests add the other ASGI servers here.
SERVERS: dict[str, Callable[[int], list[str]]] = {
    "uvicorn-sansio": lambda port: uvicorn_command(port, "websockets-sansio"),
    "uvicorn-websockets": lambda port: uvicorn_command(port, "websockets"),
    "uvicorn-wsproto": lambda port: uvicorn_command(port, "wsproto"),
    "hypercorn": lambda port: [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "asgi_chat:app"],
    # daphne has no lifespan: the hub starts on the first chat join instead (Hub.start).
    "daphne": lambda port: [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "asgi_chat:app"],
    "granian": lambda port: [
        *(sys.executable, "-m", "granian", "--interface", "asgi"),
        *("--host", "127.0.0.1", "--port", str(port), "asgi_chat:app"),
    ],
}
UVICORN_SERVERS = ("uvicorn-sansio", "uvicorn-websockets", "uvicorn-wsproto")


class Server:
    """A real server process on 127.0.0.1; its output goes to a log file the test can read."""

    def __init__(
        self,
        command: Sequence[str],
        port: int,
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.command = list(command)
        self.port = port
        self.log = log
        self.cwd = cwd
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd
            )
        wait_for_port(self.port, self.process)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the server (SIGTERM: a graceful shutdown) and return its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=TIMEOUT * 2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=TIMEOUT)
        code = self.process.returncode
        self.process = None
        return code

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(command: Sequence[str], port: int, log: Path, env: Mapping[str, str] | None = None) -> Iterator[Server]:
    with Server(command, port, log, env) as server:
        yield server


# --- a real client ---------------------------------------------------------------------------------


async def recv(ws: ClientConnection) -> str | bytes:
    """The next message from a real ``websockets`` connection, bounded by TIMEOUT."""
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def recv_many(ws: ClientConnection, count: int) -> list[str | bytes]:
    return [await recv(ws) for _ in range(count)]


async def closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Wait for the server's close; return (code, reason) as the client saw them (None: no frame)."""
    try:
        message = await recv(ws)
    except ConnectionClosed as closing:
        received = closing.rcvd
        return (received.code, received.reason) if received else (None, None)
    raise AssertionError(f"expected a close, got a message: {message!r}")


async def wait_until(predicate: Callable[[], bool], within: float = TIMEOUT) -> None:
    """Wait (bounded) until ``predicate()`` is true, for state that has no event to await."""
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)
