"""Who is who on the rooms page (``/chat``), in Debian's Chromium: own lines recognised by uid, two
people of one name told apart, a guest that keeps its uid across reconnects, and a signed-in user
whose token comes from the operator's token URL and is refreshed on the live connection.

The page's moves (open_rooms, say, lines, members) and the network the tests cut (Cable) are
test_rooms_browser.py's. The token tests run the app behind a small ASGI wrapper,
:func:`token_app`, that adds the operator's backend: ``/auth/token`` answers a signed-in
browser (a ``session`` cookie) with a JWT, as docs/identity.md's contract says.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope
from playwright.sync_api import Browser, BrowserContext, Page, WebSocket, expect
from websockets.sync.client import connect

from asgi_chat.identity.names import tag
from tests.e2e.browser_support import TIMEOUT_MS, ContextFactory, browser_contexts
from tests.e2e.test_rooms_browser import (
    CONNECTED,
    Cable,
    cut_off,
    lines,
    members,
    open_rooms,
    reconnect,
    record_frames,
    record_statuses,
    say,
)
from tests.helpers import TIMEOUT, Server, free_port, uvicorn_command

pytestmark = pytest.mark.browser

SECRET = "an operator secret of forty bytes, or so"  # ASGI_CHAT_JWT_SECRET of the token server
FORGED = "not the operator's secret, forty bytes.."
TOKEN_URL = "/auth/token"
TOKEN_SECONDS = 2  # each token's lifetime: the page refreshes it several times within a test
GRACE = 1  # ASGI_CHAT_TOKEN_GRACE: a token not refreshed closes its connection 1 s after exp
# The operator's users, by session cookie: uid (the token's sub), display name, and the key the
# backend signs with (mallory's is not the server's: her token is refused).
SESSIONS = {"ada": ("42", "Ada Lovelace", SECRET), "mallory": ("666", "Mallory", FORGED)}


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("rooms-identity") / "server.log"
    with Server(uvicorn_command(port), port, log) as server:
        yield server
    assert "Traceback" not in log.read_text()


@pytest.fixture
def cable(server: Server) -> Iterator[Cable]:
    cable = Cable(server.port)
    yield cable
    cable.close()


# --- what the tests read off a page --------------------------------------------------------------


def my_uid(page: Page) -> str:
    """The uid the page says is yours: its own entry in the member list ("(you)")."""
    you = page.locator("#members li.you")
    expect(you).to_have_count(1)
    uid = you.get_attribute("data-uid")
    assert uid is not None
    assert uid.startswith("guest:"), uid
    return uid


def drawn(page: Page, selector: str) -> str:
    """What style.css draws for a mark (its ::before content), as a person sees it."""
    content: str = page.locator(selector).evaluate("(mark) => getComputedStyle(mark, '::before').content")
    return content.strip('"')


def history(server: Server, room: str) -> list[dict[str, Any]]:
    """The room's retained lines (up to 100), as the server answers a history request."""
    with connect(f"{server.url}/chat/ws", subprotocols=["asgi-chat.v1"], open_timeout=TIMEOUT) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "hello", "user": "auditor"}))
        ws.send(json.dumps({"type": "join", "room": room, "id": "join"}))
        while (joined := json.loads(ws.recv(TIMEOUT)))["type"] != "joined":
            pass
        ws.send(json.dumps({"type": "history", "room": room, "before": joined["offset"] + 1, "limit": 100}))
        while (frame := json.loads(ws.recv(TIMEOUT)))["type"] != "history":
            pass
        messages: list[dict[str, Any]] = frame["messages"]
        return messages


# --- two people of one name ----------------------------------------------------------------------


