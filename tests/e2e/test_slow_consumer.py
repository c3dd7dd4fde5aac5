"""A client that stops reading, against a real uvicorn: the others keep receiving everything."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import TIMEOUT, Server, free_port, recv, uvicorn_command

LINES = 200
BODY = "x" * 50_000  # big lines fill the stalled client's TCP buffers after a few dozen


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    env = {
        "ASGI_CHAT_RATE_PER_SECOND": "0",  # the sender sends as fast as it can
        "ASGI_CHAT_OUTBOX_MAX_MESSAGES": "8",  # a small bound, so the policy acts within the test
    }
    with Server(uvicorn_command(port), port, tmp_path / "server.log", env) as running:
        yield running
    assert "Traceback" not in running.output(), running.output()


async def read_lines(ws: ClientConnection, says: int) -> tuple[list[int], list[str]]:
    """Read until ``says`` lines "Client #1 says: <n> ..." have come: their numbers, and the rest."""
    numbers: list[int] = []
    others: list[str] = []
    while len(numbers) < says:
        text = str(await recv(ws))
        if text.startswith("Client #1 says: "):
            numbers.append(int(text.removeprefix("Client #1 says: ").split(" ", 1)[0]))
        elif not text.startswith("You wrote: "):
            others.append(text)
    return numbers, others


async def test_the_others_keep_receiving_while_one_client_stops_reading(server: Server) -> None:
    stalled = stalled_client(server.port, "/ws/3")
    async with (
        connect(f"{server.url}/ws/1", max_size=None) as sender,
        connect(f"{server.url}/ws/2", max_size=None) as healthy,
    ):
        own = asyncio.create_task(read_lines(sender, LINES))  # the sender reads its own lines too
        for n in range(LINES):
            await sender.send(f"{n} {BODY}")
        numbers, others = await asyncio.wait_for(read_lines(healthy, LINES), TIMEOUT * 4)
        assert numbers == list(range(LINES))  # every line, in order, while the other client stalled
        assert others == ["Client #3 left the chat"]  # the policy dropped the stalled one, once
        assert (await asyncio.wait_for(own, TIMEOUT))[0] == list(range(LINES))
    metrics = await asyncio.to_thread(fetch, f"{server.http_url}/metrics")
    assert "asgi_chat_slow_consumer_disconnects_total 1.0\n" in metrics
    assert 'asgi_chat_closes_total{code="1013"} 1.0\n' in metrics  # the drop, counted once by its code
    stalled.close()


def stalled_client(port: int, path: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again, with a small
    receive buffer: a frozen tab, whose TCP buffers fill and make the server's sends block."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window stays small
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)  # byte by byte: not one byte of the frames after it is read
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return str(response.read().decode())
