"""The untrusted-proxy warning through the app: said once per process, at the first handshake
whose X-Forwarded-For the server ignored, and never when it applied it."""

from __future__ import annotations

import logging

import pytest

from asgi_chat import ChatApp
from asgi_chat.ops import forwarded
from tests.helpers import WebSocketClient

PROXY = ("10.0.0.1", 50000)
FORWARDED = [(b"x-forwarded-for", b"203.0.113.5")]


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if in a process that has not warned yet."""
    monkeypatch.setattr(forwarded.untrusted_proxy, "given", False)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "asgi_chat" and r.levelno == logging.WARNING]


async def test_an_ignored_x_forwarded_for_is_warned_once(app: ChatApp, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(3):
        client = WebSocketClient(app, "/ws", headers=FORWARDED, client=PROXY)
        await client.accept()  # the handshake itself goes on as before
        await client.disconnect()
    [warning] = warnings(caplog)
    assert "a WebSocket from 10.0.0.1 carries X-Forwarded-For, which the server ignored" in warning
    assert "--forwarded-allow-ips 10.0.0.1" in warning
    assert "203.0.113.5" not in warning  # what the header says is the client's to choose


async def test_an_applied_x_forwarded_for_is_not_warned(app: ChatApp, caplog: pytest.LogCaptureFixture) -> None:
    # A trusting server (uvicorn with --forwarded-allow-ips) has set the client to the forwarded address.
    client = WebSocketClient(app, "/ws", headers=FORWARDED, client=("203.0.113.5", 0))
    await client.accept()
    await client.disconnect()
    direct = WebSocketClient(app, "/ws", client=PROXY)  # no proxy at all
    await direct.accept()
    await direct.disconnect()
    assert warnings(caplog) == []


async def test_a_refused_handshake_is_warned_too(app: ChatApp, caplog: pytest.LogCaptureFixture) -> None:
    """Without the proxy's X-Forwarded-Proto the page's https:// origin looks foreign: the refusal
    is when the operator most needs to read what to set."""
    headers = [*FORWARDED, (b"origin", b"https://testserver")]
    client = WebSocketClient(app, "/ws", headers=headers, client=PROXY)
    assert (await client.connect())["type"] == "websocket.close"
    assert len(warnings(caplog)) == 1