def test_two_people_named_alice_see_only_their_own_lines_as_their_own(
    new_context: ContextFactory, server: Server, room: str
) -> None:
    first = open_rooms(new_context(), server.http_url, "Alice", room=room)
    say(first, "I was here first")
    expect(first.locator(".timeline .msg.mine")).to_have_attribute("data-state", "sent")
    expect(members(first)).to_have_text(["Alice"])
    expect(first.locator("#members li .tag")).to_be_hidden()  # one Alice: no tag needed yet
    expect(first.locator(".timeline .msg .meta .tag")).to_be_hidden()

    second = open_rooms(new_context(), server.http_url, "Alice", room=room)
    bob = open_rooms(new_context(), server.http_url, "bob", room=room)
    first_uid, second_uid = my_uid(first), my_uid(second)
    assert first_uid != second_uid  # one name, two people
    say(second, "(impostor) send me your password")
    expect(lines(first)).to_have_text(["I was here first", "(impostor) send me your password"])

    for page, own, other in (
        (first, "I was here first", "(impostor) send me your password"),
        (second, "(impostor) send me your password", "I was here first"),
    ):
        # Your lines, and only yours, are drawn as yours: the same name is not the same person.
        expect(page.locator(".timeline .msg.mine .text")).to_have_text([own])
        expect(page.locator(".timeline .msg.theirs .text")).to_have_text([other])
        # Two Alices in the list, each with her tag (the server's names.tag of her uid), yours marked.
        expect(members(page)).to_have_text(["Alice", "Alice", "bob"])
        for uid in (first_uid, second_uid):
            entry = f'#members li[data-uid="{uid}"]'
            expect(page.locator(f"{entry} .tag")).to_be_visible()
            expect(page.locator(f"{entry} .tag")).to_have_attribute("data-tag", tag(uid))
            expect(page.locator(f"{entry} .guest")).to_be_visible()
            line = f'.timeline .msg[data-uid="{uid}"] .meta .tag'
            expect(page.locator(line)).to_be_visible()  # on the lines too, the first one included
            assert drawn(page, line) == tag(uid)
        expect(page.locator('#members li[data-uid]:has-text("bob") .tag')).to_be_hidden()  # his name is his alone

    expect(first.locator(f'#members li.you[data-uid="{first_uid}"]')).to_have_count(1)
    expect(second.locator(f'#members li.you[data-uid="{second_uid}"]')).to_have_count(1)
    # bob sees two Alices' lines, neither his, each tagged with its own Alice's tag.
    expect(bob.locator(".timeline .msg.mine")).to_have_count(0)
    tags = bob.locator(".timeline .msg .meta .tag")
    expect(tags).to_have_count(2)
    assert [tags.nth(n).get_attribute("data-tag") for n in range(2)] == [tag(first_uid), tag(second_uid)]
    assert drawn(bob, "#members li .guest >> nth=0") == "guest"


# --- a guest keeps its uid -----------------------------------------------------------------------


def test_a_guest_keeps_its_uid_across_a_lost_connection_and_its_line_is_published_once(
    new_context: ContextFactory, server: Server, cable: Cable, room: str
) -> None:
    """The page's say reaches the server, but the ack never comes back (the cable deafened, then
    cut). After the reconnect the page sends the line again, with its id: the server publishes an
    id once per uid, so it publishes nothing new only because the page is still the same guest
    (its guest token in the hello). With a new uid the line would be in the room twice."""
    ada = open_rooms(new_context(), cable.http_url, "ada", room=room, paused=True)
    uid = my_uid(ada)
    sent = record_frames(ada)  # on the next connection

    with connect(f"{server.url}/chat/ws", subprotocols=["asgi-chat.v1"], open_timeout=TIMEOUT) as watcher:  # type: ignore[list-item]
        watcher.send(json.dumps({"type": "hello", "user": "watcher"}))
        watcher.send(json.dumps({"type": "join", "room": room}))
        expect(members(ada)).to_have_text(["ada", "watcher"])
        cable.deafen()
        say(ada, "said once")
        mine = ada.locator(".timeline .msg.mine")
        expect(mine).to_have_attribute("data-state", "sending")
        while (frame := json.loads(watcher.recv(TIMEOUT)))["type"] != "msg":
            pass  # the server published it: the watcher has it
        assert (frame["text"], frame["uid"], frame["guest"]) == ("said once", uid, True)
        say_id = frame["id"]

    cut_off(ada, cable)
    expect(mine).to_have_attribute("data-state", "queued")  # never acked: to be sent again
    reconnect(ada, cable)
    expect(mine).to_have_attribute("data-state", "sent")
    assert my_uid(ada) == uid  # the same guest
    expect(lines(ada)).to_have_text(["said once"])
    says = [frame for frame in sent if frame["type"] == "say"]
    assert [say["id"] for say in says] == [say_id], says  # sent again, under its id
    hellos = [frame for frame in sent if frame["type"] == "hello"]
    assert [set(hello) for hello in hellos] == [{"type", "id", "user", "token"}], hellos
    assert [m["text"] for m in history(server, room)] == ["said once"]  # published once


