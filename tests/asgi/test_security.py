"""Each defence of the security issue, through the app, and what the client is told."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from asgi_chat import Settings, create_app
from tests.helpers import LifespanClient, WebSocketClient, accepted


def foreign(path: str, origin: bytes, **scope: Any) -> WebSocketClient:
    return WebSocketClient(create_app(Settings()), path, headers=[(b"origin", origin)], **scope)


@pytest.mark.parametrize("path", ["/ws", "/ws/1", "/items/foo/ws"])
async def test_a_foreign_origin_is_refused_before_accept_on_every_endpoint(path: str) -> None:
    client = foreign(path, b"https://evil.example", query_string=b"token=t")
    answer = await client.connect()
    assert answer == {"type": "websocket.close", "code": 1008, "reason": "origin not allowed: https://evil.example:443"}
    await client.finished()


async def test_the_cookie_does_not_help_a_foreign_page() -> None:
    # Cross-site WebSocket hijacking: the browser attaches the user's cookie to any page's socket.
    client = WebSocketClient(
        create_app(Settings()),
        "/items/foo/ws",
        headers=[(b"origin", b"http://evil.example"), (b"cookie", b"session=the-users-session")],
    )
    assert (await client.connect())["code"] == 1008


async def test_same_origin_and_listed_origins_pass() -> None:
    app = create_app(Settings(allowed_origins=("https://app.example",)))
    own = WebSocketClient(app, "/ws", headers=[(b"origin", b"http://testserver")])  # Host: testserver
    listed = WebSocketClient(app, "/ws", headers=[(b"origin", b"https://app.example")])
    without = WebSocketClient(app, "/ws")  # no Origin: not a browser
    for client in (own, listed, without):
        assert (await client.connect())["type"] == "websocket.accept"
        await client.disconnect()


async def test_a_star_allows_every_origin_and_warns_at_startup(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(allowed_origins=("*",)))
    with caplog.at_level(logging.WARNING, logger="asgi_chat"):
        await LifespanClient(app).startup()
    assert "ASGI_CHAT_ALLOWED_ORIGINS contains '*'" in caplog.text
    client = WebSocketClient(app, "/ws", headers=[(b"origin", b"https://evil.example")])
    assert (await client.connect())["type"] == "websocket.accept"
    await client.disconnect()


async def test_a_tokens_file_restricts_credentials(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("good-token\n")
    app = create_app(Settings(tokens_file=str(tokens)))
    ok = WebSocketClient(app, "/items/x/ws", subprotocols=["bearer", "good-token"])
    assert (await ok.connect())["subprotocol"] == "bearer"
    await ok.disconnect()
    for query in (b"token=bad-token", b"token=good-toke", b"token=good-token2"):
        answer = await WebSocketClient(app, "/items/x/ws", query_string=query).connect()
        assert (answer["code"], answer["reason"]) == (1008, "invalid credentials")


async def test_a_message_over_the_size_limit_closes_1009() -> None:
    app = create_app(Settings(max_message_bytes=10))
    client = WebSocketClient(app, "/ws")
    await client.accept()
    await client.send("0123456789")
    assert await client.receive() == "Message text was: 0123456789"
    await client.send("\u00e9" * 6)  # 6 characters, 12 bytes
    assert await client.receive_close() == (1009, "message too big: the limit is 10 bytes")
    await client.finished()


async def test_a_binary_message_over_the_size_limit_closes_1009() -> None:
    client = WebSocketClient(create_app(Settings(max_message_bytes=4)), "/ws")
    await client.accept()
    await client.send(data=b"12345")
    assert (await client.receive_close())[0] == 1009


async def test_too_many_messages_close_1008_with_a_reason() -> None:
    app = create_app(Settings(rate_per_second=1, rate_burst=3))
    one, two = await accepted(app, "/ws/1", "/ws/2")
    for n in range(4):
        await one.send(f"m{n}")
    received = [await one.output() for _ in range(7)]
    assert [m.get("text") for m in received[:6]] == [
        text for n in range(3) for text in (f"You wrote: m{n}", f"Client #1 says: m{n}")
    ]
    assert received[6] == {
        "type": "websocket.close",
        "code": 1008,
        "reason": "too many messages: the limit is 1 per second",
    }
    assert await two.receive_many(4) == [
        "Client #1 says: m0",
        "Client #1 says: m1",
        "Client #1 says: m2",
        "Client #1 left the chat",
    ]
    await two.disconnect()


async def test_connections_beyond_the_limits_are_refused_before_accept() -> None:
    app = create_app(Settings(max_connections=3, max_connections_per_address=2))
    a1 = WebSocketClient(app, "/ws", client=("10.0.0.1", 1))
    a2 = WebSocketClient(app, "/ws/5", client=("10.0.0.1", 2))
    await a1.accept()
    await a2.accept()
    a3 = WebSocketClient(app, "/ws", client=("10.0.0.1", 3))
    assert await a3.connect() == {
        "type": "websocket.close",
        "code": 1013,
        "reason": "too many open connections from your address",
    }
    b1 = WebSocketClient(app, "/ws", client=("10.0.0.2", 1))
    await b1.accept()
    b2 = WebSocketClient(app, "/ws", client=("10.0.0.2", 2))
    assert await b2.connect() == {
        "type": "websocket.close",
        "code": 1013,
        "reason": "server full: too many open connections",
    }
    await a1.disconnect()  # a closed connection frees its place
    again = WebSocketClient(app, "/ws", client=("10.0.0.1", 4))
    await again.accept()
    for client in (a2, b1, again):
        await client.disconnect()
    assert app.ctx.limits.total == 0


async def test_limits_turn_off_with_zero() -> None:
    app = create_app(Settings(max_connections=0, max_connections_per_address=0, max_message_bytes=0, rate_per_second=0))
    clients = [WebSocketClient(app, "/ws") for _ in range(150)]  # more than the per-address default
    for client in clients:
        await client.accept()
    await clients[0].send("x" * 100_000)
    assert (await clients[0].receive()).endswith("x" * 10)
    for client in clients:
        await client.disconnect()
