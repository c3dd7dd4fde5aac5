"""``asgi_chat.app`` is a DeferredApp: built on the first scope, and under a setting it cannot use,
answering every scope in that protocol's own terms with the one-line reason."""

from __future__ import annotations

import logging

import pytest

from asgi_chat import ChatApp, create_app
from asgi_chat.ops.deferred import DeferredApp
from tests.helpers import LifespanClient, WebSocketClient, http_get

REASON = (
    "asgi_chat cannot start: ASGI_CHAT_SEND_TIMEOUT='soon': expected a number of seconds >= 0 (0 turns the limit off)"
)


async def test_a_bad_setting_is_answered_on_every_scope_and_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ASGI_CHAT_SEND_TIMEOUT", "soon")
    app = DeferredApp(create_app)  # what asgi_chat.app is; reading the environment waits for a scope
    with caplog.at_level(logging.ERROR, logger="asgi_chat"):
        assert (await LifespanClient(app).startup()) == {"type": "lifespan.startup.failed", "message": REASON}
        status, _, body = await http_get(app, "/")
        assert (status, body) == (500, f"{REASON}\n".encode())
        answer = await WebSocketClient(app, "/ws").connect()
        assert answer == {"type": "websocket.close", "code": 1011, "reason": "server misconfigured"}
    assert [record.getMessage() for record in caplog.records if record.name == "asgi_chat"] == [REASON]
    assert app.error == REASON


async def test_good_settings_build_the_app_once_on_the_first_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[ChatApp] = []

    def factory() -> ChatApp:
        built.append(create_app())
        return built[-1]

    monkeypatch.setenv("ASGI_CHAT_SEND_TIMEOUT", "2")
    app = DeferredApp(factory)
    assert built == []
    assert (await http_get(app, "/healthz"))[0] == 200
    assert (await http_get(app, "/healthz"))[0] == 200
    assert len(built) == 1
    assert built[0].ctx.settings.send_timeout == 2
