"""The rooms page (``/chat``) in a real browser: Debian's Chromium, driven by Playwright, against
``uvicorn asgi_chat:app`` speaking ``asgi-chat.v1`` on ``/chat/ws``.

A lost connection is a real one: the page that loses it is served through :class:`Cable`, a TCP
relay the test cuts (every connection through it dropped at once, new ones refused until it is
joined again), so the browser sees what a dead network looks like (close code 1006, no close
frame) while the page stays open. Playwright's ``context.set_offline(True)`` would not do: in
this Chromium it leaves open WebSockets untouched.

Those tests also pause the page's clock, as ``test_browser.py``'s "retry now" test does: the
backoff's timer never fires, so the reconnect happens exactly when the test clicks "Retry now".
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    WebSocket,
    expect,
)
from redis import Redis
from websockets.sync.client import ClientConnection, connect

from tests.e2e.browser_support import (
    TIMEOUT_MS,
    ContextFactory,
)
from tests.helpers import TIMEOUT, Server, free_port, uvicorn_command
from tests.redis_support import running_redis

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
RECONNECT_MS = 3 * TIMEOUT_MS  # a server restart plus the backoff's next attempt (see test_browser.py)
CONNECTED = re.compile(r"^Connected as .")
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
OUTBOX_SIZE = "Object.keys(localStorage).filter(key => key.startsWith('asgi_chat.rooms.outbox.')).length"


# --- a network that can be cut -----------------------------------------------------------------


class Cable:
    """A TCP relay from a port of its own to the server's: the test's network, which it can cut.

    :meth:`cut` aborts every connection through it and refuses new ones; :meth:`join` lets them
    through again; :meth:`deafen` drops what the server sends from then on, until the cut (what
    the client sends still arrives: a request the server handles, whose answer is lost). It runs
    its own event loop in a thread, beside Playwright's synchronous API.
    """

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.connected = True
        self.deaf = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._relay, "127.0.0.1", 0))
        self.port: int = self._server.sockets[0].getsockname()[1]

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        self._call(self._cut())

    def join(self) -> None:
        self.connected = True
        self.deaf = False

    def deafen(self) -> None:
        self.deaf = True

    def close(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT)
        self._loop.close()

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(TIMEOUT)

    async def _cut(self) -> None:
        self.connected = False
        for writer in self._writers:
            writer.transport.abort()  # no close frame, no goodbye: the cable is gone
        self._writers.clear()

    async def _close(self) -> None:
        await self._cut()
        self._server.close()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.connected:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer, downstream=True))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, downstream: bool = False) -> None:
        try:
            while data := await reader.read(65536):
                if downstream and self.deaf:
                    continue  # lost on the way: the client never hears it
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("rooms-browser") / "server.log"
    # The rate limit off for seed(), which writes a room's history faster than a person would.
    with Server(uvicorn_command(port), port, log, {"ASGI_CHAT_RATE_PER_SECOND": "0"}) as server:
        yield server
    assert "Traceback" not in log.read_text()


@pytest.fixture
def cable(server: Server) -> Iterator[Cable]:
    cable = Cable(server.port)
    yield cable
    cable.close()


# --- what a person does on the page --------------------------------------------------------------


def open_rooms(
    context: BrowserContext, base_url: str, name: str | None = None, *, room: str | None = None, paused: bool = False
) -> Page:
    """A new tab on /chat, connected. ``name``: typed into the form the page asks it with (a tab
    of a context that has chosen its name already is not asked). ``room``: the room a first
    visit joins, instead of the lobby. ``paused``: the page's timers never fire (the backoff
    waits for "Retry now")."""
    page = context.new_page()
    if room is not None:
        key = "asgi_chat.rooms.joined"
        page.add_init_script(f"localStorage.getItem('{key}') ?? localStorage.setItem('{key}', '[\"{room}\"]')")
    if paused:
        page.clock.install()
    page.goto(base_url + "/chat")
    if name is not None:
        expect(page.locator("#name-form")).to_be_visible()
        page.locator("#name-input").fill(name)
        page.locator("#name-input").press("Enter")
    expect(page.locator("#status")).to_have_text(f"Connected as {name}" if name else CONNECTED)
    expect(page.locator("#room-list [data-joined=true]")).not_to_have_count(0)
    if paused:
        page.clock.pause_at(page.evaluate("Date.now()") + 1000)
    return page


def say(page: Page, text: str) -> None:
    page.locator("#message-text").fill(text)
    page.locator("#message-text").press("Enter")


def lines(page: Page, room: str | None = None) -> Locator:
    """The text of every line in ``room``'s timeline (the current room's), in the order shown."""
    timeline = f'.timeline[data-room="{room}"]' if room else ".timeline:not([hidden])"
    return page.locator(f"{timeline} .msg .text")


def members(page: Page) -> Locator:
    return page.locator("#members li")


def join_room(page: Page, room: str) -> None:
    page.locator("#join-room").fill(room)
    page.locator("#join-room").press("Enter")
    expect(page.locator("#room-title")).to_have_text(f"#{room}")
    expect(page.locator('#room-list [aria-current="true"][data-joined="true"]')).to_have_count(1)


def record_frames(page: Page) -> list[dict[str, Any]]:
    """Every frame ``page`` sends on a WebSocket from now on, decoded."""
    frames: list[dict[str, Any]] = []

    def opened(socket: WebSocket) -> None:
        socket.on("framesent", lambda payload: frames.append(json.loads(payload)))

    page.on("websocket", opened)
    return frames


def cut_off(page: Page, cable: Cable) -> None:
    cable.cut()
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("#retry")).to_be_visible()  # the page's clock is paused: it waits for this button


def reconnect(page: Page, cable: Cable) -> None:
    cable.join()
    page.locator("#retry").click()
    expect(page.locator("#status")).to_have_text(CONNECTED)


def connections(server: Server) -> int:
    with urllib.request.urlopen(server.http_url + "/healthz", timeout=TIMEOUT) as response:
        return int(json.load(response)["connections"])


def wait_for_connections(server: Server, count: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while connections(server) != count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{connections(server)} WebSockets open, not {count}")
        time.sleep(0.02)  # polling: the server has no event to wait on


def seed(server: Server, room: str, count: int) -> None:
    """``count`` lines in ``room``, said by "archivist" over a plain WebSocket client."""
    with connect(f"{server.url}/chat/ws", subprotocols=["asgi-chat.v1"], open_timeout=TIMEOUT) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "hello", "user": "archivist"}))
        ws.send(json.dumps({"type": "join", "room": room}))
        for number in range(1, count + 1):
            ws.send(json.dumps({"type": "say", "room": room, "text": f"old line {number}", "id": str(number)}))
        while json.loads(ws.recv(TIMEOUT)).get("id") != str(count):
            pass  # up to the last line's ack


def say_acked(ws: ClientConnection, room: str, *texts: str) -> list[int]:
    """Say ``texts`` in ``room`` over a plain WebSocket client already joined there; their offsets,
    from their acks (each say's id is its text)."""
    for text in texts:
        ws.send(json.dumps({"type": "say", "room": room, "text": text, "id": text}))
    acks: dict[str, int] = {}
    while len(acks) < len(texts):
        frame = json.loads(ws.recv(TIMEOUT))
        if frame["type"] == "ack":
            acks[frame["id"]] = frame["offset"]
    return [acks[text] for text in texts]


# --- the tests -------------------------------------------------------------------------------------


def test_the_page_loads_only_its_own_files_and_is_linked_from_the_chat(
    new_context: ContextFactory, server: Server
) -> None:
    page = new_context().new_page()
    console_errors: list[str] = []  # CSP violations are reported here

    def record_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    page.on("console", record_console)
    urls: list[str] = []
    page.on("response", lambda response: urls.append(response.url))
    page.goto(server.http_url + "/")
    page.get_by_role("link", name="Rooms").click()
    expect(page).to_have_url(server.http_url + "/chat")
    expect(page.locator("#name-input")).to_be_focused()  # asked once, before anything else
    page.locator("#name-input").fill("  ada  ")
    page.locator("#name-input").press("Enter")
    expect(page.locator("#status")).to_have_text("Connected as ada")  # the name as the server normalised it
    expect(page.locator("#members li")).to_have_text(["ada"])

    expect(page.locator("script:not([src]), [style]")).to_have_count(0)  # nothing inline
    assert page.evaluate("getComputedStyle(document.querySelector('.rooms-layout')).display") == "grid"
    assert console_errors == []
    assert all(url.startswith(server.http_url + "/") for url in urls), urls
    assert {f"{server.http_url}/static/{name}" for name in ("rooms.js", "rooms-view.js", "style.css")} <= set(urls)


def test_two_people_chat_see_who_is_online_and_unread_counts(
    new_context: ContextFactory, server: Server, room: str
) -> None:
    ada = open_rooms(new_context(), server.http_url, "ada", room=room)
    phone = new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    bob = open_rooms(phone, server.http_url, "bob", room=room)
    expect(members(ada)).to_have_text(["ada", "bob"])  # bob's arrival, live
    expect(members(bob)).to_have_text(["ada", "bob"])  # the list joined gave him

    dialogs: list[str] = []
    bob.on("dialog", lambda dialog: dialogs.append(dialog.message))
    say(ada, "<img src=x onerror=alert(1)>")
    expect(lines(bob)).to_have_text(["<img src=x onerror=alert(1)>"])
    expect(bob.locator(".timeline .msg .who")).to_have_text(["ada"])
    expect(bob.locator(".timeline .msg time")).to_have_attribute("datetime", ISO_TIME)
    expect(bob.locator(".timeline img")).to_have_count(0)
    # Your own line once (no "You wrote" and "says"), marked sent when its ack came.
    expect(lines(ada)).to_have_text(["<img src=x onerror=alert(1)>"])
    expect(ada.locator(".timeline .msg.mine")).to_have_attribute("data-state", "sent")

    say(bob, "hi ada")
    expect(lines(ada)).to_have_text(["<img src=x onerror=alert(1)>", "hi ada"])

    # In another room, lines in the first one count as unread until you look.
    join_room(ada, room[:60] + "-dev")
    expect(members(ada)).to_have_text(["ada"])
    say(bob, "are you there?")
    first = ada.locator("#room-list li").filter(has_text=f"#{room}").first
    expect(first.locator(".unread")).to_have_text("1")
    first.locator("button").click()
    expect(first.locator(".unread")).to_be_hidden()
    expect(lines(ada)).to_have_text(["<img src=x onerror=alert(1)>", "hi ada", "are you there?"])

    bob.locator("#leave").click()
    expect(members(ada)).to_have_text(["ada"])
    expect(bob.locator("#room-list li")).to_have_count(0)
    assert dialogs == []

    # A phone-sized screen: everything reachable, nothing wider than the screen.
    join_room(bob, room)
    expect(bob.locator("#message-text")).to_be_in_viewport()
    expect(bob.locator("#room-list")).to_be_in_viewport()
    assert bob.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_one_name_in_two_tabs_is_one_presence_entry(new_context: ContextFactory, server: Server, room: str) -> None:
    bob = open_rooms(new_context(), server.http_url, "bob", room=room)
    adas = new_context()
    first = open_rooms(adas, server.http_url, "ada", room=room)
    second = open_rooms(adas, server.http_url, room=room)  # the same person's second tab: not asked again
    expect(second.locator("#status")).to_have_text("Connected as ada")
    for page in (bob, first, second):
        expect(members(page)).to_have_text(["ada", "bob"])

    first.close()
    wait_for_connections(server, 2)
    say(second, "still here")  # after any presence frame the close caused, on bob's connection
    expect(lines(bob)).to_have_text(["still here"])
    expect(members(bob)).to_have_text(["ada", "bob"])  # ada still has a tab in the room

    second.close()
    expect(members(bob)).to_have_text(["bob"])


def test_a_lost_connection_gets_the_missed_lines_once(
    new_context: ContextFactory, server: Server, cable: Cable, room: str
) -> None:
    ada = open_rooms(new_context(), cable.http_url, "ada", room=room, paused=True)
    bob = open_rooms(new_context(), server.http_url, "bob", room=room)
    say(bob, "before")
    expect(lines(ada)).to_have_text(["before"])
    sent = record_frames(ada)

    cut_off(ada, cable)
    expect(members(bob)).to_have_text(["bob"])  # the server saw ada go
    for text in ("missed 1", "missed 2", "missed 3"):
        say(bob, text)
    expect(lines(bob)).to_have_count(4)

    expect(ada.locator("#message-text")).to_have_attribute("placeholder", "Offline: lines are sent when you are back")
    reconnect(ada, cable)
    expect(lines(ada)).to_have_text(["before", "missed 1", "missed 2", "missed 3"])
    expect(ada.locator("#message-text")).to_have_attribute("placeholder", f"Message #{room}")  # back, not offline
    expect(members(bob)).to_have_text(["ada", "bob"])
    expect(members(ada)).to_have_text(["ada", "bob"])
    say(bob, "after")
    expect(lines(ada)).to_have_text(["before", "missed 1", "missed 2", "missed 3", "after"])
    expect(ada.locator(".timeline .note")).to_have_count(0)  # all recovered: nothing to report
    # It resumed from the last line it had seen, rather than asking for history again.
    joins = [frame for frame in sent if frame["type"] == "join"]
    assert [(join["room"], join["since"]["offset"]) for join in joins] == [(room, 1)], joins


def test_a_line_typed_offline_is_sent_once_after_the_reconnect(
    new_context: ContextFactory, server: Server, cable: Cable, room: str
) -> None:
    ada = open_rooms(new_context(), cable.http_url, "ada", room=room, paused=True)
    bob = open_rooms(new_context(), server.http_url, "bob", room=room)

    sent = record_frames(ada)
    cut_off(ada, cable)
    say(ada, "typed offline")
    mine = ada.locator(".timeline .msg.mine")
    expect(mine).to_have_attribute("data-state", "queued")
    expect(ada.locator("#message-text")).to_have_attribute(
        "placeholder", "Offline: lines are sent when you are back (1 waiting)"
    )
    assert ada.evaluate(OUTBOX_SIZE) == 1

    reconnect(ada, cable)
    expect(mine).to_have_attribute("data-state", "sent")
    expect(lines(bob)).to_have_text(["typed offline"])
    say(bob, "got it")  # any second copy would have reached bob before this line
    expect(lines(bob)).to_have_text(["typed offline", "got it"])
    expect(lines(ada)).to_have_text(["typed offline", "got it"])
    assert ada.evaluate(OUTBOX_SIZE) == 0
    assert [frame["text"] for frame in sent if frame["type"] == "say"] == ["typed offline"]


def test_a_server_restart_shows_that_history_was_reset(new_context: ContextFactory, tmp_path: Path, room: str) -> None:
    port = free_port()
    restarted = Server(uvicorn_command(port), port, tmp_path / "server.log").start()
    try:
        # ada's page waits for "Retry now"; carol's comes back by itself, after its backoff.
        ada = open_rooms(new_context(), restarted.http_url, "ada", room=room, paused=True)
        carol = open_rooms(new_context(), restarted.http_url, "carol", room=room)
        say(ada, "before the restart")
        expect(lines(carol)).to_have_text(["before the restart"])

        restarted.stop()  # the memory store goes with the process: a new epoch after the restart
        for page in (ada, carol):
            expect(page.locator("#status")).to_contain_text("Reconnecting — the server closed the connection (1012")
        expect(ada.locator("#status")).to_contain_text("retrying in")
        expect(ada.locator("#retry")).to_be_visible()
        restarted.start()
        expect(carol.locator("#status")).to_have_text("Connected as carol", timeout=RECONNECT_MS)
        expect(carol.locator(".timeline .note")).to_have_text([re.compile("^History was reset")])
        expect(carol.locator("#message-text")).to_have_attribute("placeholder", f"Message #{room}")
        say(carol, "said after the restart")
        expect(carol.locator(".timeline .msg.mine")).to_have_attribute("data-state", "sent")

        ada.locator("#retry").click()
        expect(ada.locator("#status")).to_have_text("Connected as ada")
        # The note, then what the new history holds already: carol's line, fetched after the reset.
        expect(lines(ada)).to_have_text(["before the restart", "said after the restart"])
        expect(ada.locator(".timeline li")).to_have_class(["msg mine", "note", "msg theirs"])
        expect(ada.locator(".timeline .note")).to_have_text([re.compile("^History was reset")])
        say(ada, "and back")
        expect(lines(carol)).to_have_text(["before the restart", "said after the restart", "and back"])
    finally:
        restarted.stop()


def test_history_on_join_and_load_earlier(new_context: ContextFactory, server: Server, room: str) -> None:
    seed(server, room, 70)
    page = open_rooms(new_context(), server.http_url, "ada")
    join_room(page, room)
    expect(lines(page, room)).to_have_text([f"old line {n}" for n in range(21, 71)])  # history: 50
    expect(page.locator("#room-list li").filter(has_text=f"#{room}").locator(".unread")).to_be_hidden()

    page.locator("#load-earlier").click()
    expect(lines(page, room)).to_have_text([f"old line {n}" for n in range(1, 71)])
    expect(page.locator("#load-earlier")).to_be_hidden()  # nothing older


def test_errors_from_the_server_are_shown_next_to_the_input(
    new_context: ContextFactory, server: Server, room: str
) -> None:
    page = open_rooms(new_context(), server.http_url, "ada", room=room)
    too_long = "x" * 4001  # ASGI_CHAT_MAX_TEXT_CHARS is 4000
    say(page, too_long)
    expect(page.locator("#error")).to_have_text("text is longer than 4000 characters (too_large)")
    expect(page.locator(".timeline .msg.mine")).to_have_attribute("data-state", "failed")
    expect(page.locator("#message-text")).to_have_value(too_long)  # back in the box, to shorten

    page.locator("#rename").click()
    page.locator("#name-input").fill("a" * 33)
    page.locator("#name-input").press("Enter")
    expect(page.locator("#name-error")).to_contain_text("bad_name")
    page.locator("#name-input").fill("ada lovelace")
    page.locator("#name-input").press("Enter")
    expect(page.locator("#status")).to_have_text("Connected as ada lovelace")


def test_the_message_box_is_ready_after_a_first_join_and_after_a_reload(
    new_context: ContextFactory, server: Server, room: str
) -> None:
    # It once said "Offline: lines are sent when you are back" while connected, until you switched
    # rooms or sent a line: the joined frame did not redraw it.
    ready = f"Message #{room}"
    context = new_context()
    page = open_rooms(context, server.http_url, "ada", room=room)  # a new visitor: the name, the first join
    expect(page.locator("#message-text")).to_have_attribute("placeholder", ready)
    page.reload()
    expect(page.locator("#status")).to_have_text("Connected as ada")
    expect(page.locator('#room-list [data-joined="true"]')).to_have_count(1)
    expect(page.locator("#message-text")).to_have_attribute("placeholder", ready)
    second = open_rooms(context, server.http_url, room=room)  # a second tab: the name remembered, not asked
    expect(second.locator("#message-text")).to_have_attribute("placeholder", ready)


@pytest.mark.redis
def test_a_live_reset_on_redis_then_a_lost_connection_shows_every_new_line_once(
    new_context: ContextFactory, tmp_path: Path, room: str
) -> None:
    """Redis flushed while the page is in a room: the room's history starts again at 1 while the
    page's last position there (its joined frame's top) is 5. The page must take its position
    from the reset itself, or its resume after a lost connection skips lines 3 to 5 silently."""
    with running_redis(tmp_path) as redis_server:
        port = free_port()
        env = {
            "ASGI_CHAT_STATE_URL": redis_server.url,
            "ASGI_CHAT_RATE_PER_SECOND": "0",
            "ASGI_CHAT_SECRET": "a guest secret of forty bytes, or more..",  # required with guests on Redis
        }
        with Server(uvicorn_command(port), port, tmp_path / "server.log", env) as server:
            cable = Cable(server.port)
            try:
                seed(server, room, 5)  # the room's top is 5 when ada joins
                ada = open_rooms(new_context(), cable.http_url, "ada", room=room, paused=True)
                old = [f"old line {n}" for n in range(1, 6)]
                expect(lines(ada)).to_have_text(old)
                with connect(f"{server.url}/chat/ws", subprotocols=["asgi-chat.v1"], open_timeout=TIMEOUT) as bob:  # type: ignore[list-item]
                    bob.send(json.dumps({"type": "hello", "user": "bob"}))
                    bob.send(json.dumps({"type": "join", "room": room}))
                    expect(members(ada)).to_have_text(["ada", "bob"])  # bob is in: his lines reach ada live

                    with Redis.from_url(redis_server.url) as admin:
                        admin.flushall()
                    assert say_acked(bob, room, "new 1", "new 2") == [1, 2]  # a new epoch, from 1
                    new = [f"new {n}" for n in range(1, 6)]
                    expect(lines(ada)).to_have_text(old + new[:2])  # after the live reset
                    expect(ada.locator(".timeline .note")).to_have_text([re.compile("^History was reset")])

                    cut_off(ada, cable)
                    assert say_acked(bob, room, "new 3", "new 4", "new 5") == [3, 4, 5]
                    reconnect(ada, cable)
                    # Every line of the new epoch, once each, and no other note: nothing was lost.
                    expect(lines(ada)).to_have_text(old + new)
                    expect(ada.locator(".timeline .note")).to_have_count(1)
                    assert say_acked(bob, room, "new 6") == [6]
                    expect(lines(ada)).to_have_text([*old, *new, "new 6"])
            finally:
                cable.close()
        assert "Traceback" not in server.output()


def test_a_page_closed_for_its_rate_comes_back_by_itself(
    new_context: ContextFactory, tmp_path: Path, room: str
) -> None:
    """1008 for the rate is temporary (issue 18): the rooms page reconnects after it, and what it
    had not sent goes out once; after any other 1008 it would wait for the user (test_browser.py)."""
    port = free_port()
    # A bucket of 4 that never refills: hello and join take 2, so the third line is one too many.
    limits = {"ASGI_CHAT_RATE_PER_SECOND": "0.001", "ASGI_CHAT_RATE_BURST": "4"}
    with Server(uvicorn_command(port), port, tmp_path / "server.log", limits) as server:
        page = open_rooms(new_context(), server.http_url, "ada", room=room)
        record_statuses(page)
        for text in ("one", "two", "three"):
            say(page, text)
        expect(page.locator("#status")).to_have_text("Connected as ada", timeout=RECONNECT_MS)
        expect(lines(page)).to_have_text(["one", "two", "three"], timeout=RECONNECT_MS)
        expect(page.locator('.timeline .msg.mine[data-state="sent"]')).to_have_count(3)  # each once
        expect(page.locator("#reconnect")).to_be_hidden()
        shown: list[str] = page.evaluate("window.__statuses")
        assert any("too many messages" in status for status in shown), shown


def record_statuses(page: Page) -> None:
    """Keep every text the status line shows from now on in ``window.__statuses``."""
    page.evaluate(
        """() => {
            window.__statuses = [];
            const status = document.getElementById("status");
            new MutationObserver(() => window.__statuses.push(status.textContent))
                .observe(status, { childList: true, characterData: true, subtree: true });
        }"""
    )
