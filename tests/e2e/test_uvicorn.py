"""End to end: ``uvicorn asgi_chat:app`` on a free port, a real ``websockets`` client, under each of
uvicorn's three WebSocket implementations."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import SERVERS, TIMEOUT, UVICORN_SERVERS, Server, closed, free_port, recv, recv_many, wait_until


@pytest.fixture(scope="module", params=UVICORN_SERVERS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp(request.param) / "server.log"
    with Server(SERVERS[request.param](port), port, log) as running:
        yield running
    output = log.read_text()
    assert "Traceback" not in output, output
    assert "Exception in ASGI application" not in output, output


async def refused(url: str, **kwargs: object) -> tuple[int, bytes]:
    """The HTTP status and body a refused handshake got."""
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, open_timeout=TIMEOUT, **kwargs):  # type: ignore[arg-type]
            pass
    return caught.value.response.status_code, bytes(caught.value.response.body or b"")


async def test_echo(server: Server) -> None:
    async with connect(f"{server.url}/ws") as ws:
        await ws.send("hello")
        assert await recv(ws) == "Message text was: hello"
        await ws.send(b"\x00\x01")
        assert await recv(ws) == b"\x00\x01"


async def test_items_with_cookie_token_and_q(server: Server) -> None:
    async with connect(f"{server.url}/items/foo/ws?token=t&q=+03", additional_headers={"Cookie": "session=c"}) as ws:
        await ws.send("hi")
        assert await recv_many(ws, 3) == [
            "Session cookie or query token value is: c",
            "Query parameter q is: 3",
            "Message text was: hi, for item ID: foo",
        ]


async def test_items_with_the_bearer_subprotocol(server: Server) -> None:
    async with connect(f"{server.url}/items/%C3%A9t%C3%A9/ws", subprotocols=["bearer", "tok"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "bearer"
        await ws.send("hi")
        assert await recv_many(ws, 2) == [
            "Session cookie or query token value is: tok",
            "Message text was: hi, for item ID: \u00e9t\u00e9",  # the path arrives percent-decoded
        ]


@pytest.mark.parametrize(
    ("path", "options", "status", "reason"),
    [
        ("/items/foo/ws", {}, 403, "missing credentials: send a session cookie, a bearer subprotocol or a token"),
        ("/items/foo/ws?token=t&q=bar", {}, 403, "invalid q: expected an integer"),
        ("/ws/abc", {}, 403, "invalid client_id: expected an integer"),
        ("/chat/ws", {}, 403, "this endpoint speaks the asgi-chat.v1 subprotocol: offer it"),
        ("/ws", {"origin": "https://evil.example"}, 403, "origin not allowed: https://evil.example:443"),
        ("/ws/", {}, 404, "not found"),  # unknown paths
        ("/", {}, 404, "not found"),
        ("/items/a%2Fb/ws", {}, 404, "not found"),  # the ASGI path is decoded: /items/a/b/ws, no route
    ],
)
async def test_a_refusal_is_an_http_response_naming_its_reason(
    server: Server, path: str, options: dict[str, object], status: int, reason: str
) -> None:
    # All three implementations offer ASGI's "WebSocket Denial Response" extension (uvicorn >= 0.30).
    assert await refused(f"{server.url}{path}", **options) == (status, f"{reason}\n".encode())


async def test_a_binary_frame_in_the_chat_closes_1003(server: Server) -> None:
    async with connect(f"{server.url}/ws/1") as ws:
        await ws.send(b"\x00")
        code, reason = await closed(ws)
        assert code == 1003
        assert reason == "binary messages are not supported here: send text"


async def test_chat_with_three_clients_one_of_which_drops_its_tcp_connection(server: Server) -> None:
    async with connect(f"{server.url}/ws/1") as one, connect(f"{server.url}/ws/2") as two:
        three = await connect(f"{server.url}/ws/3")
        await one.send("hello")
        assert await recv_many(one, 2) == ["You wrote: hello", "Client #1 says: hello"]
        assert await recv(two) == "Client #1 says: hello"
        assert await recv(three) == "Client #1 says: hello"
        three.transport.abort()  # gone without a close frame: a lost connection
        assert await recv(one) == "Client #3 left the chat"
        assert await recv(two) == "Client #3 left the chat"
        await two.send("still here")
        assert await recv(one) == "Client #2 says: still here"
        assert await recv_many(two, 2) == ["You wrote: still here", "Client #2 says: still here"]
    # The server notices the closed connections on its own schedule.
    await wait_until(lambda: healthz_connections(server) == 0)


def healthz_connections(server: Server) -> int:
    with urllib.request.urlopen(f"{server.http_url}/healthz", timeout=TIMEOUT) as response:
        return int(json.load(response)["connections"])


@pytest.mark.parametrize("name", UVICORN_SERVERS)
async def test_shutdown_closes_with_1012_and_announces_nobody(name: str, tmp_path: Path) -> None:
    port = free_port()
    server = Server(SERVERS[name](port), port, tmp_path / "server.log").start()
    try:
        one = await connect(f"ws://127.0.0.1:{port}/ws/1")
        two = await connect(f"ws://127.0.0.1:{port}/ws/2")
        await one.send("hi")
        assert await recv_many(one, 2) == ["You wrote: hi", "Client #1 says: hi"]
        assert await recv(two) == "Client #1 says: hi"
        exit_code = await asyncio.to_thread(server.stop)
        for ws in (one, two):
            assert await closed(ws) == (1012, "")  # uvicorn's "service restart"; no "left the chat" before it
    finally:
        server.stop()
    # uvicorn finishes its graceful shutdown, then re-raises the SIGTERM it caught.
    assert exit_code == -signal.SIGTERM
    output = server.output()
    assert "Traceback" not in output, output
    assert "Application shutdown complete" in output