@pytest.mark.parametrize("keeps_secret", [True, False], ids=["with-ASGI_CHAT_SECRET", "without"])
def test_a_guest_after_a_server_restart(
    new_context: ContextFactory, tmp_path: Path, room: str, keeps_secret: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ASGI_CHAT_SECRET the restarted server accepts the guest token it issued before: the
    same uid. Without it, the server made a new secret and refuses the old token (4401): the page
    drops it and comes back by itself as a new guest of the same name, rather than stopping."""
    port = free_port()
    env = {"ASGI_CHAT_SECRET": "a guest secret of forty bytes, or more.."} if keeps_secret else {}
    if not keeps_secret:  # the suite's servers share one (tests/conftest.py): not this one
        monkeypatch.delenv("ASGI_CHAT_SECRET", raising=False)
    restarted = Server(uvicorn_command(port), port, tmp_path / "server.log", env).start()
    try:
        ada = open_rooms(new_context(), restarted.http_url, "ada", room=room, paused=True)
        uid = my_uid(ada)
        record_statuses(ada)
        restarted.stop()
        expect(ada.locator("#retry")).to_be_visible()
        restarted.start()
        ada.locator("#retry").click()
        expect(ada.locator("#status")).to_have_text("Connected as ada")
        if keeps_secret:
            assert my_uid(ada) == uid
        else:
            assert my_uid(ada) != uid
            shown: list[str] = ada.evaluate("window.__statuses")
            assert any("your guest pass was refused" in status for status in shown), shown
        expect(members(ada)).to_have_text(["ada"])
    finally:
        restarted.stop()


# --- a token from the operator's backend ---------------------------------------------------------


def token_app() -> Any:
    """The chat behind the operator's backend (uvicorn --factory): ``GET /auth/token`` answers a
    browser whose ``session`` cookie names a user with ``{"token": JWT}`` (TOKEN_SECONDS long),
    and anyone else with 401; everything else is the chat's."""
    from asgi_chat import create_app

    chat = create_app()
    lifetime = int(os.environ.get("TEST_TOKEN_SECONDS", "600"))

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "http" and scope["path"] == TOKEN_URL:
            status, body = issue(scope, lifetime)
            headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
            await send({"type": "http.response.start", "status": status, "headers": headers, "trailers": False})
            await send({"type": "http.response.body", "body": json.dumps(body).encode(), "more_body": False})
            return
        await chat(scope, receive, send)

    return app


def issue(scope: HTTPScope, lifetime: int) -> tuple[int, dict[str, Any]]:
    cookies = b";".join(value for name, value in scope["headers"] if name == b"cookie").decode()
    session = dict(part.strip().partition("=")[::2] for part in cookies.split(";") if "=" in part).get("session")
    if session not in SESSIONS:
        return 401, {"error": "not signed in"}
    sub, name, key = SESSIONS[session]
    now = int(time.time())
    return 200, {"token": jwt.encode({"sub": sub, "name": name, "iat": now, "exp": now + lifetime}, key)}


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("rooms-token") / "server.log"
    command = [*uvicorn_command(port, app="tests.e2e.test_rooms_identity_browser:token_app"), "--factory"]
    env = {
        "ASGI_CHAT_JWT_SECRET": SECRET,
        "ASGI_CHAT_TOKEN_URL": TOKEN_URL,
        "ASGI_CHAT_GUESTS": "0",  # a token or nothing: the page must not fall back to a name
        "ASGI_CHAT_TOKEN_GRACE": str(GRACE),
        "TEST_TOKEN_SECONDS": str(TOKEN_SECONDS),
    }
    with Server(command, port, log, env) as server:
        yield server
    assert "Traceback" not in log.read_text()


@pytest.fixture
def token_context(browser: Browser, token_server: Server) -> Iterator[ContextFactory]:
    with browser_contexts(browser, token_server) as make:
        yield make


def signed_in(context: BrowserContext, server: Server, session: str) -> BrowserContext:
    context.add_cookies([{"name": "session", "value": session, "url": server.http_url}])
    return context


def open_socket(page: Page, url: str) -> WebSocket:
    """Load /chat and return the WebSocket it opens."""
    with page.expect_websocket() as opened:
        page.goto(url + "/chat")
    return opened.value


def test_a_signed_in_user_is_named_by_the_token_and_kept_connected_by_refreshes(
    token_context: ContextFactory, token_server: Server
) -> None:
    page = signed_in(token_context(), token_server, "ada").new_page()
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    socket = open_socket(page, token_server.http_url)
    expect(page.locator("#status")).to_have_text("Connected as Ada Lovelace")  # the token's name
    expect(page.locator("#name-form")).to_be_hidden()  # never asked
    expect(page.locator("#rename")).to_be_hidden()
    expect(page.locator("#me-guest")).to_be_hidden()
    expect(members(page)).to_have_text(["Ada Lovelace"])
    expect(page.locator("#members li.you .guest")).to_have_count(0)

    # Each token lives 2 s, and the server closes a connection 1 s after its token's exp: three
    # refreshes on the one connection outlive the first token by far.
    refreshed: list[int] = []  # the expires of each refreshed frame

    def third_refresh(payload: str | bytes) -> bool:
        frame = json.loads(payload)
        if frame["type"] == "refreshed":
            refreshed.append(frame["expires"])
        return len(refreshed) == 3

    socket.wait_for_event("framereceived", predicate=third_refresh, timeout=3 * TOKEN_SECONDS * 1000 + TIMEOUT_MS)
    assert not socket.is_closed()
    assert len(sockets) == 1
    assert refreshed == sorted(refreshed), refreshed  # each a later token than the one before
    expect(page.locator("#status")).to_have_text("Connected as Ada Lovelace")
    say(page, "still here")
    expect(page.locator(".timeline .msg.mine")).to_have_attribute("data-state", "sent")


def test_nobody_signed_in_where_there_are_no_guests_is_told_to_sign_in(
    token_context: ContextFactory, token_server: Server
) -> None:
    context = token_context()
    page = context.new_page()
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.goto(token_server.http_url + "/chat")
    expect(page.locator("#status")).to_have_text(
        "Closed — you are not signed in: sign in, then press Reconnect (this chat has no guests)"
    )
    expect(page.locator("#name-form")).to_be_hidden()  # no name would do
    expect(page.locator("#retry")).to_be_hidden()  # nothing to retry by itself
    assert sockets == []  # no token, no connection

    signed_in(context, token_server, "ada")
    page.locator("#reconnect").click()
    expect(page.locator("#status")).to_have_text("Connected as Ada Lovelace")


def test_a_refused_token_stops_the_page_with_the_reason(token_context: ContextFactory, token_server: Server) -> None:
    page = signed_in(token_context(), token_server, "mallory").new_page()
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.goto(token_server.http_url + "/chat")
    # 4401: not again with the same token, so no reconnect of its own; the reason is the server's.
    expect(page.locator("#status")).to_have_text(
        re.compile(r"^Closed — your sign-in was refused: bad signature.*\(4401\)$")
    )
    expect(page.locator("#reconnect")).to_be_visible()
    expect(page.locator("#retry")).to_be_hidden()
    assert len(sockets) == 1


def test_a_token_left_to_expire_closes_with_4001_and_the_page_comes_back_with_a_new_one(
    token_context: ContextFactory, token_server: Server
) -> None:
    page = signed_in(token_context(), token_server, "ada").new_page()
    page.clock.install()
    page.goto(token_server.http_url + "/chat")
    expect(page.locator("#status")).to_have_text("Connected as Ada Lovelace")
    # The page's clock stops: its refresh never fires (nor its backoff: it waits for "Retry now").
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)
    expect(page.locator("#status")).to_have_text(
        re.compile(r"^Reconnecting — token expired.*\(4001\)"), timeout=(TOKEN_SECONDS + GRACE) * 1000 + TIMEOUT_MS
    )
    page.locator("#retry").click()
    expect(page.locator("#status")).to_have_text(CONNECTED)
    expect(page.locator("#status")).to_have_text("Connected as Ada Lovelace")


