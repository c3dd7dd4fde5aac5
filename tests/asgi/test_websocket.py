"""The WebSocket endpoints and every rule of the core issue, through ApplicationCommunicator."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from asgi_chat import ChatApp, Settings, create_app
from asgi_chat.engine.brokers import BrokerUnavailable
from asgi_chat.engine.brokers.memory import MemoryBroker
from tests.helpers import DENIAL, LifespanClient, WebSocketClient, accepted

SECRET = "s3cret-value"


def items(
    app: ChatApp, item: str = "foo", query: bytes = b"", cookie: bytes | None = None, **scope: Any
) -> WebSocketClient:
    headers = [(b"cookie", cookie)] if cookie is not None else []
    return WebSocketClient(app, f"/items/{item}/ws", query_string=query, headers=headers, **scope)


# --- echo -----------------------------------------------------------------------------------------


async def test_echo_replies_to_text(app: ChatApp) -> None:
    client = WebSocketClient(app, "/ws")
    answer = await client.accept()
    assert answer == {"type": "websocket.accept", "subprotocol": None, "headers": []}
    await client.send("hello")
    assert await client.receive() == "Message text was: hello"
    await client.send("")
    assert await client.receive() == "Message text was: "
    await client.disconnect()


async def test_echo_returns_binary_as_the_same_bytes(app: ChatApp) -> None:
    client = WebSocketClient(app, "/ws")
    await client.accept()
    await client.send(data=b"\x00\xffbin")
    assert await client.output() == {"type": "websocket.send", "bytes": b"\x00\xffbin", "text": None}
    await client.disconnect()


# --- unknown paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/ws/", "/ws//", "/items//ws", "/items/a/b/ws", "/echo", "/healthz", "/x"])
async def test_other_paths_close_before_accept_with_1000_not_found(app: ChatApp, path: str) -> None:
    client = WebSocketClient(app, path)
    assert await client.connect() == {"type": "websocket.close", "code": 1000, "reason": "not found"}
    await client.finished()


# --- items --------------------------------------------------------------------------------------------


async def test_items_with_a_token_and_q(app: ChatApp) -> None:
    client = items(app, query=b"token=abc&q=%2B03")
    await client.accept()
    await client.send("hi")
    assert await client.receive_many(3) == [
        "Session cookie or query token value is: abc",
        "Query parameter q is: 3",
        "Message text was: hi, for item ID: foo",
    ]
    await client.send("again")
    assert await client.receive_many(3) == [
        "Session cookie or query token value is: abc",
        "Query parameter q is: 3",
        "Message text was: again, for item ID: foo",
    ]
    await client.disconnect()


async def test_items_without_q_sends_two_replies(app: ChatApp) -> None:
    client = items(app, item="bar", cookie=b"session=c00kie")
    await client.accept()
    await client.send("hi")
    assert await client.receive_many(2) == [
        "Session cookie or query token value is: c00kie",
        "Message text was: hi, for item ID: bar",
    ]
    await client.next_is("Session cookie or query token value is: c00kie")  # no third reply
    await client.disconnect()


@pytest.mark.parametrize(
    ("cookie", "query", "credential"),
    [
        (b"session=fromcookie", b"token=fromquery", "fromcookie"),  # the cookie wins
        (b"session=", b"token=fromquery", "fromquery"),  # an empty cookie falls back to the token
        (b'other=1; session="quoted"', b"", "quoted"),
        (b"session=a", b"token=b&token=c", "a"),
        (None, b"token=b&token=c", "c"),  # the last repeated key wins
        (None, b"token=a+b%21", "a b!"),
    ],
)
async def test_items_credential_rules(app: ChatApp, cookie: bytes | None, query: bytes, credential: str) -> None:
    client = items(app, query=query, cookie=cookie)
    await client.accept()
    await client.send("m")
    assert await client.receive() == f"Session cookie or query token value is: {credential}"
    await client.disconnect()


async def test_items_accepts_the_bearer_subprotocol(app: ChatApp) -> None:
    client = items(app, subprotocols=["bearer", "tok"])
    answer = await client.accept()
    assert answer["subprotocol"] == "bearer"
    await client.send("m")
    assert await client.receive() == "Session cookie or query token value is: tok"
    await client.disconnect()


@pytest.mark.parametrize(
    ("cookie", "query"),
    [
        (None, b""),
        (b"session=", b""),
        (None, b"token="),
        (b"session=", b"token="),
        (b"Session=x", b"Token=y"),
    ],
)
async def test_items_without_credentials_closes_1008_before_accept(
    app: ChatApp, cookie: bytes | None, query: bytes
) -> None:
    client = items(app, query=query, cookie=cookie)
    answer = await client.connect()
    assert answer["type"] == "websocket.close"
    assert answer["code"] == 1008
    assert answer["reason"].startswith("missing credentials")
    await client.finished()


async def test_credentials_are_checked_before_q(app: ChatApp) -> None:
    client = items(app, query=b"q=bar")
    assert (await client.connect())["reason"].startswith("missing credentials")


@pytest.mark.parametrize(
    "q",
    [b"bar", b"", b"3.5", b"1e3", b"0x10", b"%D9%A3", b"1234567890123456789", b"%2B", b"1%202", b"%2B-1"],
)
async def test_an_invalid_q_closes_1008_before_accept_naming_q(app: ChatApp, q: bytes) -> None:
    client = items(app, query=b"token=t&q=" + q)
    assert await client.connect() == {
        "type": "websocket.close",
        "code": 1008,
        "reason": "invalid q: expected an integer",
    }
    await client.finished()


async def test_a_q_without_equals_is_present_and_empty(app: ChatApp) -> None:
    client = items(app, query=b"token=t&q")
    assert (await client.connect())["reason"] == "invalid q: expected an integer"


async def test_a_binary_frame_on_items_closes_1003(app: ChatApp) -> None:
    client = items(app, query=b"token=t")
    await client.accept()
    await client.send(data=b"\x01")
    code, reason = await client.receive_close()
    assert code == 1003
    assert "binary" in reason
    await client.finished()


async def test_an_overlong_item_id_is_refused() -> None:
    app = create_app(Settings(max_item_id_length=4))
    assert (await items(app, item="abcd", query=b"token=t").connect())["type"] == "websocket.accept"
    answer = await items(app, item="abcde", query=b"token=t").connect()
    assert (answer["code"], answer["reason"]) == (1008, "invalid item_id: longer than 4 characters")


async def test_an_overlong_credential_is_refused() -> None:
    app = create_app(Settings(max_credential_length=3))
    answer = await items(app, query=b"token=abcd").connect()
    assert (answer["code"], answer["reason"]) == (1008, "invalid credentials: longer than 3 characters")


async def test_a_verifier_decides_which_credentials_pass() -> None:
    app = create_app(Settings(), verify_credential=lambda value: value == "good")
    assert (await items(app, query=b"token=good").connect())["type"] == "websocket.accept"
    answer = await items(app, query=b"token=bad").connect()
    assert (answer["code"], answer["reason"]) == (1008, "invalid credentials")


async def test_no_log_line_of_the_app_contains_a_credential(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(), verify_credential=lambda value: False)
    with caplog.at_level(logging.DEBUG):
        await items(app, query=f"token={SECRET}".encode()).connect()
        await items(app, cookie=f"session={SECRET}".encode()).connect()
        await items(app, subprotocols=["bearer", SECRET]).connect()
        await items(app, query=f"token={SECRET}&q=x".encode()).connect()
    assert "invalid credentials" in caplog.text  # the refusals were logged...
    assert SECRET not in caplog.text  # ...without the credential


# --- refusals that explain themselves: the denial-response extension ---------------------------------

# Each refusal before accept: path, scope, close code, HTTP status, reason.
REFUSED = [
    pytest.param(
        "/items/foo/ws",
        {},
        1008,
        403,
        "missing credentials: send a session cookie, a bearer subprotocol or a token",
        id="no-credentials",
    ),
    pytest.param(
        "/items/foo/ws", {"query_string": b"token=t&q=x"}, 1008, 403, "invalid q: expected an integer", id="bad-q"
    ),
    pytest.param("/ws/abc", {}, 1008, 403, "invalid client_id: expected an integer", id="bad-client-id"),
    pytest.param(
        "/chat/ws", {}, 1008, 403, "this endpoint speaks the asgi-chat.v1 subprotocol: offer it", id="no-subprotocol"
    ),
    pytest.param(
        "/ws",
        {"headers": [(b"origin", b"https://evil.example")]},
        1008,
        403,
        "origin not allowed: https://evil.example:443",
        id="foreign-origin",
    ),
    pytest.param("/nope", {}, 1000, 404, "not found", id="no-route"),
]


@pytest.mark.parametrize(("path", "scope", "code", "status", "reason"), REFUSED)
async def test_with_the_extension_a_refusal_is_an_http_response_naming_its_reason(
    app: ChatApp, path: str, scope: dict[str, Any], code: int, status: int, reason: str
) -> None:
    answer = await WebSocketClient(app, path, extensions=DENIAL, **scope).denied()
    seen, headers, body = answer
    assert (seen, body) == (status, f"{reason}\n".encode())
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert b"retry-after" not in headers  # only for 503
    assert app.ctx.metrics.closes == {code: 1}  # counted as the refusal it was, by its close code
    assert not app.sessions


@pytest.mark.parametrize(("path", "scope", "code", "status", "reason"), REFUSED)
async def test_without_the_extension_a_refusal_is_the_close_it_always_was(
    app: ChatApp, path: str, scope: dict[str, Any], code: int, status: int, reason: str
) -> None:
    client = WebSocketClient(app, path, **scope)
    assert await client.connect() == {"type": "websocket.close", "code": code, "reason": reason}
    await client.finished()
    assert app.ctx.metrics.closes == {code: 1}


async def test_a_full_server_answers_503_with_retry_after() -> None:
    app = create_app(Settings(max_connections=1))
    first = WebSocketClient(app, "/ws")
    await first.accept()
    status, headers, body = await WebSocketClient(app, "/ws", extensions=DENIAL).denied()
    assert (status, headers[b"retry-after"], body) == (503, b"5", b"server full: too many open connections\n")
    await first.disconnect()
    assert app.ctx.limits.total == 0  # the refused handshake held no place
    assert app.ctx.metrics.closes[1013] == 1


async def test_a_chat_whose_broker_is_down_answers_503() -> None:
    class DownBroker(MemoryBroker):
        async def open(self) -> None:
            raise BrokerUnavailable("cannot use Redis at redis://10.9.9.9:6379/0")

    app = create_app(Settings(), broker=DownBroker())  # no lifespan: the first join starts the hub
    status, headers, body = await WebSocketClient(app, "/ws/1", extensions=DENIAL).denied()
    assert (status, headers[b"retry-after"]) == (503, b"5")
    assert body == b"chat unavailable: its message broker cannot be reached\n"  # not the broker's address


async def test_the_body_says_what_the_log_says_and_never_the_credential(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(), verify_credential=lambda value: False)
    with caplog.at_level(logging.INFO, logger="asgi_chat"):
        bodies = [
            (await items(app, extensions=DENIAL, **scope).denied())[2]
            for scope in (
                {"query": f"token={SECRET}".encode()},
                {"cookie": f"session={SECRET}".encode()},
                {"subprotocols": ["bearer", SECRET]},
            )
        ]
    assert bodies == [b"invalid credentials\n"] * 3
    assert caplog.text.count("/items/foo/ws closed with 1008: invalid credentials\n") == 3
    assert SECRET not in caplog.text


async def test_after_accept_the_extension_changes_nothing(app: ChatApp) -> None:
    client = items(app, query=b"token=t", extensions=DENIAL)
    await client.accept()
    await client.send(data=b"\x01")
    assert await client.receive_close() == (1003, "binary messages are not supported here: send text")
    await client.finished()


# --- chat ---------------------------------------------------------------------------------------------


async def test_chat_replies_to_the_sender_and_broadcasts_to_all(app: ChatApp) -> None:
    one, two = await accepted(app, "/ws/1", "/ws/2")
    await one.send("hello")
    assert await one.receive_many(2) == ["You wrote: hello", "Client #1 says: hello"]
    assert await two.receive() == "Client #1 says: hello"
    await two.send("hi")
    assert await two.receive_many(2) == ["You wrote: hi", "Client #2 says: hi"]
    assert await one.receive() == "Client #2 says: hi"
    await two.disconnect()
    assert await one.receive() == "Client #2 left the chat"
    await one.next_is("You wrote: sync")  # announced once
    await one.disconnect()


async def test_chat_shows_the_client_id_normalised(app: ChatApp) -> None:
    client = WebSocketClient(app, "/ws/+007")
    await client.accept()
    await client.send("x")
    assert await client.receive_many(2) == ["You wrote: x", "Client #7 says: x"]
    await client.disconnect()


@pytest.mark.parametrize("client_id", ["abc", "1.5", "%20", "0x1"])
async def test_a_bad_client_id_closes_1008_before_accept(app: ChatApp, client_id: str) -> None:
    client = WebSocketClient(app, f"/ws/{client_id}")
    answer = await client.connect()
    assert answer == {
        "type": "websocket.close",
        "code": 1008,
        "reason": "invalid client_id: expected an integer",
    }


async def test_a_binary_frame_in_the_chat_closes_1003_and_is_announced(app: ChatApp) -> None:
    one, two = await accepted(app, "/ws/1", "/ws/2")
    await two.send(data=b"\x00")
    assert (await two.receive_close())[0] == 1003
    await two.finished()
    assert await one.receive() == "Client #2 left the chat"
    await one.next_is("You wrote: sync")  # announced once
    await one.disconnect()


async def test_every_leave_is_announced_once_and_only_for_who_left(app: ChatApp) -> None:
    one, two, three = await accepted(app, "/ws/1", "/ws/2", "/ws/3")
    await three.disconnect(1006)  # a lost connection
    assert await one.receive() == "Client #3 left the chat"
    assert await two.receive() == "Client #3 left the chat"
    await two.disconnect(1001)  # a closed tab
    assert await one.receive() == "Client #2 left the chat"
    await one.next_is("You wrote: sync")
    assert [member.label for member in app.ctx.hub.members] == ["client #1"]
    await one.disconnect()
    assert not app.ctx.hub.members


async def test_a_shared_client_id_has_left_only_when_its_last_connection_has(app: ChatApp) -> None:
    # A page that reconnects before the server noticed its old connection drop, or a duplicated tab.
    observer, first, second = await accepted(app, "/ws/1", "/ws/7", "/ws/7")
    await first.disconnect(1006)
    # Client 7 is still here: no "left the chat" before its next line.
    await observer.next_is("Client #7 says: still here", sender=second, text="still here")
    await second.disconnect()
    assert await observer.receive() == "Client #7 left the chat"
    await observer.disconnect()


async def test_a_client_gone_before_accept_ends_quietly(app: ChatApp) -> None:
    client = WebSocketClient(app, "/ws/1")
    await client.disconnect()  # websocket.disconnect instead of websocket.connect
    assert app.ctx.hub.members == ()


async def test_a_client_gone_between_two_replies_ends_quietly(app: ChatApp) -> None:
    client = items(app, query=b"token=t&q=1")
    await client.accept()
    await client.send("m")
    await client.disconnect()  # the app may still be replying: it must finish without an error


# --- lifespan -----------------------------------------------------------------------------------------


async def test_lifespan_startup_and_shutdown(app: ChatApp) -> None:
    life = LifespanClient(app)
    assert await life.startup() == {"type": "lifespan.startup.complete"}
    assert await life.shutdown() == {"type": "lifespan.shutdown.complete"}


async def test_shutdown_closes_open_websockets_with_1001_and_announces_nothing(app: ChatApp) -> None:
    life = LifespanClient(app)
    assert (await life.startup())["type"] == "lifespan.startup.complete"
    chat_one, chat_two, echo = await accepted(app, "/ws/1", "/ws/2", "/ws")
    assert (await life.shutdown())["type"] == "lifespan.shutdown.complete"
    for client in (chat_one, chat_two, echo):
        assert await client.receive_close() == (1001, "server shutting down")
        await client.ended_quietly(1001)  # in particular, no "left the chat"


async def test_a_server_restart_close_is_not_announced(app: ChatApp) -> None:
    # uvicorn closes every connection with 1012 before lifespan.shutdown: that is no one leaving.
    one, two = await accepted(app, "/ws/1", "/ws/2")
    await two.disconnect(1012)
    await one.next_is("You wrote: sync")
    await one.disconnect()
