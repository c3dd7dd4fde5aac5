"""The pages in a real browser: Debian's Chromium, driven by Playwright, against ``uvicorn asgi_chat:app``.

Chromium and one server (on a free port, never 8000) start once for the module; each test gets
fresh browser contexts (their own cookies and storage), and the next test starts only when the
chat is empty again. Tests that stop the server or change its settings run their own. Any
uncaught error in a page fails the test that caused it. The README's screenshot
(docs/screenshot-chat.png) is taken here.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    FloatRect,
    Locator,
    Response,
    expect,
)

from tests.e2e.browser_support import (
    TIMEOUT_MS,
    ContextFactory,
    client_id,
    expect_state,
    messages,
    open_chat,
    record_sockets,
    send,
    side_by_side,
)
from tests.helpers import ROOT, Server, free_port, uvicorn_command

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
# After a restart the page retries with a backoff (0.25-0.5 s, then 0.5-1 s, 1-2 s, 2-4 s...):
# room for a slow server start plus the next retry.
RECONNECT_MS = 3 * TIMEOUT_MS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("browser") / "server.log"
    with Server(uvicorn_command(port), port, log) as server:
        yield server


@pytest.fixture
def context(new_context: ContextFactory) -> BrowserContext:
    return new_context()


def box(locator: Locator) -> FloatRect:
    rect = locator.bounding_box()
    assert rect is not None, f"{locator} is not visible"
    return rect


# --- the chat page --------------------------------------------------------------------------


def test_two_tabs_chat_both_ways_until_one_leaves(context: BrowserContext, server: Server) -> None:
    first = open_chat(context, server.http_url)
    second = open_chat(context, server.http_url)
    one, two = client_id(first), client_id(second)
    assert one != two

    send(first, "hello from the first tab")
    expect(second.locator("#messages li")).to_have_text([f"Client #{one} says: hello from the first tab"])
    send(second, "and back from the second")
    expect(first.locator("#messages li")).to_have_text(
        [
            "You wrote: hello from the first tab",
            f"Client #{one} says: hello from the first tab",
            f"Client #{two} says: and back from the second",
        ]
    )

    # Your own lines (what you wrote, and everyone's copy of it) on the right; others' on the left.
    list_box = box(first.locator("#messages"))
    right_edge, left_edge = list_box["x"] + list_box["width"], list_box["x"]
    for item, side in zip(first.locator("#messages li").all(), ["right", "right", "left"], strict=True):
        rect = box(item)
        if side == "right":
            assert rect["x"] + rect["width"] > right_edge - 20, (item.text_content(), rect, list_box)
        else:
            assert rect["x"] < left_edge + 20, (item.text_content(), rect, list_box)

    second.close()
    expect(first.locator("#messages li").last).to_have_text(f"Client #{two} left the chat")


def test_html_in_a_message_stays_text(context: BrowserContext, server: Server) -> None:
    first = open_chat(context, server.http_url)
    second = open_chat(context, server.http_url)
    dialogs: list[str] = []
    for page in (first, second):
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    payload = "<img src=x onerror=alert(1)>"

    send(first, payload)
    expect(second.locator("#messages li")).to_have_text([f"Client #{client_id(first)} says: {payload}"])
    expect(first.locator("#messages li")).to_have_count(2)
    for page in (first, second):
        expect(page.locator("#messages img")).to_have_count(0)  # innerHTML would have made one
    assert dialogs == []


def test_enter_sends_and_an_empty_box_sends_nothing(context: BrowserContext, server: Server) -> None:
    page = open_chat(context, server.http_url)
    send(page, "")
    send(page, "   ")
    send(page, "something")
    # Had the empty or blank line gone out, its "You wrote:" would come first.
    expect(page.locator("#messages li")).to_have_text(
        ["You wrote: something", f"Client #{client_id(page)} says: something"]
    )
    expect(page.locator("#messageText")).to_have_value("")


def test_phone_sized_screen_scrolls_to_the_newest(new_context: ContextFactory, server: Server) -> None:
    context = new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = open_chat(context, server.http_url)
    for number in range(12):  # 24 lines: more than the screen holds
        send(page, f"line {number}")
    items = page.locator("#messages li")
    expect(items).to_have_count(24)
    expect(items.last).to_have_text(f"Client #{client_id(page)} says: line 11")

    expect(items.last).to_be_in_viewport()
    expect(items.first).not_to_be_in_viewport()  # the list did overflow: it was scrolled
    expect(page.locator("#messageText")).to_be_in_viewport()
    expect(page.locator("#send")).to_be_in_viewport()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scroll


def test_page_reconnects_after_a_server_restart(context: BrowserContext, tmp_path: Path) -> None:
    port = free_port()
    server = Server(uvicorn_command(port), port, tmp_path / "server.log").start()
    try:
        first = open_chat(context, server.http_url)
        second = open_chat(context, server.http_url)
        sockets = record_sockets(first)
        one = client_id(first)

        server.stop()  # uvicorn closes every WebSocket with 1012, "service restart"
        expect_state(first, "reconnecting")
        # uvicorn sends 1012 whether it restarts or stops: the page says no more than that.
        expect(first.locator("#messages li")).to_have_text(
            ["Disconnected: the server closed the connection (1012: restart or stop)"]
        )

        server.start()
        for page in (first, second):
            expect_state(page, "connected", timeout=RECONNECT_MS)
        assert client_id(first) == one
        send(first, "still here")
        expect(second.locator("#messages li").last).to_have_text(f"Client #{one} says: still here")
    finally:
        server.stop()
    assert sockets
    assert set(sockets) == {f"ws://127.0.0.1:{port}/ws/{one}"}  # same id on every attempt


def test_no_reconnect_after_a_deliberate_close(context: BrowserContext, tmp_path: Path) -> None:
    """1008 and 1009 mean the server refused on purpose: the page says why and waits for the user."""
    port = free_port()
    limits = {"ASGI_CHAT_RATE_PER_SECOND": "0.001", "ASGI_CHAT_RATE_BURST": "1", "ASGI_CHAT_MAX_MESSAGE_BYTES": "8"}
    with Server(uvicorn_command(port), port, tmp_path / "server.log", limits) as server:
        page = open_chat(context, server.http_url)
        for lines, reason in [
            (["one", "two"], r"too many messages.*\(1008\)"),  # a burst of one message
            (["longer than eight bytes"], r"message too big.*\(1009\)"),
        ]:
            for line in lines:
                send(page, line)
            # A page about to retry would say "reconnecting" from the moment of the close.
            expect_state(page, "closed")
            expect(page.locator("#status")).to_contain_text(re.compile(reason))
            page.locator("#reconnect").click()
            expect_state(page, "connected")
            expect(page.locator("#reconnect")).to_be_hidden()


def test_client_id_survives_a_reload_and_differs_per_tab(context: BrowserContext, server: Server) -> None:
    page = open_chat(context, server.http_url)
    mine = client_id(page)
    page.reload()
    expect_state(page, "connected")
    assert client_id(page) == mine

    # window.open() gives the new tab a copy of the opener's sessionStorage, id included.
    with page.expect_popup() as popup_info:
        page.evaluate("window.open(location.href)")
    popup = popup_info.value
    expect_state(popup, "connected")
    other = open_chat(context, server.http_url)
    assert len({mine, client_id(popup), client_id(other)}) == 3


# --- the echo and items pages ---------------------------------------------------------------


def test_echo_page_connects_and_disconnects(context: BrowserContext, server: Server) -> None:
    page = context.new_page()
    page.goto(server.http_url + "/echo")
    expect_state(page, "connected")
    page.locator("#disconnect").click()
    expect_state(page, "closed")
    expect(page.locator("#send")).to_be_disabled()
    page.locator("#connect").click()
    expect_state(page, "connected")
    send(page, "ping")
    expect(page.locator("#messages li")).to_have_text(["Message text was: ping"])


def test_echo_page_reconnects_and_items_page_offers_reconnect_after_a_restart(
    context: BrowserContext, tmp_path: Path
) -> None:
    port = free_port()
    server = Server(uvicorn_command(port), port, tmp_path / "server.log").start()
    try:
        echo = context.new_page()
        echo.goto(server.http_url + "/echo")
        items = context.new_page()
        items.goto(server.http_url + "/items")
        items.locator("#connect").click()
        for page in (echo, items):
            expect_state(page, "connected")
        expect(items.locator("#connect")).to_have_text("Connect")

        server.stop()  # uvicorn closes every WebSocket with 1012, whether it restarts or stops
        expect_state(echo, "reconnecting")
        expect_state(items, "closed")  # the items page waits for the person: its credential is theirs
        expect(items.locator("#status")).to_have_text(
            "Closed — the server closed the connection (1012: restart or stop)"
        )
        expect(items.locator("#connect")).to_have_text("Reconnect")

        server.start()
        expect_state(echo, "connected", timeout=RECONNECT_MS)  # by itself, as the chat page does
        send(echo, "back")
        expect(echo.locator("#messages li")).to_have_text(["Message text was: back"])
        items.locator("#connect").click()
        expect_state(items, "connected")
        expect(items.locator("#connect")).to_have_text("Connect")
        send(items, "hi")
        expect(items.locator("#messages li").last).to_have_text("Message text was: hi, for item ID: foo")
    finally:
        server.stop()


def test_retry_now_reconnects_without_waiting_out_the_backoff(context: BrowserContext, tmp_path: Path) -> None:
    port = free_port()
    server = Server(uvicorn_command(port), port, tmp_path / "server.log").start()
    try:
        page = context.new_page()
        page.clock.install()
        page.goto(server.http_url + "/echo")
        expect_state(page, "connected")
        expect(page.locator("#retry")).to_be_hidden()
        # The page's clock stops here: its backoff timer can never fire, so only the button can
        # start the next attempt.
        page.clock.pause_at(page.evaluate("Date.now()") + 1000)

        server.stop()
        expect_state(page, "reconnecting")
        expect(page.locator("#status")).to_contain_text("retrying in")
        server.start()
        page.locator("#retry").click()
        expect_state(page, "connected")
        expect(page.locator("#retry")).to_be_hidden()
        send(page, "at once")
        expect(page.locator("#messages li")).to_have_text(["Message text was: at once"])
    finally:
        server.stop()


def test_items_page_sends_the_token_as_a_subprotocol(context: BrowserContext, server: Server) -> None:
    page = context.new_page()
    sockets = record_sockets(page)
    page.goto(server.http_url + "/items")
    page.locator("#q").fill("5")
    page.locator("#connect").click()
    expect_state(page, "connected")
    send(page, "hi")
    expect(page.locator("#messages li")).to_have_text(
        [
            "Session cookie or query token value is: some-key-token",
            "Query parameter q is: 5",
            "Message text was: hi, for item ID: foo",
        ]
    )
    # No cookie and no token in the URL: the server found it in the subprotocols.
    assert sockets == [f"ws://127.0.0.1:{server.port}/items/foo/ws?q=5"]
    assert context.cookies() == []


def test_items_page_without_a_token_shows_the_refusal(context: BrowserContext, server: Server) -> None:
    page = context.new_page()
    page.goto(server.http_url + "/items")
    page.locator("#token").fill("")
    page.locator("#connect").click()
    expect_state(page, "closed")
    expect(page.locator("#status")).to_contain_text("refused: check the token")


def test_items_page_explains_a_token_that_cannot_be_a_subprotocol(context: BrowserContext, server: Server) -> None:
    page = context.new_page()
    sockets = record_sockets(page)
    page.goto(server.http_url + "/items")
    page.locator("#token").fill("two words")  # new WebSocket() would throw a SyntaxError
    page.locator("#connect").click()
    expect(page.locator("#status")).to_contain_text("a token can hold only letters, digits")
    expect_state(page, "idle")
    assert sockets == []


# --- another site ---------------------------------------------------------------------------

# What a hostile page would run: open the items WebSocket (the browser attaches the user's cookie
# for 127.0.0.1, whatever the port) and report what happened.
PROBE = """url => new Promise(done => {
  const ws = new WebSocket(url);
  ws.onmessage = event => { ws.close(); done("message: " + event.data); };
  ws.onopen = () => ws.send("hi");
  ws.onclose = event => done("closed: " + event.code);
})"""


@pytest.fixture
def other_site() -> Iterator[str]:
    """A page on another origin (same host, another port): a site the user happens to visit."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!DOCTYPE html><title>another site</title><p>Nothing to see here."
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{site.server_address[1]}/"
    site.shutdown()
    site.server_close()


