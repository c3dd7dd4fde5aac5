"""Write docs/PROTOCOL.md from real runs of the app, so the document cannot drift from the code.

    python -m docs.generate_protocol           # rewrite docs/PROTOCOL.md (or: make protocol)
    python -m docs.generate_protocol --check   # exit 1 with a diff when the file is out of date

Each scenario runs twice. Once through the trace middleware (asgi_chat/ops/trace.py) with asgiref's
ApplicationCommunicator standing in for the server: that shows the ASGI messages, and in an order
that is the same on every run, since nothing but the script decides what happens next. Once
against a real uvicorn (websockets-sansio) on a free port with a real ``websockets`` client: that
shows what the client sees on the wire. Times are left out of the traces; they differ every run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import re
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import uvicorn
from asgiref.typing import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asgi_chat import Settings, create_app
from asgi_chat.composition import identity_authority
from asgi_chat.endpoints import protocol
from asgi_chat.endpoints.identity import Authority
from asgi_chat.engine.stores.memory import MemoryStore
from asgi_chat.identity import Guests, Identity
from asgi_chat.identity.guests import guest_identity
from asgi_chat.ops.trace import Describer, Trace
from docs.generated import write_or_check
from tests.helpers import DENIAL, TIMEOUT, LifespanClient, WebSocketClient, free_port, wait_until

DOC = Path(__file__).with_name("PROTOCOL.md")
WIDTH = 100  # the paragraphs' line length
TOKEN = "s3cret-token"  # the credential every scenario uses; the trace prints it as [redacted]
_TIME = re.compile(r"^(#\d+) \+\d+\.\d{3}s ", re.MULTILINE)
# The wire lines quote texts the way the trace does, but as the client sees them: unredacted.
_SHOW = Describer(str, 200)


# --- the ASGI side: the app through the trace, the server played by the script ---------------------


class Stage:
    """One app behind the trace; every connection opened here is numbered in one trace."""

    def __init__(self, settings: Settings) -> None:
        self.lines: list[str] = []
        self.app = create_app(
            replace(settings, trace=False), store=predictable_store(settings), authority=predictable_authority(settings)
        )
        # JSON frames are shown whole: cut at the trace's usual 60 characters, they would say little.
        self.traced = Trace(self.app, write=self.lines.append, limit=200)

    def client(self, path: str, *, stalled: bool = False, **scope: Any) -> WebSocketClient:
        """A client; ``stalled`` is one that stopped reading: the server's every data send blocks."""
        return WebSocketClient(_stalled(self.traced) if stalled else self.traced, path, **scope)

    def trace(self) -> str:
        return _TIME.sub(r"\1 ", "\n".join(self.lines))


def _stalled(app: ASGI3Application) -> ASGI3Application:
    async def stalled_app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        async def blocked_send(message: ASGISendEvent) -> None:
            if message["type"] == "websocket.send":
                await asyncio.Event().wait()  # a full TCP buffer: this send never completes
            await send(message)

        await app(scope, receive, blocked_send)

    return stalled_app


class PredictableGuests(Guests):
    """Guests numbered in turn, their tokens signed with a fixed secret at a fixed time."""

    def __init__(self) -> None:
        super().__init__(b"the docs' own secret, so that every run reads the same", clock=lambda: 1_796_256_000)
        self._numbers = itertools.count(1)

    def new(self, name: str) -> tuple[Identity, str]:
        identity = guest_identity(f"guest:{next(self._numbers):016d}", name)
        return identity, self.issue(identity.uid)


def predictable_authority(settings: Settings) -> Authority:
    """Who is speaking, as the settings say, but with guests whose uids and tokens never vary."""
    authority = identity_authority(replace(settings, secret="the docs' own secret, 32 bytes or more"))
    authority.guests = PredictableGuests()
    return authority