# --- refusals in place ---------------------------------------------------------------------------


def test_forbidden_is_shown_where_it_happened_and_the_connection_stays(
    new_context: ContextFactory, tmp_path: Path
) -> None:
    policy = tmp_path / "rooms.toml"
    policy.write_text('[rooms."staff-*"]\nprivate = true\n\n[rooms.announcements]\nread_only = true\n')
    port = free_port()
    with Server(uvicorn_command(port), port, tmp_path / "server.log", {"ASGI_CHAT_ROOM_POLICY": str(policy)}) as server:
        page = open_rooms(new_context(), server.http_url, "ada", room="announcements")
        sockets: list[str] = []
        page.on("websocket", lambda socket: sockets.append(socket.url))

        say(page, "may I?")  # a read-only room: only moderators say
        expect(page.locator(".timeline .msg.mine")).to_have_attribute("data-state", "failed")
        expect(page.locator(".timeline .msg.mine .tick")).to_contain_text("not sent")
        expect(page.locator("#error")).to_have_text(re.compile(r"\(forbidden\)$"))
        expect(page.locator("#message-text")).to_have_value("may I?")  # back in the box

        page.locator("#join-room").fill("staff-red")  # a private room: not in a guest's rooms claim
        page.locator("#join-room").press("Enter")
        expect(page.locator("#join-error")).to_have_text(re.compile(r"^Cannot join staff-red: .*\(forbidden\)$"))
        expect(page.locator("#room-list li")).to_have_text([re.compile("#announcements")])
        expect(page.locator("#status")).to_have_text("Connected as ada")  # the connection stays
        assert sockets == []
    assert "Traceback" not in server.output()


