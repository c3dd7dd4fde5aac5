"""``asgi_chat.client`` against a real server (``uvicorn asgi_chat:app`` on a free port): a bot's
round trip, what the server refuses, its rate limit (1008, then back), a token refreshed on the
live connection (no 4001, no reconnect), an exact ``trimmed`` gap, and the chaos test: a client
whose TCP connection is cut 50 times at random points, while the server restarts once, sees every
message once in offset order or an exact gap (the restart's ``reset``), and each of its says is
published once.

The reconnect policy for every close code (4001, 4401 and 4403 included) and what exactly a
reconnect sends are in tests/e2e/test_client_scripted.py; the same chaos on two processes sharing
Redis in tests/e2e/test_client_redis.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import jwt
import pytest

from asgi_chat.client import (
    Client,
    Disconnected,
    Event,
    Gap,
    Message,
    Presence,
    Refreshed,
    Refused,
    State,
    Welcome,
)
from tests.e2e.client_support import FAST, Proxy, Timeline, whole_history
from tests.helpers import ROOT, TIMEOUT, Server, free_port, uvicorn_command

ROOM = "lobby"
# No rate limit, every message kept and replayable: any gap would be the client's fault.
KEEP_ALL = {"ASGI_CHAT_RATE_PER_SECOND": "0", "ASGI_CHAT_HISTORY_MESSAGES": "0", "ASGI_CHAT_REPLAY_MAX": "0"}
# Guests keep their uid across a restart only with the same secret (docs/identity.md): the chaos
# test's restarted server must know its guests, or a resent say would come from a stranger.
SECRET = {"ASGI_CHAT_SECRET": "a test secret of thirty-two bytes or more, fixed"}
CUTS = 50  # the subject's connection is cut this many times
RESTART_AT = 25  # ...and the server restarts after this many of them
OWN_EVERY = 10  # the subject says a line of its own each time the talker has said this many
MAX_LINES = 5000  # the talker's bound: far more than 50 cuts need

E = TypeVar("E")


def serving(directory: Path, env: dict[str, str]) -> Server:
    port = free_port()
    return Server(uvicorn_command(port), port, directory / f"server-{port}.log", env)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path, KEEP_ALL) as running:
        yield running
    assert "Traceback" not in running.output(), running.output()


async def next_of(chat: Client, kind: type[E]) -> E:
    """The next event of type ``kind`` (others are read past), within TIMEOUT."""
    async with asyncio.timeout(TIMEOUT):
        async for event in chat:
            if isinstance(event, kind):
                return event
    raise AssertionError("the events ended")


# --- a bot's round trip, and what the server refuses ------------------------------------------------


async def test_a_bot_joins_says_reads_history_and_members_and_leaves(server: Server) -> None:
    async with Client(server.url, user="ada") as ada, Client(server.url, user="bob") as bob:
        a, b = ada.name, bob.name  # the names as the server's welcomes gave them
        assert a is not None
        assert b is not None
        joined = await ada.join(ROOM)
        assert (joined.offset, joined.presence, joined.count) == (0, (a,), 1)
        assert (await bob.join(ROOM, presence=False)).presence is None
        assert await next_of(ada, Presence) == Presence(ROOM, (b,), ())
        assert await ada.say(ROOM, "one") == 1
        assert await bob.say(ROOM, "two") == 2
        said = [
            (line.offset, line.user, line.text) for line in (await next_of(bob, Message), await next_of(bob, Message))
        ]
        assert said == [(1, a, "one"), (2, b, "two")]
        assert [(line.offset, line.user, line.text) for line in await ada.history(ROOM)] == said
        assert [(line.offset, line.text) for line in await ada.history(ROOM, before=2, limit=1)] == [(1, "one")]
        members = await ada.members(ROOM)
        assert (sorted(members.members), members.count) == (sorted([a, b]), 2)
        await bob.leave(ROOM)
        assert await next_of(ada, Presence) == Presence(ROOM, (), (b,))
        with pytest.raises(ValueError, match="join it first"):
            await bob.say(ROOM, "not in it any more")


async def test_a_late_joiner_asks_for_history_and_gets_those_lines_then_live_ones(server: Server) -> None:
    async with Client(server.url, user="ada") as ada:
        await ada.join(ROOM)
        for n in range(1, 6):
            await ada.say(ROOM, f"line {n}")
        async with Client(server.url, user="bob") as bob:
            assert (await bob.join(ROOM, history=2)).offset == 5
            await ada.say(ROOM, "line 6")
            lines = [(await next_of(bob, Message)).text for _ in range(3)]
            assert lines == ["line 4", "line 5", "line 6"]


async def test_the_server_refuses_a_bad_room_and_a_text_too_long_and_the_client_goes_on(server: Server) -> None:
    async with Client(server.url, user="ada") as ada:
        with pytest.raises(Refused) as bad_room:
            await ada.join("Not A Room")
        assert bad_room.value.code == "bad_room"
        await ada.join(ROOM)
        with pytest.raises(Refused) as too_large:
            await ada.say(ROOM, "x" * 4001)  # ASGI_CHAT_MAX_TEXT_CHARS: 4000
        assert too_large.value.code == "too_large"
        assert await ada.say(ROOM, "still here") == 1  # a refusal answers one request, nothing more


# --- the examples of the docs are real bots --------------------------------------------------------


def example(page: str, heading: str, name: str) -> Callable[[str], Coroutine[Any, Any, None]]:
    """The coroutine function ``name`` of the first python block after ``heading`` in ``page``."""
    found = re.search(rf"^## {heading}\n.*?^```python\n(.*?)^```", (ROOT / page).read_text(), re.M | re.S)
    assert found is not None, f"{page} has no python block under {heading!r}"
    namespace: dict[str, Any] = {"__name__": "example"}  # not "__main__": its asyncio.run stays put
    exec(compile(found.group(1), page, "exec"), namespace)
    bot: Callable[[str], Coroutine[Any, Any, None]] = namespace[name]
    return bot


async def in_room_with(chat: Client, user: str) -> None:
    """Join ROOM with ``chat`` and wait until ``user`` (as the server shows names) is there too."""
    if user not in ((await chat.join(ROOM)).presence or ()):
        while user not in (await next_of(chat, Presence)).joins:
            pass


async def next_from(chat: Client, user: str) -> Message:
    """The next message that ``user`` said (others' are read past)."""
    while (line := await next_of(chat, Message)).user != user:
        pass
    return line


async def test_the_readme_bot_answers_ping(server: Server) -> None:
    bot = asyncio.create_task(example("README.md", "A bot in Python", "ping_bot")(server.url))
    try:
        async with Client(server.url, user="ada") as ada:
            await in_room_with(ada, "ping-bot")
            await ada.say(ROOM, "ping")
            assert (await next_from(ada, "ping-bot")).text == f"pong, {ada.name}"
    finally:
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bot


async def test_the_client_pages_bot_greets_whoever_joins(server: Server) -> None:
    bot = asyncio.create_task(example("docs/client.md", "A bot", "greeter")(server.url))
    try:
        async with Client(server.url, user="watcher") as watcher:
            await in_room_with(watcher, "greeter")
            async with Client(server.url, user="ada") as ada:
                await ada.join(ROOM)
                assert ada.name is not None
                # The watcher may be greeted first, or with ada: joins within one presence window
                # come in one frame, and are greeted together ("welcome, ada, watcher!").
                for _ in range(2):
                    greeting = (await next_from(watcher, "greeter")).text
                    if ada.name in greeting:
                        break
                assert re.fullmatch(rf"welcome, (.+, )?{re.escape(ada.name)}(, .+)?!", greeting), greeting
    finally:
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bot


# --- the rate limit: closed with 1008, back after a backoff, each say once -----------------------------


async def test_a_client_closed_for_its_rate_comes_back_and_publishes_each_say_once(tmp_path: Path) -> None:
    """30 says at once against a burst of 8: the server closes with 1008 "too many messages"; the
    client waits, reconnects, rejoins and resends what was not acked, with the same ids, until
    everything is acked. The server published each line once."""
    env = {"ASGI_CHAT_RATE_PER_SECOND": "200", "ASGI_CHAT_RATE_BURST": "8"}
    with serving(tmp_path, env) as server:
        async with Client(server.url, user="ada", backoff=FAST) as ada:
            await ada.join(ROOM)
            texts = [f"burst {n}" for n in range(30)]
            offsets = await asyncio.wait_for(asyncio.gather(*(ada.say(ROOM, text) for text in texts)), TIMEOUT)
            drop = await next_of(ada, Disconnected)
            assert (drop.code, drop.reason[:17]) == (1008, "too many messages")
            history = await whole_history(ada, ROOM, max(offsets))
    assert sorted(line.text for line in history) == sorted(texts)  # each once: none lost, none twice
    assert {line.text: line.offset for line in history} == dict(zip(texts, offsets, strict=True))


# --- a token refreshed on the live connection -------------------------------------------------------------

JWT_SECRET = "an operator secret of forty bytes, or so"  # ASGI_CHAT_JWT_SECRET: HS256
TOKEN_SECONDS = 2  # each token's life (exp); the server closes 1 s after it (ASGI_CHAT_TOKEN_GRACE)


def operator_token(name: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": f"u-{name}", "name": name, "iat": now, "exp": now + TOKEN_SECONDS}, JWT_SECRET)


async def test_a_token_refreshed_on_the_live_connection_keeps_it_open_for_three_lifetimes(tmp_path: Path) -> None:
    """Tokens of 2 s, a grace of 1 s: without a refresh the server would close with 4001 at 3 s.
    The client sends get_token's token in a refresh before each expiry, on the same connection:
    no 4001, no reconnect, for at least three tokens' lifetimes."""
    env = {**KEEP_ALL, "ASGI_CHAT_JWT_SECRET": JWT_SECRET, "ASGI_CHAT_TOKEN_GRACE": "1"}
    issued: list[int] = []  # the exp (ms) of each token get_token handed out

    async def get_token() -> str:
        token = operator_token("ada")
        issued.append(jwt.decode(token, JWT_SECRET, algorithms=["HS256"])["exp"] * 1000)
        return token

    with serving(tmp_path, env) as server:
        async with Client(server.url, user="ada", token=operator_token("ada"), get_token=get_token) as chat:
            started = time.monotonic()
            await chat.join(ROOM)
            events: list[Event] = []
            async with asyncio.timeout(TIMEOUT + 3 * TOKEN_SECONDS):
                async for event in chat:  # refreshed frames, about one a second, until 3 lifetimes passed
                    events.append(event)
                    if isinstance(event, Refreshed) and time.monotonic() - started >= 3 * TOKEN_SECONDS:
                        break
            offset = await asyncio.wait_for(chat.say(ROOM, "still on the first connection"), TIMEOUT)
            events.append(await next_of(chat, Message))  # that line, on the same connection
            assert chat.state is State.CONNECTED
    welcome, *rest = events
    assert isinstance(welcome, Welcome)
    assert (welcome.user, welcome.guest) == ("ada", False)
    assert [event for event in rest if isinstance(event, (Disconnected, Welcome))] == []  # no 4001, no reconnect
    refreshed = [event for event in rest if isinstance(event, Refreshed)]
    assert len(refreshed) >= 3
    assert [event.expires for event in refreshed] == issued[: len(refreshed)]  # get_token's tokens, in order
    line = rest[-1]
    assert isinstance(line, Message)
    assert (line.offset, line.user, line.uid, line.text) == (offset, "ada", "u-ada", "still on the first connection")
    assert "Traceback" not in server.output()


# --- away longer than history: an exact gap ------------------------------------------------------------


async def test_a_client_away_longer_than_history_gets_an_exact_trimmed_gap_then_the_rest(tmp_path: Path) -> None:
    env = {"ASGI_CHAT_RATE_PER_SECOND": "0", "ASGI_CHAT_HISTORY_MESSAGES": "20"}
    with serving(tmp_path, env) as server:
        async with (
            Proxy([server.port], random.Random(1), cuts=0, budget=(1, 1)) as proxy,
            Client(proxy.url, user="away", backoff=FAST) as away,
            Client(server.url, user="ada") as ada,
        ):
            await away.join(ROOM)
            await ada.join(ROOM)
            assert await ada.say(ROOM, "line 1") == 1
            assert (await next_of(away, Message)).offset == 1
            proxy.down = True  # the network is out: every try fails, no resume yet
            proxy.cut_all()
            assert (await next_of(away, Disconnected)).retry_in is not None
            for n in range(2, 51):
                await ada.say(ROOM, f"line {n}")
            proxy.down = False
            # History keeps 31 to 50: 2 to 30 are gone, and the gap says so, exactly.
            assert await next_of(away, Gap) == Gap(ROOM, "trimmed", first=2, last=30)
            assert [(await next_of(away, Message)).offset for _ in range(20)] == list(range(31, 51))


# --- chaos: 50 cuts at random points, one server restart -----------------------------------------------


class Chaos:
    """The talker says lines directly to the server; the subject, behind the cutting proxy, says one
    of its own every OWN_EVERY of them; the auditor (direct, never cut) watches as a reference."""

    def __init__(self, server: Server, proxy: Proxy) -> None:
        self.server, self.proxy = server, proxy
        self.talker = Client(server.url, user="talker", backoff=FAST)
        self.auditor = Client(server.url, user="auditor", backoff=FAST)
        self.subject = Client(proxy.url, user="subject", backoff=FAST)
        self.restarted = asyncio.Event()
        self.own_due: asyncio.Queue[int | None] = asyncio.Queue()
        self.own: dict[str, int] = {}  # the subject's lines -> the offsets its says returned
        self.drops = 0  # the subject's lost connections

    async def restart(self) -> None:
        await self.proxy.reached(RESTART_AT).wait()
        await asyncio.to_thread(self.server.stop)  # uvicorn closes every WebSocket with 1012
        await asyncio.to_thread(self.server.start)  # the memory store starts empty: a new epoch
        self.restarted.set()

    async def talk(self) -> int:
        said = 0
        while said < MAX_LINES and not (self.proxy.cuts >= CUTS and self.restarted.is_set()):
            said += 1
            await self.talker.say(ROOM, f"talk {said}")
            if said % OWN_EVERY == 0:
                self.own_due.put_nowait(said)
        self.own_due.put_nowait(None)
        return said

    async def say_own(self) -> None:
        while (due := await self.own_due.get()) is not None:
            text = f"own {due}"
            self.own[text] = await self.subject.say(ROOM, text)

    async def watch(self, client: Client, timeline: Timeline, last: str) -> None:
        """Check every message and gap of ``client`` until the talker's ``last`` line."""
        async for event in client:
            if isinstance(event, (Message, Gap)):
                timeline.add(event)
                if isinstance(event, Message) and event.text == last:
                    return
            elif isinstance(event, Disconnected) and client is self.subject:
                self.drops += 1


async def test_chaos_50_cuts_and_a_restart_every_message_once_or_an_exact_gap_each_say_once(tmp_path: Path) -> None:
    server = serving(tmp_path, KEEP_ALL | SECRET)
    await asyncio.to_thread(server.start)
    try:
        async with Proxy([server.port], random.Random(20), CUTS, (100, 3000)) as proxy, AsyncExitStack() as stack:
            chaos = Chaos(server, proxy)
            for client in (chaos.talker, chaos.auditor, chaos.subject):
                await stack.enter_async_context(client)
            await chaos.talker.join(ROOM)
            seen, audit = [
                Timeline(joined.epoch, joined.offset + 1)
                for joined in [await chaos.subject.join(ROOM), await chaos.auditor.join(ROOM)]
            ]
            watching = [
                asyncio.create_task(chaos.watch(chaos.subject, seen, "the end")),
                asyncio.create_task(chaos.watch(chaos.auditor, audit, "the end")),
            ]
            try:
                async with asyncio.timeout(TIMEOUT * 4):
                    talked, _, _ = await asyncio.gather(chaos.talk(), chaos.restart(), chaos.say_own())
                    top = await chaos.talker.say(ROOM, "the end")
                    await asyncio.gather(*watching)
            except TimeoutError:
                stuck = f"cuts {proxy.cuts}, restarted {chaos.restarted.is_set()}, seen up to {seen.next - 1}"
                raise AssertionError(f"stuck: {stuck}, subject {chaos.subject.state}, own {len(chaos.own)}") from None
            history = await whole_history(chaos.auditor, ROOM, top)
    finally:
        await asyncio.to_thread(server.stop)
    assert "Traceback" not in server.output(), server.output()

    # The restart was told, not silent: one reset, the only gap (history and replay are unbounded).
    assert [gap.reason for gap in seen.gaps] == ["reset"]
    assert proxy.cuts == CUTS
    assert chaos.drops >= CUTS
    assert talked > CUTS * 5  # the talker really was mid-stream throughout
    # Every message once, in order, within each epoch (the Timeline checked each as it came), and
    # the same messages the auditor saw where both saw them.
    before, after = seen.segments
    reference = {line.offset: line for line in audit.segments[0]}
    assert all(reference.get(line.offset, line) == line for line in before)
    reset = seen.gaps[0].offset or 0
    assert after == [line for line in history if line.offset > reset]  # the new epoch, all of it after the reset
    # Each of the subject's says was acked, and is seen once at the offset its say returned; or,
    # when a connection to the new server published it and was cut before the subject rejoined,
    # it lies within the reset's unknown range (the new epoch's offsets up to the reset's), where
    # history holds it. Nothing is published twice in the epoch that history holds.
    own_lines = [line for line in seen.messages if line.user == chaos.subject.name]
    mine = {line.text: line.offset for line in own_lines}
    assert len(mine) == len(own_lines)  # none seen twice
    at = {line.offset: line.text for line in history}
    for text, offset in chaos.own.items():
        assert mine.get(text) == offset or (offset <= reset and at[offset] == text), (text, offset)
    texts = [line.text for line in history]
    assert len(texts) == len(set(texts))
    assert len(chaos.own) == talked // OWN_EVERY
