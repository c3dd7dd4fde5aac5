"""Test an ASGI app without a server, over asgiref's ``ApplicationCommunicator``.

``ApplicationCommunicator`` runs an app as a server would, but the scope is yours to write, and a
scope without a key the app reads fails far from the cause (``KeyError: 'headers'``). Here:
:func:`websocket_scope`, :func:`http_scope` and :func:`lifespan_scope` give every key of ASGI's
specs/www.rst (``state`` aside: no lifespan shares one) as a local client of ``testserver:80``
would see them; :class:`WebSocketCommunicator` is the client's side of one WebSocket, in the
spirit of channels' ``WebsocketCommunicator``; :class:`LifespanCommunicator` is the server's
start-up and shutdown. Every wait is bounded, and a timeout says what it waited for. asgiref and
the standard library only: this tests any ASGI 3 app. See docs/testing.md.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any, Self, cast
from urllib.parse import quote

from asgiref import typing as asgi
from asgiref.testing import ApplicationCommunicator

TIMEOUT = 1.0  # seconds any one expected message may take, as in asgiref and channels
CLIENT = ("127.0.0.1", 50000)
SERVER = ("testserver", 80)
SPEC_VERSION = "2.3"  # not 2.4: asgiref's communicator never raises on a send after the close

Headers = Iterable[tuple[bytes, bytes]]
Handshake = asgi.WebSocketAcceptEvent | asgi.WebSocketCloseEvent | asgi.WebSocketResponseStartEvent


class UnexpectedMessage(AssertionError):
    """The app sent ``message`` where the test expected ``expected``."""

    def __init__(self, expected: str, message: object) -> None:
        super().__init__(f"expected {expected}, got {message!r}")
        self.expected = expected
        self.message = message


class LifespanFailed(RuntimeError):
    """The app answered ``lifespan.startup`` or ``lifespan.shutdown`` with ``*.failed``."""

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(f"lifespan {phase} failed: {message}")
        self.phase = phase
        self.message = message


# --- scopes -------------------------------------------------------------------------------------


def websocket_scope(
    path: str = "/",
    *,
    query_string: bytes = b"",
    headers: Headers = (),
    subprotocols: Sequence[str] = (),
    client: tuple[str, int] | None = CLIENT,
    scheme: str = "ws",
    extensions: Mapping[str, dict[object, object]] | None = None,
    spec_version: str = SPEC_VERSION,
) -> asgi.WebSocketScope:
    """A ``websocket`` scope with every key. ``path`` may carry the query: ``"/ws?token=abc"``.
    ``host: testserver`` comes first unless ``headers`` has a Host: every HTTP/1.1 request has one,
    and same-origin checks compare ``Origin`` with it."""
    path, raw_path, query_string = _target(path, query_string)
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "scheme": scheme,
        "server": SERVER,
        "client": client,
        "root_path": "",
        "path": path,
        "raw_path": raw_path,
        "query_string": query_string,
        "headers": _with_host(headers),
        "subprotocols": list(subprotocols),
        "extensions": dict(extensions or {}),
    }


def http_scope(
    path: str = "/",
    *,
    method: str = "GET",
    query_string: bytes = b"",
    headers: Headers = (),
) -> asgi.HTTPScope:
    """An ``http`` scope with every key; the arguments as in :func:`websocket_scope`."""
    path, raw_path, query_string = _target(path, query_string)
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": SPEC_VERSION},
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": "http",
        "server": SERVER,
        "client": CLIENT,
        "root_path": "",
        "path": path,
        "raw_path": raw_path,
        "query_string": query_string,
        "headers": _with_host(headers),
        "extensions": {},
    }


def lifespan_scope() -> asgi.LifespanScope:
    return {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}


def _target(path: str, query_string: bytes) -> tuple[str, bytes, bytes]:
    """``path``, ``raw_path`` and ``query_string`` for a target such as ``/p`` or ``/p?q``: ASGI's
    path is percent-decoded, raw_path and the query are percent-encoded as a browser sends them."""
    path, mark, query = path.partition("?")
    if mark and query_string:
        raise ValueError("give the query string in the path or as query_string, not both")
    raw = quote(path, safe="/:@!$&'()*+,;=").encode("ascii")
    return path, raw, (quote(query, safe="=&+%;/?:@!$'()*,").encode("ascii") if mark else query_string)


def _with_host(headers: Headers) -> list[tuple[bytes, bytes]]:
    given = list(headers)
    has_host = any(name.lower() == b"host" for name, _ in given)
    return given if has_host else [(b"host", SERVER[0].encode("ascii")), *given]


# --- WebSocket ----------------------------------------------------------------------------------


class WebSocketCommunicator:
    """The client's side of one WebSocket to ``app`` (``path``, or a whole scope).

    ``async with`` makes sure the app ends: on the way out it is told the client left, or, if the
    test failed, cancelled. Each wait lasts at most ``timeout`` seconds (or the call's ``within``),
    then raises TimeoutError (asgiref cancels the app); a message of the wrong kind raises
    :class:`UnexpectedMessage`; an app that crashed raises its exception from the next call.
    """

    def __init__(
        self,
        app: asgi.ASGI3Application,
        path: str | asgi.WebSocketScope = "/",
        *,
        headers: Headers = (),
        subprotocols: Sequence[str] = (),
        client: tuple[str, int] | None = CLIENT,
        timeout: float = TIMEOUT,
    ) -> None:
        if isinstance(path, str):
            path = websocket_scope(path, headers=headers, subprotocols=subprotocols, client=client)
        self.scope = path
        self.timeout = timeout
        self.communicator = ApplicationCommunicator(app, self.scope)
        self._started = False  # asgiref starts the app with the first event it hands over

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, _: object) -> None:
        if error is not None:
            self.communicator.stop(exceptions=False)  # cancel the app; the test's own failure stays in view
        elif self._started:  # the client leaves, if it has not; then the app must return, or raise
            await (self.wait() if self.communicator.future.done() else self.disconnect())

    async def connect(self, within: float | None = None) -> Handshake:
        """``websocket.connect``; the answer: accept, close, or the Denial extension's response."""
        await self.send_input({"type": "websocket.connect"})
        answer = await self.receive_output(within)
        if answer["type"] not in {"websocket.accept", "websocket.close", "websocket.http.response.start"}:
            raise UnexpectedMessage("websocket.accept or websocket.close", answer)
        return answer

    async def send_input(self, message: asgi.ASGIReceiveEvent) -> None:
        """Hand the app any event, well-formed or not."""
        self._started = True
        await self.communicator.send_input(message)

    async def send_to(self, text: str | None = None, data: bytes | None = None) -> None:
        """A text (``text``) or binary (``data``) message from the client."""
        if (text is None) == (data is None):
            raise ValueError("send_to takes exactly one of text and data")
        await self.send_input({"type": "websocket.receive", "text": text, "bytes": data})

    async def send_json_to(self, value: object) -> None:
        await self.send_to(json.dumps(value))

    async def receive_output(self, within: float | None = None) -> asgi.ASGISendEvent:
        """The app's next message, whatever its type."""
        future, path = self.communicator.future, self.scope["path"]
        if self._started and future.done() and self.communicator.output_queue.empty():
            future.result()  # the app's exception, if it raised one
            raise UnexpectedMessage("a message", f"nothing: the app for {path} has returned")
        within = self.timeout if within is None else within
        message = await _bounded(self.communicator.receive_output(within), within, f"the app for {path} sent nothing")
        return cast(asgi.ASGISendEvent, message)

    async def receive_from(self, within: float | None = None) -> str | bytes:
        """The next data message: ``str`` for text, ``bytes`` for binary."""
        message = await self.receive_output(within)
        if message["type"] == "websocket.send":
            text, data = message.get("text"), message.get("bytes")
            if (text is None) != (data is None):  # the spec: exactly one of them is not None
                return text if text is not None else cast(bytes, data)
        raise UnexpectedMessage("websocket.send with text or bytes", message)

    async def receive_json_from(self, within: float | None = None) -> Any:
        """The next message, a text message, parsed as JSON."""
        text = await self.receive_from(within)
        if not isinstance(text, str):
            raise UnexpectedMessage("a text message of JSON", text)
        return json.loads(text)

    async def receive_close(self, within: float | None = None) -> tuple[int, str]:
        """The next message, a ``websocket.close``, as ``(code, reason)``."""
        message = await self.receive_output(within)
        if message["type"] == "websocket.close":
            return message.get("code", 1000), message.get("reason") or ""
        raise UnexpectedMessage("websocket.close", message)

    async def receive_nothing(self, within: float = 0.1, interval: float = 0.01) -> bool:
        """True if the app sends nothing for ``within`` seconds; leaves what it sent unread."""
        self._started = True
        return bool(await self.communicator.receive_nothing(within, interval))

    async def disconnect(self, code: int = 1000, reason: str = "", within: float | None = None) -> None:
        """The client has gone (``websocket.disconnect``); wait for the app to return."""
        await self.send_input({"type": "websocket.disconnect", "code": code, "reason": reason})
        await self.wait(within)

    async def wait(self, within: float | None = None) -> None:
        """Wait for the app to return; raises what it raised."""
        within = self.timeout if within is None else within
        await _returned(self.communicator, within, f"the app for {self.scope['path']}")


# --- lifespan -----------------------------------------------------------------------------------


class LifespanCommunicator:
    """The server's side of the lifespan scope. ``async with``: started up for the block, shut down
    after it (even when it raises); a ``*.failed`` answer raises :class:`LifespanFailed`."""

    def __init__(self, app: asgi.ASGI3Application, *, timeout: float = TIMEOUT) -> None:
        self.scope = lifespan_scope()
        self.timeout = timeout
        self.communicator = ApplicationCommunicator(app, self.scope)

    async def __aenter__(self) -> Self:
        started = await self.startup()
        if started["type"] == "lifespan.startup.failed":
            raise LifespanFailed("startup", started["message"])
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, _: object) -> None:
        stopped = await self.shutdown()
        if stopped["type"] == "lifespan.shutdown.failed" and error is None:
            raise LifespanFailed("shutdown", stopped["message"])

    async def startup(self) -> asgi.ASGISendEvent:
        """``lifespan.startup``; the app's answer, ``lifespan.startup.complete`` or ``.failed``."""
        return await self._ask({"type": "lifespan.startup"})

    async def shutdown(self) -> asgi.ASGISendEvent:
        """``lifespan.shutdown``; the app's answer (``.complete`` or ``.failed``) once it has returned."""
        answer = await self._ask({"type": "lifespan.shutdown"})
        await _returned(self.communicator, self.timeout, "the app, after lifespan.shutdown,")
        return answer

    async def _ask(self, event: asgi.LifespanStartupEvent | asgi.LifespanShutdownEvent) -> asgi.ASGISendEvent:
        await self.communicator.send_input(event)
        within, failure = self.timeout, f"the app did not answer {event['type']}"
        answer: asgi.ASGISendEvent = await _bounded(self.communicator.receive_output(within), within, failure)
        if answer["type"] not in {f"{event['type']}.complete", f"{event['type']}.failed"}:
            raise UnexpectedMessage(f"{event['type']}.complete or .failed", answer)
        return answer


async def _returned(communicator: ApplicationCommunicator, within: float, who: str) -> None:
    """Wait for the app to return; raise what it raised. Not asgiref's ``wait``: at its timeout it
    cancels the app without a word, and here that fails the test."""
    future = communicator.future
    await asyncio.wait([future], timeout=within)
    if not future.done():
        communicator.stop(exceptions=False)
        raise TimeoutError(f"{who} did not return within {within:g} s; it has been cancelled")
    if not future.cancelled():
        future.result()


async def _bounded(waiting: Awaitable[Any], within: float, failure: str) -> Any:
    """Await one of asgiref's bounded waits, its TimeoutError made to say what did not happen."""
    try:
        return await waiting
    except TimeoutError:
        raise TimeoutError(f"{failure} within {within:g} s; asgiref has cancelled it") from None