def predictable_store(settings: Settings) -> MemoryStore:
    """The memory store with a fixed clock and numbered epochs, so that every run reads the same."""
    epochs = (f"epoch{number:011d}" for number in itertools.count(1))
    return MemoryStore(settings, wall_ms=lambda: 1_796_256_000_000, epochs=lambda: next(epochs))


# --- the wire side: a real uvicorn and a real client ------------------------------------------------


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[uvicorn.Server]:
    """The app under uvicorn (websockets-sansio) on 127.0.0.1, in this process and event loop."""
    config = uvicorn.Config(
        create_app(settings, store=predictable_store(settings), authority=predictable_authority(settings)),
        host="127.0.0.1",
        port=free_port(),
        ws="websockets-sansio",
        lifespan="on",
        log_config=None,
        log_level="critical",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started)  # uvicorn has no event for this
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, TIMEOUT)


@dataclass
class Wire:
    """What one or more clients do and see, in the order the script does it."""

    server: uvicorn.Server
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.config.port}"

    async def open(self, label: str, path: str, **options: Any) -> Peer | None:
        """Open a WebSocket; None when the server refused the handshake."""
        headers = options.get("additional_headers", {})
        offered = options.get("subprotocols")
        request = f"GET {path}" + "".join(f" {name}: {value}" for name, value in headers.items())
        self.lines.append(f"{label} → {request}" + (f" subprotocols {offered}" if offered else ""))
        try:
            ws = await connect(self.url + path, open_timeout=TIMEOUT, max_size=None, **options)
        except InvalidStatus as refused:
            response = refused.response
            self.lines.append(f"{label} ← HTTP {response.status_code} {response.reason_phrase}: no WebSocket")
            if response.body:
                self.lines.append(f"{label} ← body {_SHOW.text(bytes(response.body).decode())}")
            return None
        chosen = f", subprotocol {ws.subprotocol!r}" if ws.subprotocol else ""
        self.lines.append(f"{label} ← HTTP 101 Switching Protocols{chosen}")
        return Peer(self, label, ws)


@dataclass
class Peer:
    wire: Wire
    label: str
    ws: ClientConnection

    def note(self, arrow: str, text: str) -> None:
        self.wire.lines.append(f"{self.label} {arrow} {text}")

    async def send(self, message: str | bytes) -> None:
        self.note("→", _frame(message))
        await self.ws.send(message)

    async def receive(self, count: int = 1) -> None:
        for _ in range(count):
            self.note("←", _frame(await asyncio.wait_for(self.ws.recv(), TIMEOUT)))

    async def closed(self) -> None:
        """Read until the server closes; note its close frame (or its absence)."""
        try:
            while True:
                self.note("←", _frame(await asyncio.wait_for(self.ws.recv(), TIMEOUT)))
        except ConnectionClosed as closing:
            self.note("←", _close(closing.rcvd.code, closing.rcvd.reason) if closing.rcvd else "no close frame")

    async def close(self, code: int = 1000) -> None:
        self.note("→", _close(code, ""))
        await self.ws.close(code)
        answer = self.ws.protocol.close_rcvd
        self.note("←", _close(answer.code, answer.reason) if answer else "no close frame")


def _frame(message: str | bytes) -> str:
    return f"text {_SHOW.text(message)}" if isinstance(message, str) else f"binary {_SHOW.data(message)}"


def _close(code: int, reason: str) -> str:
    return f"close frame {code}" + (f" {reason!r}" if reason else "")


# --- the scenarios ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    title: str
    text: str
    asgi: Callable[[Stage], Awaitable[None]]
    wire: Callable[[Wire], Awaitable[None]] | None
    settings: Settings = field(default_factory=Settings)
    wire_note: str = ""


async def echo_asgi(stage: Stage) -> None:
    client = stage.client("/ws")
    await client.accept()
    await client.send("hello")
    await client.receive()
    await client.send(data=b"\x00\xff")
    await client.output()
    await client.disconnect(1000)


async def echo_wire(wire: Wire) -> None:
    peer = await wire.open("client", "/ws")
    assert peer is not None
    await peer.send("hello")
    await peer.receive()
    await peer.send(b"\x00\xff")
    await peer.receive()
    await peer.close()