# --- moderation, as the page shows it ------------------------------------------------------------


def test_a_redacted_line_and_a_kick_show_on_the_page(new_context: ContextFactory, tmp_path: Path) -> None:
    """A moderator (a Python client with a moderator's token) removes ada's line, then kicks her:
    her page shows "message removed" in the line's place, then that she was removed."""
    port = free_port()
    with Server(uvicorn_command(port), port, tmp_path / "server.log", {"ASGI_CHAT_JWT_SECRET": SECRET}) as server:
        page = open_rooms(new_context(), server.http_url, "ada", room="lobby")
        say(page, "a line to remove")
        expect(lines(page)).to_have_text(["a line to remove"])
        now = int(time.time())
        claims = {"sub": "meg", "name": "Meg", "roles": ["moderator"], "iat": now, "exp": now + 600}
        with connect(f"{server.url}/chat/ws", subprotocols=["asgi-chat.v1"], open_timeout=TIMEOUT) as meg:  # type: ignore[list-item]
            meg.send(json.dumps({"type": "hello", "token": jwt.encode(claims, SECRET)}))
            meg.send(json.dumps({"type": "redact", "room": "lobby", "offset": 1, "id": "r"}))
            while json.loads(meg.recv(TIMEOUT)).get("id") != "r":
                pass
            expect(page.locator(".timeline .removed")).to_have_text("message removed")
            meg.send(json.dumps({"type": "kick", "room": "lobby", "uid": my_uid(page), "reason": "spam", "id": "k"}))
            while json.loads(meg.recv(TIMEOUT)).get("id") != "k":
                pass
        expect(page.locator(".timeline .note").last).to_have_text("A moderator removed you from this room: spam")
    assert "Traceback" not in server.output()
