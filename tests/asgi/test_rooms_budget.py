"""``/chat/ws`` through the app: output budgets (engine/budget.py). A history page past the budget
is answered ``slow_down`` with the wait, and the page once it is over; one address's connections
share a budget, another address keeps its own; a resume larger than the budget arrives whole, in
order, paced. The budgets run on a clock the test moves: no test waits for real time."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from asgiref.typing import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope

from asgi_chat import ChatApp, Settings, create_app
from asgi_chat.engine.budget import OutputBudgets
from asgi_chat.engine.replay import Stored
from asgi_chat.engine.stores.memory import MemoryStore
from tests.asgi.rooms_helpers import ROOM, in_room, next_is_live, offsets, say_lines
from tests.helpers import TIMEOUT
from tests.rooms_support import Frame, RoomsClient


class ManualClock:
    """The budgets' clock and sleep: time moves when the test says (:meth:`advance`), and a sleep
    lasts until it has moved far enough; :meth:`asleep` waits until someone sleeps on it. After
    :meth:`run_freely`, time is virtual: a sleep moves it at once, by as much as was asked."""

    def __init__(self) -> None:
        self.now = 0.0
        self.free = False
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._sleeping = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if self.free:
            await asyncio.sleep(0)  # what was offered before this wait goes out before it
            self.now += seconds
            return
        wake = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, wake))
        self._sleeping.set()
        await wake

    async def asleep(self) -> None:
        async with asyncio.timeout(TIMEOUT):
            await self._sleeping.wait()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self._wake(lambda deadline: deadline <= self.now)

    def run_freely(self) -> None:
        self.free = True
        self.now = max([self.now, *(deadline for deadline, _ in self._sleepers)])
        self._wake(lambda deadline: True)

    def _wake(self, due: Any) -> None:
        for deadline, wake in [sleeper for sleeper in self._sleepers if due(sleeper[0])]:
            self._sleepers.remove((deadline, wake))
            wake.set_result(None)
        if not self._sleepers:
            self._sleeping.clear()


class CountingStore(MemoryStore):
    """The memory store, counting the history pages it is asked for: a refused request asks none."""

    pages = 0

    async def before(self, room: str, before: int, limit: int) -> list[Stored]:
        self.pages += 1
        return await super().before(room, before, limit)


def budget_app(clock: ManualClock, rate: int, address_rate: int, store: MemoryStore | None = None) -> ChatApp:
    settings = Settings(rate_per_second=0, presence_interval=0)  # as rooms_app: tests send in bursts
    budgets = OutputBudgets(rate, address_rate, clock, clock.sleep)
    return create_app(settings, store=store or MemoryStore(settings), budgets=budgets)


def size(text: str) -> int:
    return len(text.encode())


async def answer(client: RoomsClient, kind: str, request_id: str, **fields: object) -> Frame:
    """Send a request with ``request_id``; its answer (the room's traffic meanwhile passed over)."""
    await client.request(kind, id=request_id, **fields)
    while (frame := await client.frame()).get("id") != request_id:
        assert frame["type"] in ("presence", "msg"), frame
    return frame


def words(first: int, last: int, chars: int = 100) -> list[str]:
    return [f"{n} " + "x" * chars for n in range(first, last + 1)]


# --- history -----------------------------------------------------------------------------------------


async def test_a_history_page_past_the_budget_is_answered_slow_down_and_after_the_wait_the_page() -> None:
    clock = ManualClock()
    store = CountingStore(Settings())
    app = budget_app(clock, rate=2000, address_rate=0, store=store)
    (ada,) = await in_room(app, "ada")
    said = await say_lines(ada, words(1, 30))  # live lines: the room's traffic, not budgeted
    page = await answer(ada, "history", "h1", room=ROOM, before=31, limit=30)
    assert page["messages"] == said  # the first page goes at once, though it is over 2000 bytes
    sent = [str(event.get("text")) for event in ada.ws.sent]
    joined, page_text = next(t for t in sent if '"joined"' in t), next(t for t in sent if '"history"' in t)
    owed = size(joined) + size(page_text) - 2000  # the join's answer and the page, on one budget
    assert owed > 0

    refused = await answer(ada, "history", "h2", room=ROOM, before=31, limit=30)
    retry_ms = -(-owed * 1000 // 2000)  # rounded up
    assert refused == {
        "type": "error",
        "code": "slow_down",
        "message": f"too much output asked for: try again in {retry_ms} ms",
        "retry_ms": retry_ms,
        "id": "h2",
    }
    assert store.pages == 1  # nothing was read for the refused request
    clock.advance(retry_ms / 2000)
    assert (await answer(ada, "history", "h3", room=ROOM, before=31, limit=1))["code"] == "slow_down"
    clock.advance(retry_ms / 2000)
    assert (await answer(ada, "history", "h4", room=ROOM, before=31, limit=30))["messages"] == said
    assert store.pages == 2


async def test_two_connections_from_one_address_share_its_budget_and_a_third_address_is_unaffected() -> None:
    clock = ManualClock()
    app = budget_app(clock, rate=0, address_rate=4000)  # the address's budget only
    ada, bob, eve = [
        await RoomsClient(app, client=(host, 50000 + n)).open(user)
        for n, (user, host) in enumerate([("ada", "10.0.0.1"), ("bob", "10.0.0.1"), ("eve", "10.0.0.2")])
    ]
    for client in (ada, bob, eve):
        await client.join(ROOM)
    assert len(app.ctx.budgets) == 2  # one entry per address connected
    said = await say_lines(ada, words(1, 30), others=[])
    assert (await answer(ada, "history", "a1", room=ROOM, before=31, limit=30))["messages"] == said

    refused = await answer(bob, "history", "b1", room=ROOM, before=31, limit=30)  # bob spent nothing
    assert (refused["type"], refused["code"], refused["id"]) == ("error", "slow_down", "b1")
    assert refused["retry_ms"] > 0
    assert (await answer(ada, "history", "a2", room=ROOM, before=31, limit=1))["code"] == "slow_down"
    assert (await answer(eve, "history", "e1", room=ROOM, before=31, limit=30))["messages"] == said
    clock.advance(refused["retry_ms"] / 1000)
    assert (await answer(bob, "history", "b2", room=ROOM, before=31, limit=30))["messages"] == said

    for client in (ada, bob, eve):
        await client.disconnect()
    assert len(app.ctx.budgets) == 0  # an address's entry goes with its last connection


# --- a join's replay ---------------------------------------------------------------------------------


def timed(app: ASGI3Application, clock: ManualClock, log: list[tuple[float, str]]) -> ASGI3Application:
    """``app``, with every text it sends logged with the clock's time of the send."""

    async def logging_app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        async def logged(message: ASGISendEvent) -> None:
            if message["type"] == "websocket.send" and message.get("text") is not None:
                log.append((clock.now, str(message["text"])))
            await send(message)

        await app(scope, receive, logged)

    return logging_app


async def test_a_resume_larger_than_the_budget_arrives_whole_in_order_and_paced() -> None:
    clock = ManualClock()
    rate = 4096
    app = budget_app(clock, rate=rate, address_rate=0)
    (writer,) = await in_room(app, "writer")
    said = await say_lines(writer, words(1, 40, chars=200))  # some 11 KB: almost 3 seconds' worth
    log: list[tuple[float, str]] = []
    reader = await RoomsClient(timed(app, clock, log)).open("reader")
    joined = await reader.join(ROOM, since={"epoch": writer.epochs[ROOM], "offset": 0})
    assert joined["offset"] == 40

    await clock.asleep()  # the replay waits for its budget...
    await app.ctx.fanout.handed_out()
    replayed = [json.loads(text) for _, text in log if '"msg"' in text]
    assert 0 < len(replayed) < 40  # ...having sent what one second's worth allows
    live = await say_lines(writer, ["said while the replay waits"], others=[])  # into the joiner's buffer
    clock.run_freely()

    frames = await reader.frames(41)
    assert offsets(frames) == list(range(1, 42))  # every offset once, in order: the replay, then the buffer
    assert frames == said + live
    # The join's output (joined, the replay: not the welcome before it, nor the live line after)
    # kept to its budget: at every send, within one second's worth, the rate since, and the one
    # line let in before the debt it made; and its last line went once the rest had been paid for.
    assert [json.loads(text)["type"] for _, text in log] == ["welcome", "joined", *["msg"] * 41]
    join = [(at, size(text)) for at, text in log[1:-1]]
    biggest = max(sent for _, sent in join)
    for n, (at, _) in enumerate(join):
        assert sum(sent for _, sent in join[: n + 1]) <= rate + rate * at + biggest, n
    assert rate + rate * join[-1][0] >= sum(sent for _, sent in join[:-1]) - 1  # a byte: float rounding
    await next_is_live(reader, writer, 42)