def items_scenario(title: str, text: str, replies: int, path: str, **handshake: Any) -> Scenario:
    """The items endpoint with one way of presenting the credential; ``replies`` per message."""
    scope: dict[str, Any] = {}
    options: dict[str, Any] = {}
    route, _, query = path.partition("?")
    if query:
        scope["query_string"] = query.encode()
    if "cookie" in handshake:
        scope["headers"] = [(b"cookie", handshake["cookie"].encode())]
        options["additional_headers"] = {"Cookie": handshake["cookie"]}
    if "subprotocols" in handshake:
        scope["subprotocols"] = options["subprotocols"] = handshake["subprotocols"]

    async def asgi(stage: Stage) -> None:
        client = stage.client(route, **scope)
        await client.accept()
        await client.send("hi")
        await client.receive_many(replies)
        await client.disconnect(1000)

    async def wire(wire: Wire) -> None:
        peer = await wire.open("client", path, **options)
        assert peer is not None
        await peer.send("hi")
        await peer.receive(replies)
        await peer.close()

    return Scenario(title, text, asgi, wire)


def refusal_scenario(title: str, text: str, path: str, *, without_extension: bool = False) -> Scenario:
    """A handshake refused before accept, on a server with the denial-response extension (as
    uvicorn is) and, ``without_extension``, then on one without it (as daphne is)."""
    route, _, query = path.partition("?")

    async def asgi(stage: Stage) -> None:
        for extensions in (DENIAL, {}) if without_extension else (DENIAL,):
            client = stage.client(route, query_string=query.encode(), extensions=extensions)
            await client.connect()
            await client.finished()

    async def wire(wire: Wire) -> None:
        assert await wire.open("client", path) is None

    return Scenario(title, text, asgi, wire)


async def chat_asgi(stage: Stage) -> None:
    first, second = stage.client("/ws/1"), stage.client("/ws/2")
    await first.accept()
    await second.accept()
    await first.send("hello")
    await first.receive_many(2)
    await second.receive()
    await second.disconnect(1000)
    await first.receive()
    await first.disconnect(1000)


async def chat_wire(wire: Wire) -> None:
    first = await wire.open("client 1", "/ws/1")
    second = await wire.open("client 2", "/ws/2")
    assert first is not None
    assert second is not None
    await first.send("hello")
    await first.receive(2)
    await second.receive()
    await second.close()
    await first.receive()
    await first.close()


def closing_scenario(title: str, text: str, path: str, message: str | bytes) -> Scenario:
    """A message the endpoint will not take, after accept: a close frame with a code and a reason."""

    async def asgi(stage: Stage) -> None:
        client = stage.client(path)
        await client.accept()
        await client.send(*((message, None) if isinstance(message, str) else (None, message)))
        await client.receive_close()
        await client.finished()

    async def wire(wire: Wire) -> None:
        peer = await wire.open("client", path)
        assert peer is not None
        await peer.send(message)
        await peer.closed()

    return Scenario(title, text, asgi, wire)


async def slow_consumer_asgi(stage: Stage) -> None:
    talker, stuck = stage.client("/ws/1"), stage.client("/ws/2", stalled=True)
    await talker.accept()
    await stuck.accept()
    for n in range(1, 5):  # 1 blocks in the stuck client's send, 2 and 3 wait, 4 overflows
        await talker.send(str(n))
        await talker.receive_many(2)
    await stuck.receive_close()
    await stuck.finished()
    await talker.receive()
    await talker.disconnect(1000)


async def lifespan_asgi(stage: Stage) -> None:
    server = LifespanClient(stage.traced)
    await server.startup()
    client = stage.client("/ws/1")
    await client.accept()
    await server.shutdown()
    await client.receive_close()
    await client.disconnect(1001)  # the server's report of the closing handshake