def test_another_site_cannot_use_the_users_cookie(context: BrowserContext, server: Server, other_site: str) -> None:
    context.add_cookies([{"name": "session", "value": "users-session", "url": server.http_url}])
    items_socket = f"ws://127.0.0.1:{server.port}/items/foo/ws"

    own = context.new_page()
    own.goto(server.http_url + "/items")
    assert own.evaluate(PROBE, items_socket) == "message: Session cookie or query token value is: users-session"

    foreign = context.new_page()
    foreign.goto(other_site)
    # The server answered the handshake with 403 (foreign Origin); the browser reports 1006.
    assert foreign.evaluate(PROBE, items_socket) == "closed: 1006"


# --- all pages ------------------------------------------------------------------------------


def test_pages_connect_to_the_port_they_were_served_from(context: BrowserContext, server: Server) -> None:
    port = server.port
    assert port != 8000
    page = context.new_page()
    sockets = record_sockets(page)
    page.goto(server.http_url + "/echo")
    expect_state(page, "connected")
    page.goto(server.http_url + "/items")
    page.locator("#connect").click()
    expect_state(page, "connected")
    page.goto(server.http_url + "/")
    expect_state(page, "connected")
    assert sockets == [
        f"ws://127.0.0.1:{port}/ws",
        f"ws://127.0.0.1:{port}/items/foo/ws",
        f"ws://127.0.0.1:{port}/ws/{client_id(page)}",
    ]


CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@pytest.mark.parametrize(("path", "state"), [("/", "connected"), ("/echo", "connected"), ("/items", "idle")])
def test_pages_load_only_their_own_files(context: BrowserContext, server: Server, path: str, state: str) -> None:
    page = context.new_page()
    responses: list[Response] = []
    console_errors: list[str] = []  # CSP violations are reported here

    def record_response(response: Response) -> None:
        responses.append(response)

    page.on("response", record_response)

    def record_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    page.on("console", record_console)
    page.goto(server.http_url + path)
    expect_state(page, state)

    assert page.evaluate("document.compatMode") == "CSS1Compat"  # <!DOCTYPE html>: no quirks mode
    assert page.evaluate("getComputedStyle(document.body).display") == "flex"  # style.css applied
    expect(page.locator("script:not([src]), [style]")).to_have_count(0)  # nothing inline
    assert console_errors == []
    origin = server.http_url + "/"
    assert {response.url for response in responses} >= {
        f"{origin}static/style.css",
        f"{origin}static/common.js",
    }
    for response in responses:
        assert response.url.startswith(origin), response.url  # nothing from anywhere else
        headers = response.all_headers()
        assert headers["etag"].startswith('"'), response.url
        assert headers["cache-control"] == "no-cache", response.url
        suffix = Path(response.url).suffix
        if suffix in CONTENT_TYPES:
            assert headers["content-type"] == CONTENT_TYPES[suffix], response.url


def test_screenshot_of_two_tabs_chatting(browser: Browser, new_context: ContextFactory, server: Server) -> None:
    """docs/screenshot-chat.png, shown in the README. Fixed client ids keep it the same from run to run."""
    context = new_context(viewport={"width": 480, "height": 560}, color_scheme="light")
    first = open_chat(context, server.http_url, client_id=314159)
    second = open_chat(context, server.http_url, client_id=271828)
    send(first, "Hello! Anyone here?")
    expect(second.locator("#messages li")).to_have_count(1)
    send(second, "Yes, in the other tab. It works!")
    expect(first.locator("#messages li")).to_have_count(3)
    send(first, "<b>HTML</b> stays text, as it should")
    expect(second.locator("#messages li")).to_have_count(4)
    expect(first.locator("#messages li")).to_have_count(5)
    left, right = (page.screenshot(animations="disabled") for page in (first, second))

    path = ROOT / "docs" / "screenshot-chat.png"
    side_by_side(browser, left, right, ("Tab 1", "Tab 2"), path)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert messages(second)[-1] == "Client #314159 says: <b>HTML</b> stays text, as it should"
