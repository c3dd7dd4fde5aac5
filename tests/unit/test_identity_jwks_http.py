"""The key set fetched over real HTTP (identity/jwks.py's fetch_url) from a small server on
127.0.0.1 that runs on the test's own event loop: if the fetch blocked the loop, that server
could not even read the request. Also: errors, redirects and sizes, and a rotation end to end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from asgi_chat.identity import jwks
from asgi_chat.identity.errors import KeysUnavailable
from asgi_chat.identity.jwks import MAX_BYTES, JwksCache
from asgi_chat.identity.keys import operator_keys
from asgi_chat.identity.tokens import Verifier
from tests.helpers import TIMEOUT
from tests.identity_support import FakeClock, claims, public_jwk, rsa_key, sign


class KeySetServer:
    """An HTTP server of a few lines: each GET is answered with :attr:`status`, :attr:`headers` and
    :attr:`body`, once :attr:`release` is set; :attr:`received` is set when a request arrives."""

    def __init__(self) -> None:
        self.status = "200 OK"
        self.headers: dict[str, str] = {"Content-Type": "application/json"}
        self.body = b'{"keys": []}'
        self.paths: list[str] = []
        self.received = asyncio.Event()
        self.release = asyncio.Event()
        self.url = ""

    def serve(self, *keys: dict[str, Any]) -> None:
        self.body = json.dumps({"keys": list(keys)}).encode()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        self.paths.append(request.split(b" ")[1].decode())
        self.received.set()
        await self.release.wait()
        headers = {**self.headers, "Content-Length": str(len(self.body)), "Connection": "close"}
        head = f"HTTP/1.1 {self.status}\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(head.encode() + b"\r\n" + self.body)
        await writer.drain()
        writer.close()


@asynccontextmanager
async def key_set_server() -> AsyncIterator[KeySetServer]:
    server = KeySetServer()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}/jwks.json"
    try:
        yield server
    finally:
        server.release.set()  # no handler is left waiting
        listening.close()
        await listening.wait_closed()


def verifier_of(url: str, clock: FakeClock | None = None) -> Verifier:
    keys = operator_keys(None, None, url)
    assert keys is not None
    return Verifier(
        keys, audience="chat.example", issuer="https://auth.example", jwks=JwksCache(url, clock=clock or FakeClock())
    )


def token(kid: str, which: int = 0) -> str:
    return sign(rsa_key(which), "RS256", claims(), kid=kid)


async def test_the_fetch_does_not_block_the_event_loop() -> None:
    async with key_set_server() as server:
        server.serve(public_jwk(rsa_key(), "k1"))
        ticks: list[str] = []

        async def ticker() -> None:
            """Another task of the loop: it runs, and lets the server answer, while the fetch is waiting."""
            await server.received.wait()
            ticks.append("the loop ran while the fetch waited")
            server.release.set()

        running = asyncio.create_task(ticker())
        identity = await asyncio.wait_for(verifier_of(server.url).verify(token("k1")), 2 * TIMEOUT)
        await running
    assert identity.uid == "alice"
    assert ticks == ["the loop ran while the fetch waited"]
    assert server.paths == ["/jwks.json"]


async def test_a_rotation_is_fetched_over_http_without_a_restart() -> None:
    clock = FakeClock()
    async with key_set_server() as server:
        server.release.set()
        server.serve(public_jwk(rsa_key(0), "k1"))
        operator = verifier_of(server.url, clock)
        assert (await operator.verify(token("k1", 0))).uid == "alice"
        server.serve(public_jwk(rsa_key(0), "k1"), public_jwk(rsa_key(1), "k2"))
        clock.now += 60
        assert (await operator.verify(token("k2", 1))).uid == "alice"
    assert len(server.paths) == 2


@pytest.mark.parametrize(
    ("status", "headers", "body", "message"),
    [
        ("404 Not Found", {}, b"", "HTTP 404"),
        ("500 Internal Server Error", {}, b"", "HTTP 500"),
        # A redirect is not followed: keys come from the configured URL and nowhere else.
        ("302 Found", {"Location": "/elsewhere.json"}, b"", "HTTP 302"),
        ("200 OK", {}, b" " * (MAX_BYTES + 1), "more than"),
        ("200 OK", {}, b"<html>", "Expecting value"),
    ],
    ids=["404", "500", "redirect", "too large", "not JSON"],
)
async def test_a_bad_answer_leaves_the_keys_unavailable(
    status: str, headers: dict[str, str], body: bytes, message: str
) -> None:
    async with key_set_server() as server:
        server.release.set()
        server.status, server.body = status, body
        server.headers.update(headers)
        with pytest.raises(KeysUnavailable, match=message):
            await asyncio.wait_for(verifier_of(server.url).verify(token("k1")), 2 * TIMEOUT)
    assert server.paths == ["/jwks.json"]


async def test_a_server_that_does_not_answer_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jwks, "TIMEOUT", 0.2)
    async with key_set_server() as server:  # never released
        with pytest.raises(KeysUnavailable):
            await asyncio.wait_for(verifier_of(server.url).verify(token("k1")), TIMEOUT)
        assert server.received.is_set()


async def test_nothing_listening_is_unavailable() -> None:
    async with key_set_server() as server:
        url = server.url
    with pytest.raises(KeysUnavailable):
        await asyncio.wait_for(verifier_of(url).verify(token("k1")), 2 * TIMEOUT)