async def lifespan_wire(wire: Wire) -> None:
    peer = await wire.open("client", "/ws/1")
    assert peer is not None
    wire.lines.append("(the server is asked to stop)")
    wire.server.should_exit = True
    await peer.closed()


V1: dict[str, Any] = {"subprotocols": [protocol.SUBPROTOCOL]}


def _json(**frame: object) -> str:
    return json.dumps(frame, separators=(",", ":"))


async def rooms_asgi(stage: Stage) -> None:
    ada, bob = stage.client("/chat/ws", **V1), stage.client("/chat/ws", **V1)
    for client, name in ((ada, "ada"), (bob, "bob")):
        await client.accept()
        await client.send(_json(type="hello", user=name))
        await client.receive()
        await client.send(_json(type="join", room="lobby", id=f"j-{name}"))
        await client.receive()
    await ada.receive()  # bob's presence
    await ada.send(_json(type="say", room="lobby", text="hi bob", id="s1"))
    await ada.receive_many(2)  # the msg, then the ack
    await bob.receive()
    await bob.disconnect(1000)
    await ada.receive()  # bob left
    await ada.disconnect(1000)


async def rooms_wire(wire: Wire) -> None:
    ada = await wire.open("ada", "/chat/ws", **V1)
    bob = await wire.open("bob", "/chat/ws", **V1)
    assert ada is not None
    assert bob is not None
    for peer, name in ((ada, "ada"), (bob, "bob")):
        await peer.send(_json(type="hello", user=name))
        await peer.receive()
        await peer.send(_json(type="join", room="lobby", id=f"j-{name}"))
        await peer.receive()
    await ada.receive()
    await ada.send(_json(type="say", room="lobby", text="hi bob", id="s1"))
    await ada.receive(2)
    await bob.receive()
    await bob.close()
    await ada.receive()
    await ada.close()


async def resume_asgi(stage: Stage) -> None:
    ada = stage.client("/chat/ws", **V1)
    await ada.accept()
    await ada.send(_json(type="hello", user="ada"))
    await ada.send(_json(type="join", room="lobby"))
    await ada.receive_many(2)
    for n in range(1, 4):
        await ada.send(_json(type="say", room="lobby", text=f"line {n}"))
        await ada.receive_many(2)
    bob = stage.client("/chat/ws", **V1)
    await bob.accept()
    await bob.send(_json(type="hello", user="bob"))
    await bob.receive()
    await bob.send(_json(type="join", room="lobby", since={"epoch": "epoch00000000001", "offset": 0}))
    await bob.receive_many(4)  # joined, the gap, lines 2 and 3
    await bob.send(_json(type="leave", room="lobby"))
    await bob.receive()
    await bob.send(_json(type="join", room="lobby", since={"epoch": "from-before-a-restart", "offset": 3}))
    await bob.receive_many(2)  # joined, reset
    await ada.receive_many(2)  # bob's presence: join, leave (the second join is announced too)
    await bob.disconnect(1000)
    await ada.receive_many(1)
    await ada.disconnect(1000)


