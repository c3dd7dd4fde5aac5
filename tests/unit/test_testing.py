"""asgi_chat.testing against small raw ASGI apps written here: what each call does, and how each
failure reads. (docs/testing.md's examples run it against asgi_chat itself.)"""

from __future__ import annotations

import ast
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import pytest
from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, HTTPScope, Scope, WebSocketScope

import asgi_chat.testing
from asgi_chat.testing import (
    LifespanCommunicator,
    LifespanFailed,
    UnexpectedMessage,
    WebSocketCommunicator,
    http_scope,
    lifespan_scope,
    websocket_scope,
)

QUICK = 0.05  # seconds: the timeout of the tests that expect one


class Recorder:
    """A WebSocket app: accepts, then answers each text with ``script(text)``'s messages; records
    every event it received, and whether it returned."""

    def __init__(self, script: Callable[[str], list[dict[str, object]]] = lambda text: []) -> None:
        self.script = script
        self.received: list[dict[str, object]] = []
        self.returned = False

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        while True:
            event = dict(await receive())
            self.received.append(event)
            if event["type"] == "websocket.connect":
                await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
            elif event["type"] == "websocket.disconnect":
                self.returned = True
                return
            elif isinstance(event.get("text"), str):
                for message in self.script(str(event["text"])):
                    await send(cast(ASGISendEvent, message))  # a test's app may send anything


def text(value: str) -> dict[str, object]:
    return {"type": "websocket.send", "text": value, "bytes": None}


def ignores_everything() -> Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]:
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        await asyncio.Event().wait()  # never answers, never returns

    return app


def test_the_module_imports_only_asgiref_and_the_standard_library() -> None:
    # So that it stays usable on its own, for any ASGI app: nothing of asgi_chat's engine.
    tree = ast.parse(Path(asgi_chat.testing.__file__).read_text(encoding="utf-8"))
    modules = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    modules += [node.module or "." for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert {module.split(".")[0] for module in modules} <= {*sys.stdlib_module_names, "asgiref"}


# --- scopes ---------------------------------------------------------------------------------------


def test_websocket_scope_has_every_key_asgiref_types_and_the_spec_lists() -> None:
    scope = websocket_scope("/ws")
    assert set(scope) == WebSocketScope.__required_keys__  # state is the one optional key: left out
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/ws", b"/ws", b"")
    assert scope["headers"] == [(b"host", b"testserver")]


def test_http_and_lifespan_scopes_have_every_key() -> None:
    assert set(http_scope("/")) == HTTPScope.__required_keys__
    assert http_scope("/", method="head")["method"] == "HEAD"
    assert lifespan_scope() == {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}


@pytest.mark.parametrize(
    ("target", "path", "raw_path", "query"),
    [
        ("/items/foo/ws?token=abc&q=5", "/items/foo/ws", b"/items/foo/ws", b"token=abc&q=5"),
        ("/ws?", "/ws", b"/ws", b""),  # an empty query
        ("/ws?a=1?b", "/ws", b"/ws", b"a=1?b"),  # only the first ? starts the query
        ("/ws?name=ad%C3%A9le", "/ws", b"/ws", b"name=ad%C3%A9le"),  # escapes kept as they are
        ("/ws?name=adéle x", "/ws", b"/ws", b"name=ad%C3%A9le%20x"),  # encoded as a browser would
        ("/a b/é", "/a b/é", b"/a%20b/%C3%A9", b""),  # path decoded, raw_path as sent
    ],
)
def test_a_query_in_the_path_becomes_the_query_string(target: str, path: str, raw_path: bytes, query: bytes) -> None:
    scope = websocket_scope(target)
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == (path, raw_path, query)


def test_a_query_in_the_path_and_as_an_argument_is_an_error() -> None:
    with pytest.raises(ValueError, match="not both"):
        websocket_scope("/ws?a=1", query_string=b"b=2")


def test_a_host_header_is_added_unless_one_is_given() -> None:
    cookie = (b"cookie", b"a=1")
    assert websocket_scope("/", headers=[cookie])["headers"] == [(b"host", b"testserver"), cookie]
    assert websocket_scope("/", headers=[(b"Host", b"chat.example"), cookie])["headers"] == [
        (b"Host", b"chat.example"),  # as given: case and order are the test's to choose
        cookie,
    ]


# --- WebSocketCommunicator --------------------------------------------------------------------------


async def test_a_conversation_reaches_the_app_and_comes_back() -> None:
    app = Recorder(lambda value: [text(f"got {value}"), {"type": "websocket.send", "text": None, "bytes": b"\x01"}])
    async with WebSocketCommunicator(app, "/x?k=v", subprotocols=["p"]) as ws:
        assert (ws.scope["query_string"], ws.scope["subprotocols"]) == (b"k=v", ["p"])
        assert await ws.connect() == {"type": "websocket.accept", "subprotocol": None, "headers": []}
        await ws.send_to("hi")
        assert await ws.receive_from() == "got hi"
        assert await ws.receive_from() == b"\x01"
        await ws.send_to(data=b"\x02")
    assert app.received[-2:] == [
        {"type": "websocket.receive", "text": None, "bytes": b"\x02"},
        {"type": "websocket.disconnect", "code": 1000, "reason": ""},  # sent by leaving the block
    ]
    assert app.returned


async def test_json_goes_both_ways() -> None:
    app = Recorder(lambda value: [text(value)])  # an echo
    async with WebSocketCommunicator(app) as ws:
        await ws.connect()
        await ws.send_json_to({"a": [1, "é"]})
        assert await ws.receive_json_from() == {"a": [1, "é"]}


async def test_receive_nothing_sees_a_message_the_app_sent() -> None:
    app = Recorder(lambda value: [text("one")] if value == "speak" else [])
    async with WebSocketCommunicator(app) as ws:
        await ws.connect()
        await ws.send_to("stay quiet")
        assert await ws.receive_nothing()
        await ws.send_to("speak")
        assert not await ws.receive_nothing()
        assert await ws.receive_from() == "one"  # receive_nothing left it unread


async def test_a_receive_that_times_out_says_what_it_waited_for() -> None:
    async with WebSocketCommunicator(Recorder(), "/quiet", timeout=QUICK) as ws:
        await ws.connect()
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"the app for /quiet sent nothing within 0\.05 s"):
            await ws.receive_from()
        assert time.monotonic() - started < 1
        assert ws.communicator.future.cancelled()  # asgiref cancels the app on a timeout


