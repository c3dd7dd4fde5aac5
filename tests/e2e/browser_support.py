"""What the browser tests share: launching Debian's Chromium, and the moves a person makes on the pages.

Playwright's own browser download is not used: CI installs Debian's ``chromium`` package and the
tests drive that binary. Every wait is a Playwright ``expect`` bounded by the suite's ``TIMEOUT``.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, WebError, WebSocket, expect, sync_playwright

from tests.helpers import TIMEOUT, Server

# Headless without the services a fresh profile would start (sync, updates, first-run UI);
# --no-sandbox because CI runs as root; --disable-dev-shm-usage for containers' small /dev/shm.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

TIMEOUT_MS = TIMEOUT * 1000


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, or a failure that says how to install it (CI skips nothing)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("the browser tests need Chromium on PATH: apt-get install -y chromium", pytrace=False)
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


def wait_until_idle(server: Server, timeout: float = TIMEOUT) -> None:
    """Wait (bounded) until ``server`` has no WebSocket open, so that one test's goodbyes
    ("Client #1 left the chat") are over before the next test's pages join the same chat."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(server.http_url + "/healthz", timeout=timeout) as response:
            if json.load(response)["connections"] == 0:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"WebSockets still open on {server.http_url} after {timeout} s")
        time.sleep(0.02)  # polling: the server has no event to wait on


def record_sockets(page: Page) -> list[str]:
    """The URL of every WebSocket ``page`` opens from now on."""
    urls: list[str] = []

    def opened(socket: WebSocket) -> None:
        urls.append(socket.url)

    page.on("websocket", opened)
    return urls


def expect_state(page: Page, state: str, timeout: float = TIMEOUT_MS) -> None:
    """Wait for the status line's ``data-state`` (connecting, connected, reconnecting, closed, idle)."""
    expect(page.locator("#status")).to_have_attribute("data-state", state, timeout=timeout)


def open_chat(context: BrowserContext, base_url: str, client_id: int | None = None) -> Page:
    """A new tab on the chat page, connected. ``client_id`` presets the id the tab remembers in
    sessionStorage (as if it had been reloaded), for pictures that stay the same from run to run."""
    page = context.new_page()
    if client_id is not None:
        page.add_init_script(f"sessionStorage.setItem('asgi_chat.client_id', '{client_id}')")
    page.goto(base_url + "/")
    expect_state(page, "connected")
    return page


def client_id(page: Page) -> str:
    text = page.locator("#ws-id").text_content() or ""
    assert text.isdigit(), f"no client id shown: {text!r}"
    return text


def send(page: Page, text: str) -> None:
    """Type ``text`` into the message box and press Enter, as a person would."""
    page.locator("#messageText").fill(text)
    page.locator("#messageText").press("Enter")


def messages(page: Page) -> list[str]:
    return page.locator("#messages li").all_text_contents()


def side_by_side(browser: Browser, left: bytes, right: bytes, captions: tuple[str, str], path: Path) -> None:
    """Save two page screenshots next to each other as one PNG, without an image library: a
    blank page shows both as data: URLs, and its body (sized to fit them) is screenshotted."""
    images = "".join(
        f'<figure><figcaption>{caption}</figcaption><img src="data:image/png;base64,{_b64(png)}"></figure>'
        for caption, png in zip(captions, (left, right), strict=True)
    )
    style = (
        "body{margin:0;padding:16px;display:inline-flex;gap:16px;background:#cfd5df;font:14px system-ui}"
        "figure{margin:0}figcaption{padding:0 0 6px 4px;color:#333}"
        "img{display:block;border-radius:8px;box-shadow:0 2px 8px #0003}"
    )
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    try:
        page.set_content(f"<!DOCTYPE html><style>{style}</style>{images}")
        page.locator("body").screenshot(path=str(path))
    finally:
        page.close()


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


DESKTOP = {"width": 900, "height": 640}
ContextFactory = Callable[..., BrowserContext]


@contextmanager
def browser_contexts(browser: Browser, server: Server) -> Iterator[ContextFactory]:
    """Make browser contexts (a desktop-sized window unless told otherwise; each its own
    localStorage, so its own person); every one is closed afterwards, and an uncaught error in
    any of their pages fails the test."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def record(error: WebError) -> None:
        errors.append(f"{error.page.url if error.page else '?'}: {error.error}")

    def make(**options: Any) -> BrowserContext:
        context = browser.new_context(**{"viewport": DESKTOP, **options})
        context.set_default_timeout(TIMEOUT_MS)
        context.on("weberror", record)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    wait_until_idle(server)
    assert errors == [], f"uncaught errors in the pages: {errors}"


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium under Playwright, with every ``expect`` bounded by TIMEOUT_MS."""
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()