SCENARIOS = (
    Scenario(
        "Lifespan: start-up, and shutdown with a client connected",
        "Once per process the server reports start-up and shutdown; the app opens its broker at"
        " start-up and, at shutdown, closes every WebSocket still open with 1001 (going away). The"
        " ASGI run shows that 1001. uvicorn never lets it happen: it closes every WebSocket with"
        " 1012 (service restart) before it sends `lifespan.shutdown`, so that is what the client"
        " sees. Other servers do other things: see [Servers](servers.md).",
        lifespan_asgi,
        lifespan_wire,
    ),
    Scenario(
        "Echo: `/ws`, text and binary",
        "Each text message comes back as `Message text was: ...`; a binary message comes back as"
        " the same bytes. The client ends with a normal close (1000).",
        echo_asgi,
        echo_wire,
    ),
    items_scenario(
        "Items with a session cookie",
        "`/items/{item_id}/ws` needs a credential. A `session` cookie is the first place it looks;"
        " each message is answered with the credential and the message.",
        2,
        "/items/foo/ws",
        cookie=f"session={TOKEN}",
    ),
    items_scenario(
        "Items with a token and `q`",
        "The `token` query parameter is the last place the app looks for a credential. The optional"
        " integer `q` adds a line to every answer.",
        3,
        f"/items/foo/ws?token={TOKEN}&q=5",
    ),
    items_scenario(
        "Items with the bearer subprotocol",
        "A browser cannot set headers on a WebSocket, but it can offer subprotocols: offering"
        " `bearer` and then the token keeps the token out of the URL (and so out of access logs)."
        " The app accepts `bearer`, never the token.",
        2,
        "/items/foo/ws",
        subprotocols=["bearer", TOKEN],
    ),
    refusal_scenario(
        "Refused: no credentials",
        "Every check runs before `websocket.accept`, so a refusal is an HTTP response in place of"
        " the 101 that would open the WebSocket. A server that offers ASGI's *WebSocket Denial"
        " Response* extension (`websocket.http.response` in the scope's `extensions`: uvicorn,"
        " hypercorn, granian) sends the app's own: the refusal's status and its reason as a"
        " `text/plain` body (#1 below), so the client sees why. A server without it (daphne) gets"
        ' `websocket.close` instead (#2), and ASGI says it "must close the connection with a HTTP'
        ' 403 error code": a bare 403, the close code and reason only in the log.',
        "/items/foo/ws",
        without_extension=True,
    ),
    refusal_scenario(
        "Refused: `q` is not an integer",
        "Credentials are checked before `q`; with a credential, a `q` that is not a whole number is"
        " refused the same way, and the reason names `q`.",
        f"/items/foo/ws?token={TOKEN}&q=five",
    ),
    refusal_scenario(
        "Refused: unknown path",
        "A WebSocket to a path with no route is refused with 404 `not found`, as HTTP answers the"
        " same path. Without the extension it is a close with 1000 (Starlette closes with 1000"
        " too): nothing went wrong, there is just nothing here.",
        "/nowhere",
    ),
    Scenario(
        "Chat: two clients, a message, a leave",
        "The sender gets `You wrote: ...` and everyone, the sender included, gets"
        " `Client #N says: ...`. When a client leaves, the others are told.",
        chat_asgi,
        chat_wire,
    ),
    closing_scenario(
        "Closed: a binary frame on a text endpoint",
        'The chat and items endpoints speak text. RFC 6455 7.4.1: 1003 "indicates that an endpoint'
        ' is terminating the connection because it has received a type of data it cannot accept".',
        "/ws/1",
        b"\x01",
    ),
    closing_scenario(
        "Closed: a message over the size limit",
        "Inbound messages are limited to `ASGI_CHAT_MAX_MESSAGE_BYTES` (64 KiB by default); a"
        " larger one closes with 1009 (message too big).",
        "/ws",
        "x" * 70_000,
    ),
    Scenario(
        "Rooms (`asgi-chat.v1`): hello, join, presence, say",
        "`/chat/ws` speaks JSON on the subprotocol `asgi-chat.v1`, which the client offers and the"
        " server accepts. A client says hello with a name, joins a room (`joined` carries the"
        " room's epoch, its top offset and who is there), and every member, the sender included,"
        " gets each line as `msg` with its offset; the sender then gets an `ack` with the same"
        " offset, always after its own `msg`, on either store. The others hear"
        " of a name's first connection in the room and of its last one leaving (`presence`: who"
        " joined and who left, one frame per member per `ASGI_CHAT_PRESENCE_INTERVAL` at most).",
        rooms_asgi,
        rooms_wire,
        # Presence at once, a frame per change: batched (the default), a frame's place among the
        # others would depend on the machine's speed, and this page must read the same each run.
        Settings(presence_interval=0),
    ),
    Scenario(
        "Rooms: resume, trimmed history, reset",
        "A client resuming with `since: {epoch, offset}` gets every message after that offset, and"
        " what history no longer holds is named first as a `gap` with exact bounds (here"
        " `ASGI_CHAT_HISTORY_MESSAGES=2`, so line 1 is gone). A position from another epoch (a"
        " restarted memory store, a forgotten room) gets `gap` `reset` with the epoch now in force"
        " and, as `offset`, the position the next message follows: here the room's top, so live"
        " messages only. A member still in a room whose history is lost while it is there (Redis"
        " flushed) gets the same frame live, with `offset` 0: the new epoch's messages follow from 1.",
        resume_asgi,
        None,
        # Presence at once, a frame per change: batched (the default), bob's leave and second
        # join would fall in one window or two depending on the machine's speed.
        Settings(history_messages=2, presence_interval=0),
        wire_note="No wire run here: the ASGI run shows the same frames a client would see.",
    ),
    Scenario(
        "Closed: a slow consumer",
        "A chat client that stops reading is not waited for: its lines queue in its own outbox,"
        " and when the outbox is full (here `ASGI_CHAT_OUTBOX_MAX_MESSAGES=2`) it is dropped with"
        " 1013 (try again later) and the others are told it left. In the run below client 2's"
        " first send never completes, as when its TCP buffers are full.",
        slow_consumer_asgi,
        None,
        Settings(outbox_max_messages=2),
        wire_note="No wire run here: on a real socket, how far a client may fall behind before its"
        " send blocks depends on the kernel's buffers (megabytes on loopback). Its close frame then"
        " waits behind everything it has not read, and the app waits for it at most `CLOSE_TIMEOUT`"
        " (1 s).",
    ),
)