async def test_a_call_may_wait_longer_than_the_communicator() -> None:
    async def late(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        await receive()
        await asyncio.sleep(0.2)
        await send({"type": "websocket.close", "code": 1000, "reason": None})

    async with WebSocketCommunicator(late, timeout=QUICK) as ws:
        assert await ws.connect(within=2) == {"type": "websocket.close", "code": 1000, "reason": None}


async def test_an_app_that_returned_fails_the_next_receive_at_once() -> None:
    async def refuses(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008, "reason": "no"})

    async with WebSocketCommunicator(refuses, "/r") as ws:
        assert await ws.connect() == {"type": "websocket.close", "code": 1008, "reason": "no"}
        await ws.wait()
        started = time.monotonic()
        with pytest.raises(UnexpectedMessage, match="the app for /r has returned"):
            await ws.receive_from()
        assert time.monotonic() - started < 0.5  # not after the whole timeout


async def test_an_app_that_crashed_raises_its_own_exception() -> None:
    async def crashes(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        await receive()
        raise KeyError("headers")

    ws = WebSocketCommunicator(crashes)
    await ws.send_input({"type": "websocket.connect"})
    with pytest.raises(KeyError, match="headers"):
        await ws.wait()


async def test_a_message_of_the_wrong_kind_is_named() -> None:
    app = Recorder(lambda value: [{"type": "websocket.close", "code": 1003, "reason": "text only"}])
    async with WebSocketCommunicator(app) as ws:
        await ws.connect()
        await ws.send_to("x")
        with pytest.raises(UnexpectedMessage, match=r"expected websocket.send .*'code': 1003") as caught:
            await ws.receive_from()
        assert caught.value.message == {"type": "websocket.close", "code": 1003, "reason": "text only"}
        assert isinstance(caught.value, AssertionError)  # pytest reports it as a failed check


async def test_receive_close_and_its_default_code() -> None:
    app = Recorder(lambda value: [{"type": "websocket.close"}] if value == "bare" else [text(value)])
    async with WebSocketCommunicator(app) as ws:
        await ws.connect()
        await ws.send_to("bare")
        assert await ws.receive_close() == (1000, "")  # ASGI: code defaults to 1000
        await ws.send_to("not a close")
        with pytest.raises(UnexpectedMessage, match=r"expected websocket\.close"):
            await ws.receive_close()


async def test_receive_json_from_refuses_binary() -> None:
    app = Recorder(lambda value: [{"type": "websocket.send", "text": None, "bytes": b"{}"}])
    async with WebSocketCommunicator(app) as ws:
        await ws.connect()
        await ws.send_to("x")
        with pytest.raises(UnexpectedMessage, match="a text message of JSON"):
            await ws.receive_json_from()


@pytest.mark.parametrize(("text_", "data"), [(None, None), ("a", b"b")])
async def test_send_to_takes_exactly_one_of_text_and_data(text_: str | None, data: bytes | None) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await WebSocketCommunicator(Recorder()).send_to(text_, data)


async def test_disconnect_passes_the_code_and_waits_for_the_app() -> None:
    app = Recorder()
    ws = WebSocketCommunicator(app)
    await ws.connect()
    await ws.disconnect(1001, "bye")
    assert app.returned
    assert app.received[-1] == {"type": "websocket.disconnect", "code": 1001, "reason": "bye"}


async def test_an_app_that_ignores_the_disconnect_fails_the_wait() -> None:
    ws = WebSocketCommunicator(ignores_everything(), "/deaf", timeout=QUICK)
    with pytest.raises(TimeoutError, match=r"the app for /deaf did not return within 0\.05 s"):
        await ws.disconnect()


async def test_leaving_the_block_on_a_failure_cancels_the_app() -> None:
    app = Recorder()
    ws = WebSocketCommunicator(app)

    async def failing_test() -> None:
        async with ws:
            await ws.connect()
            raise RuntimeError("the test failed")

    with pytest.raises(RuntimeError, match="the test failed"):
        await failing_test()
    await asyncio.sleep(0)  # the cancellation takes effect at the app's next turn
    assert ws.communicator.future.cancelled()
    assert not app.returned


async def test_a_whole_scope_may_be_given() -> None:
    scope = websocket_scope("/s", scheme="wss")
    assert WebSocketCommunicator(Recorder(), scope).scope is scope


# --- lifespan -----------------------------------------------------------------------------------------


def lifespan_app(startup: str = "complete", shutdown: str = "complete") -> Callable[..., Awaitable[None]]:
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        assert scope["type"] == "lifespan"
        for phase, answer in (("startup", startup), ("shutdown", shutdown)):
            assert (await receive())["type"] == f"lifespan.{phase}"
            if answer == "silence":
                await asyncio.Event().wait()
            kind = f"lifespan.{phase}.{answer}"
            await send(
                cast(
                    ASGISendEvent, {"type": kind, "message": f"{phase} broke"} if answer == "failed" else {"type": kind}
                )
            )
            if answer == "failed":
                return

    return app


async def test_lifespan_startup_and_shutdown_answers() -> None:
    life = LifespanCommunicator(lifespan_app())
    assert await life.startup() == {"type": "lifespan.startup.complete"}
    assert await life.shutdown() == {"type": "lifespan.shutdown.complete"}
    assert life.communicator.future.done()  # shutdown waits for the app to return


async def test_the_lifespan_block_raises_for_a_failed_startup() -> None:
    with pytest.raises(LifespanFailed, match="lifespan startup failed: startup broke") as caught:
        async with LifespanCommunicator(lifespan_app(startup="failed")):
            pytest.fail("the block must not run")
    assert (caught.value.phase, caught.value.message) == ("startup", "startup broke")


async def test_the_lifespan_block_raises_for_a_failed_shutdown() -> None:
    with pytest.raises(LifespanFailed, match="lifespan shutdown failed: shutdown broke"):
        async with LifespanCommunicator(lifespan_app(shutdown="failed")):
            pass


async def test_a_silent_lifespan_times_out_naming_the_event() -> None:
    life = LifespanCommunicator(lifespan_app(startup="silence"), timeout=QUICK)
    with pytest.raises(TimeoutError, match=r"did not answer lifespan.startup within 0\.05 s"):
        await life.startup()
