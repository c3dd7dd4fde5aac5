"""``asgi-chat.v1`` across real uvicorn processes sharing one real redis-server (issue 12), with
real ``websockets`` clients: one order for every member on every process, a process killed with
SIGKILL, and a deploy that restarts every process; then the same deploy under two tabs of the
``/chat`` page in Chromium. (The outages of Redis itself, and two apps in one event loop, are in
tests/asgi/test_rooms_redis.py: much quicker where no process must die.)
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from websockets.exceptions import ConnectionClosed

from tests.e2e.browser_support import TIMEOUT_MS, launch_chromium
from tests.helpers import TIMEOUT, Server, free_port, uvicorn_command
from tests.redis_support import RedisServer, running_redis
from tests.rooms_support import Frame, Who, WireRoomsClient, presence_of

pytestmark = pytest.mark.redis

ROOM = "lobby"
PRESENCE_TIMEOUT = 1.5  # seconds (ASGI_CHAT_PRESENCE_TIMEOUT): each process sweeps every third of it
SENDERS = 3
LINES = 200  # per sender


class Processes:
    """App processes on free ports, all on one Redis; started on demand, stopped on the way out."""

    def __init__(self, redis_server: RedisServer, directory: Path, stack: ExitStack) -> None:
        self.env = {
            "ASGI_CHAT_STATE_URL": redis_server.url,
            "ASGI_CHAT_PRESENCE_TIMEOUT": str(PRESENCE_TIMEOUT),
            "ASGI_CHAT_RATE_PER_SECOND": "0",  # senders send as fast as they can
            "ASGI_CHAT_PRESENCE_INTERVAL": "0",  # a presence frame per change: each is checked alone
            # Guests on, several processes: one secret for their guest tokens, as a deployment has.
            "ASGI_CHAT_SECRET": "one secret for every process of the test deployment",
        }
        self.directory = directory
        self.stack = stack

    def start(self, name: str) -> Server:
        port = free_port()
        server = Server(uvicorn_command(port), port, self.directory / f"{name}.log", self.env)
        return self.stack.enter_context(server)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with running_redis(tmp_path) as redis_server, ExitStack() as stack:
        yield Processes(redis_server, tmp_path, stack)
    for log in tmp_path.glob("*.log"):
        output = log.read_text(errors="replace")
        assert "Traceback" not in output, f"{log.name}: {output}"


async def joined(server: Server, user: str, **join: object) -> tuple[WireRoomsClient, Frame]:
    client = await WireRoomsClient.connect(server.url, user)
    return client, await client.join(ROOM, **join)


async def greeted(server: Server, user: str) -> tuple[WireRoomsClient, Frame]:
    """A new guest on ``server``, past hello: its connection, and its welcome (uid, guest token)."""
    client = await WireRoomsClient.connect(server.url)
    return client, await client.hello(user)


async def tab(server: Server, welcome: Frame, **join: object) -> tuple[WireRoomsClient, Frame]:
    """Another connection of the person ``welcome`` greeted, on ``server`` (any process: they
    share the secret that signs guest tokens), joined to ROOM: it, and its ``joined`` frame."""
    client = await WireRoomsClient.connect(server.url)
    await client.request("hello", user=welcome["user"], token=welcome["token"])
    assert (await client.expect("welcome"))["uid"] == welcome["uid"]
    return client, await client.join(ROOM, **join)


async def msgs(client: WireRoomsClient, count: int, acks: int = 0) -> tuple[list[Frame], list[Frame]]:
    """The next ``count`` msg frames and ``acks`` ack frames; presence may come between them, and
    nothing else (in particular no gap)."""
    messages: list[Frame] = []
    acked: list[Frame] = []
    while len(messages) < count or len(acked) < acks:
        frame = await client.frame()
        if frame["type"] == "msg":
            messages.append(frame)
        elif frame["type"] == "ack":
            acked.append(frame)
        else:
            assert frame["type"] == "presence", frame
    return messages, acked


async def say_lines(client: WireRoomsClient, first: int, last: int) -> list[Frame]:
    """Say "line first" to "line last", each acked with its own offset; the lines as msg frames."""
    for n in range(first, last + 1):
        await client.say(ROOM, f"line {n}", id=str(n))
    said, acks = await msgs(client, last - first + 1, last - first + 1)
    assert [(ack["id"], ack["offset"]) for ack in acks] == [(str(n), n) for n in range(first, last + 1)]
    return said


def presence(user: Who, event: str) -> Frame:
    return presence_of(ROOM, **{event: (user,)})


async def next_non_msg(client: WireRoomsClient) -> Frame:
    while (frame := await client.frame())["type"] == "msg":
        pass
    return frame


async def close_code(client: WireRoomsClient) -> int | None:
    """Read on until the server closes (presence frames may come first); its close code."""
    try:
        while True:
            frame = await client.frame()
            assert frame["type"] == "presence", frame
    except ConnectionClosed as closing:
        return closing.rcvd.code if closing.rcvd else None


async def nothing_within(client: WireRoomsClient, seconds: float) -> bool:
    """True when no frame comes within ``seconds`` (cancelling a websockets recv loses nothing)."""
    try:
        frame = await asyncio.wait_for(client.ws.recv(), seconds)
    except TimeoutError:
        return True
    raise AssertionError(f"expected nothing, got {frame!r}")


# --- one room, two processes -----------------------------------------------------------------------


async def test_three_senders_on_two_processes_every_member_gets_1_to_600_in_one_order(processes: Processes) -> None:
    a, b = processes.start("a"), processes.start("b")
    senders = [(await joined(server, f"sender-{n}"))[0] for n, server in enumerate((a, b, a))]
    receivers = [(await joined(server, f"receiver-{n}"))[0] for n, server in enumerate((a, b))]
    total = SENDERS * LINES
    readers = [asyncio.create_task(msgs(client, total, LINES)) for client in senders]
    readers += [asyncio.create_task(msgs(client, total)) for client in receivers]
    for line in range(LINES):  # the three interleaved, without waiting for acks: all in flight
        for n, sender in enumerate(senders):
            await sender.say(ROOM, f"{n}:{line}", id=f"{n}-{line}")
    results = await asyncio.wait_for(asyncio.gather(*readers), TIMEOUT * 2)
    reference = results[0][0]
    for messages, _ in results:
        assert [frame["offset"] for frame in messages] == list(range(1, total + 1))  # no hole, no duplicate
        assert messages == reference  # the same frames in the same order on both processes
    for n in range(SENDERS):
        own = [frame for frame in reference if frame["user"] == f"sender-{n}"]
        assert [frame["text"] for frame in own] == [f"{n}:{line}" for line in range(LINES)]  # in the order said
        acks = results[n][1]
        assert [(ack["id"], ack["offset"]) for ack in acks] == [(frame["id"], frame["offset"]) for frame in own]
    for client in (*senders, *receivers):
        await client.close()


# --- a process dies without a word -----------------------------------------------------------------


async def test_a_killed_process_has_its_users_announced_as_left_once_by_the_others(processes: Processes) -> None:
    a, b, c = processes.start("a"), processes.start("b"), processes.start("c")
    watcher_b, _ = await joined(b, "watcher-b")
    watcher_c, _ = await joined(c, "watcher-c")
    ada, ada_welcome = await greeted(a, "ada")  # only on a
    await ada.join(ROOM)
    bob_a, bob = await greeted(a, "bob")  # on a and on b (one uid): still here after a dies
    await bob_a.join(ROOM)
    bob_b, entered = await tab(b, bob)
    assert entered["presence"] == ["ada", "bob", "watcher-b", "watcher-c"]
    said = await say_lines(watcher_b, 1, 1)  # every join announced before this line
    watchers = (watcher_c, bob_b)  # watcher_b, the one that says the lines, is read by say_lines
    for watcher in watchers:
        assert (await msgs(watcher, 1))[0] == said

    loop = asyncio.get_running_loop()
    killed = loop.time()
    a.stop(signal.SIGKILL)  # no leave, no EXIT: a's presence entries simply stop being refreshed
    for watcher in (watcher_b, *watchers):  # announced by the processes alive, to their members
        assert await next_non_msg(watcher) == presence(ada_welcome, "leave")  # her uid, her name
    elapsed = loop.time() - killed
    assert elapsed < PRESENCE_TIMEOUT * 4 / 3 + 0.5, elapsed  # the deadline, then the next sweep
    # Every process alive sweeps again within a third of the timeout: no second leave of ada,
    # and none of bob, whose entry on b is refreshed.
    quiet = await asyncio.gather(*(nothing_within(watcher, PRESENCE_TIMEOUT / 3 + 0.3) for watcher in watchers))
    assert quiet == [True, True]
    said = await say_lines(watcher_b, 2, 2)
    for watcher in watchers:
        assert await watcher.frame() == said[0]
    _, entered = await joined(c, "late")
    assert entered["presence"] == ["bob", "late", "watcher-b", "watcher-c"]
    for client in (watcher_b, watcher_c, bob_b, ada, bob_a):
        client.kill()


# --- a deploy: every process restarted -------------------------------------------------------------


async def test_a_deploy_restarting_every_process_loses_nothing_clients_resume_exactly(processes: Processes) -> None:
    a, b = processes.start("a"), processes.start("b")
    ada, entered = await joined(a, "ada")
    epoch = entered["epoch"]
    bob, entered = await joined(b, "bob")
    assert entered["epoch"] == epoch
    history = await say_lines(ada, 1, 10)
    assert (await msgs(bob, 10))[0] == history  # identical frames, offsets and all, on both processes

    a.stop()  # a rolling deploy: a first, while b serves
    assert await close_code(ada) == 1012  # uvicorn's "service restart"
    history += await say_lines(bob, 11, 20)  # missed by ada
    a.start()
    ada, entered = await joined(a, "ada", since={"epoch": epoch, "offset": 10})
    assert (entered["epoch"], entered["offset"]) == (epoch, 20)  # the same history: no reset
    assert (await msgs(ada, 10))[0] == history[10:]  # every missed line, once, then nothing else

    b.stop()
    assert await close_code(bob) == 1012
    history += await say_lines(ada, 21, 30)  # missed by bob
    b.start()
    bob, entered = await joined(b, "bob", since={"epoch": epoch, "offset": 20})
    assert (entered["epoch"], entered["offset"]) == (epoch, 30)
    assert (await msgs(bob, 10))[0] == history[20:]

    history += await say_lines(bob, 31, 31)  # and live on both again
    assert (await msgs(ada, 1))[0] == history[30:]
    for client in (ada, bob):
        await client.close()


# --- the same deploy, in the browser ---------------------------------------------------------------


def open_tab(browser: Browser, server: Server, name: str) -> Page:
    """A person's tab on ``server``'s /chat (a context of its own: its own localStorage), named,
    in the lobby, connected. Its clock is paused, so the page reconnects exactly when the test
    clicks "Retry now" (as in test_rooms_browser.py), not after a backoff the test would wait out."""
    page = browser.new_context().new_page()
    page.clock.install()
    page.goto(server.http_url + "/chat")
    page.locator("#name-input").fill(name)
    page.locator("#name-input").press("Enter")
    expect(page.locator("#status")).to_have_text(f"Connected as {name}")
    expect(page.locator("#room-list [data-joined=true]")).to_have_count(1)
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)
    return page


def say_sent(page: Page, text: str) -> None:
    """Type a line and wait for its ack: shown as sent."""
    page.locator("#message-text").fill(text)
    page.locator("#message-text").press("Enter")
    expect(page.locator(".timeline .msg.mine").last).to_have_attribute("data-state", "sent")


def stop_under(page: Page, server: Server) -> None:
    """Stop ``server`` (uvicorn closes with 1012): ``page`` waits to reconnect until the test has
    started it again (:func:`back`) and clicked "Retry now"."""
    server.stop()
    expect(page.locator("#retry")).to_be_visible()


def back(page: Page, server: Server, name: str) -> None:
    server.start()
    page.locator("#retry").click()
    expect(page.locator("#status")).to_have_text(f"Connected as {name}")


@pytest.mark.browser
def test_two_tabs_on_two_processes_chat_through_redis_and_a_deploy_shows_no_reset_and_no_gap(
    processes: Processes,
) -> None:
    a, b = processes.start("a"), processes.start("b")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            ada, bob = open_tab(browser, a, "ada"), open_tab(browser, b, "bob")
            for page in (ada, bob):
                expect(page.locator("#members li")).to_have_text(["ada", "bob"])  # one presence across both
            said = ["hello from a"]
            say_sent(ada, said[-1])
            expect(bob.locator(".timeline .msg .text")).to_have_text(said)

            stop_under(ada, a)  # the deploy: a first, while b serves
            said.append("said while a restarts")
            say_sent(bob, said[-1])
            back(ada, a, "ada")
            expect(ada.locator(".timeline .msg .text")).to_have_text(said)  # the missed line, once

            stop_under(bob, b)  # then b, while a serves
            said.append("said while b restarts")
            say_sent(ada, said[-1])
            back(bob, b, "bob")
            said.append("after the deploy")
            say_sent(bob, said[-1])
            for page in (ada, bob):
                expect(page.locator(".timeline .msg .text")).to_have_text(said)
                expect(page.locator(".timeline .note")).to_have_count(0)  # no "History was reset", no gap
        finally:
            browser.close()