# --- the document -----------------------------------------------------------------------------------

HEADER = """\
# The ASGI protocol, message by message

<!-- Generated by `python -m docs.generate_protocol` (`make protocol`) from real runs: do not edit.
     tests/e2e/test_protocol_doc.py fails when this file differs from what the code does now. -->

Each section shows one conversation twice:

- **The app's messages**: the ASGI trace (`ASGI_CHAT_TRACE=1`, asgi_chat/ops/trace.py) of a run with
  asgiref's `ApplicationCommunicator` playing the server. `#N` numbers the connection, `←` is a
  message the server hands the app (`receive`), `→` one the app hands the server (`send`), `·` the
  scope's start and end. The trace prints times (`+0.012s`); they are left out here. Credentials
  print as `[redacted]`.
- **On the wire**: a real uvicorn (`--ws websockets-sansio`) and a real `websockets` client;
  `→` is what the client sends, `←` what it gets.

[Servers](servers.md) says where hypercorn, daphne and granian differ from uvicorn.
"""


async def section(number: int, scenario: Scenario) -> str:
    stage = Stage(scenario.settings)
    await scenario.asgi(stage)
    parts = [
        f"## {number}. {scenario.title}",
        textwrap.fill(scenario.text, WIDTH),
        "The app's messages:",
        f"```text\n{stage.trace()}\n```",
    ]
    if scenario.wire is not None:
        async with served(scenario.settings) as server:
            wire = Wire(server)
            await scenario.wire(wire)
        parts += ["On the wire:", "```text\n" + "\n".join(wire.lines) + "\n```"]
    if scenario.wire_note:
        parts.append(textwrap.fill(scenario.wire_note, WIDTH))
    return "\n\n".join(parts)


async def render(scenarios: Iterable[Scenario] = SCENARIOS) -> str:
    sections = [await section(number, scenario) for number, scenario in enumerate(scenarios, 1)]
    return "\n\n".join([HEADER.rstrip("\n"), *sections]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docs.generate_protocol", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with docs/PROTOCOL.md instead of writing it")
    args = parser.parse_args(argv)
    logging.getLogger("asgi_chat").setLevel(logging.ERROR)  # the slow consumer's warning is in the document
    return write_or_check(DOC, asyncio.run(render()), check=args.check, make_target="protocol")


if __name__ == "__main__":
    sys.exit(main())
