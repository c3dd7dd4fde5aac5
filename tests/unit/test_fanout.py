"""The fan-out's members over real sessions on the fake server: the FLOW table walked by real
sends, the couriers that hand lines out (and stay with a send that has to wait), the order of
lines, what a cancelled member ends with, and what the delivered counter counts.

An offer only queues a line: ``await fan.handed_out()`` is where a test lets the courier take it
to its members (at once on Python 3.12+, at the next turn of the event loop before)."""

from __future__ import annotations

import asyncio
import gc
import sys
import warnings

import pytest
from asgiref.typing import ASGISendEvent

from asgi_chat.asgi.errors import Disconnected, TryAgainLater
from asgi_chat.asgi.session import Session
from asgi_chat.asgi.states import State
from asgi_chat.engine.fanout import Fanout
from asgi_chat.engine.member import FLOW, Flow, Member, outgoing
from asgi_chat.engine.policy import SlowConsumerPolicy
from asgi_chat.ops.metrics import Metrics
from tests.helpers import TIMEOUT, SendMode, WebSocketClient


def counts(fan: Fanout) -> Metrics:
    """The app's counters this fan-out was built with (it sees only the ones it counts itself)."""
    assert isinstance(fan.metrics, Metrics)
    return fan.metrics


def fanout(max_messages: int = 0) -> Fanout:
    """A fan-out with no watchdog (send_timeout 0): every drop here is the test's own."""
    return Fanout(SlowConsumerPolicy(max_messages, max_bytes=0, send_timeout=0), Metrics())


async def accepted(fan: Fanout, server: WebSocketClient) -> Session:
    session = Session(server.scope, server.asgi_receive, server.asgi_send, metrics=counts(fan))
    server.feed({"type": "websocket.connect"})
    await session.wait_connect()
    await session.accept()
    return session


async def join(fan: Fanout, server: WebSocketClient, label: str = "client #1") -> tuple[Member, asyncio.Task[None]]:
    """A member of ``fan`` over an accepted session on ``server``, and its reader: a task of its
    own that waits in the session's receive, as an endpoint's reader does, until the peer leaves
    or the fan-out ends the member."""
    session = await accepted(fan, server)
    joined: asyncio.Future[Member] = asyncio.get_running_loop().create_future()

    async def reader() -> None:
        async with fan.member(session, label) as member:
            joined.set_result(member)
            while True:
                await session.receive_message()

    task = asyncio.create_task(reader())
    return await asyncio.wait_for(joined, TIMEOUT), task


async def ended(reader: asyncio.Task[None]) -> asyncio.Task[None]:
    """``reader`` once it has ended (bounded), however it ended."""
    await asyncio.wait({reader}, timeout=TIMEOUT)
    assert reader.done(), "the reader is still running"
    return reader


def state_of(member: Member) -> Flow:
    return member.state  # a call, so mypy does not keep an earlier assert's narrowing


def texts(server: WebSocketClient) -> list[str | None]:
    """The data messages ``server`` took from the app, in order."""
    return [message.get("text") for message in server.sent if message["type"] == "websocket.send"]


def test_no_transition_leaves_ended() -> None:
    assert [key for key in FLOW if key[0] is Flow.ENDED] == []


async def test_real_sends_walk_a_member_from_ready_to_waiting_to_ready_to_ended() -> None:
    fan = fanout()
    server = WebSocketClient(mode="gate")  # sends wait until server.room is set
    member, reader = await join(fan, server)
    assert member.state is Flow.READY

    member.send("one")  # the server's send has to wait for room: its courier stays with it
    await fan.handed_out()
    assert state_of(member) is Flow.WAITING
    writer = member._writer
    assert writer is not None
    member.send("two")  # queued behind it
    await fan.handed_out()
    assert state_of(member) is Flow.WAITING
    assert (len(member.outbox or ()), texts(server), counts(fan).messages_delivered) == (1, [], 0)

    server.room.set()  # room again: the writer finishes "one", sends "two", and is done
    await asyncio.wait_for(writer, TIMEOUT)
    assert state_of(member) is Flow.READY
    assert (member._writer, member.send_started) == (None, None)
    assert (texts(server), counts(fan).messages_delivered) == (["one", "two"], 2)

    member.send("three")  # READY: out at once, no writer
    await fan.handed_out()
    assert (member.state, member._writer) == (Flow.READY, None)
    assert (texts(server), counts(fan).messages_delivered) == (["one", "two", "three"], 3)

    server.mode = "raise"  # the peer is gone: the next send fails, and ends the member
    member.send("four")
    await fan.handed_out()
    assert state_of(member) is Flow.ENDED
    assert isinstance(member.reason, Disconnected)

    server.mode = "ok"
    member.send("five")  # ENDED: ignored
    member.offer(outgoing("six"))
    await fan.handed_out()
    assert state_of(member) is Flow.ENDED
    assert server.data_sends == 4  # "four" reached the server and failed; nothing did after it
    assert (texts(server), counts(fan).messages_delivered) == (["one", "two", "three"], 3)
    assert isinstance((await ended(reader)).exception(), Disconnected)  # the reader ends with the reason
    assert len(fan) == 0


async def test_an_offer_to_a_member_the_fanout_ended_sends_nothing_though_its_session_is_open() -> None:
    # Between the drop and the endpoint's close, the session is still OPEN: only ENDED stops the lines.
    fan = fanout()
    server = WebSocketClient()
    member, reader = await join(fan, server)
    fan.drop(member, TryAgainLater("slow consumer: test"))
    assert state_of(member) is Flow.ENDED
    assert member.session.state is State.OPEN
    member.send("late")
    member.offer(outgoing("later"))
    assert isinstance((await ended(reader)).exception(), TryAgainLater)
    member.send("after the reader")
    await fan.handed_out()
    assert (texts(server), server.data_sends, counts(fan).messages_delivered) == ([], 0, 0)


async def test_a_member_dropped_before_its_waiting_send_resumes_leaves_no_send_unawaited() -> None:
    fan = fanout(max_messages=1)
    server = WebSocketClient(mode="gate")
    member, reader = await join(fan, server)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        member.send("one")  # waits for room: the courier that started it stays with it
        member.send("two")  # the outbox's one place
        member.send("three")  # one too many: dropped before the waiting send ever resumed
        await fan.handed_out()
        assert member.state is Flow.ENDED
        assert isinstance((await ended(reader)).exception(), TryAgainLater)
        del member, reader
        gc.collect()
    assert [str(warning.message) for warning in caught if "never awaited" in str(warning.message)] == []


async def test_a_member_ended_by_the_fanout_alone_ends_with_the_fanouts_reason() -> None:
    fan = fanout()
    member, reader = await join(fan, WebSocketClient())
    reason = TryAgainLater("slow consumer: test")
    fan.drop(member, reason)
    assert (await ended(reader)).exception() is reason  # its own cancellation absorbed, and explained


@pytest.mark.parametrize("server_first", [False, True], ids=["fanout-then-server", "server-then-fanout"])
async def test_a_member_ended_by_the_fanout_and_cancelled_by_the_server_ends_cancelled(server_first: bool) -> None:
    # The server gives up on the app (uvicorn at shutdown cancels its task) just as the fan-out
    # drops the member: the server's cancellation must go on, not be swallowed as the fan-out's own.
    fan = fanout()
    member, reader = await join(fan, WebSocketClient())
    if server_first:
        reader.cancel()
    fan.drop(member, TryAgainLater("slow consumer: test"))
    if not server_first:
        reader.cancel()
    assert (await ended(reader)).cancelled()
    assert len(fan) == 0


async def test_n_recipients_of_a_line_sent_at_once_add_exactly_n_deliveries() -> None:
    fan = fanout()
    servers = [WebSocketClient() for _ in range(5)]
    joined = [await join(fan, server, f"client #{n}") for n, server in enumerate(servers)]
    before = counts(fan).messages_delivered
    fan.offer(tuple(member for member, _ in joined), outgoing("hello"))
    await fan.handed_out()
    assert counts(fan).messages_delivered - before == len(servers)
    assert [texts(server) for server in servers] == [["hello"]] * len(servers)
    assert [member.state for member, _ in joined] == [Flow.READY] * len(servers)  # each finished at once
    for server in servers:
        server.leave()
    for _, reader in joined:
        assert isinstance((await ended(reader)).exception(), Disconnected)


class TaskNoting(WebSocketClient):
    """The fake server, noting for each data send the task it began in and the one it ended in."""

    def __init__(self, mode: SendMode = "ok") -> None:
        super().__init__(mode=mode)
        self.tasks: list[tuple[asyncio.Task[object] | None, asyncio.Task[object] | None]] = []

    async def asgi_send(self, message: ASGISendEvent) -> None:
        began = asyncio.current_task()
        await super().asgi_send(message)
        if message["type"] == "websocket.send":
            self.tasks.append((began, asyncio.current_task()))


async def test_a_send_that_has_to_wait_is_finished_by_the_task_that_started_it_and_the_line_goes_on() -> None:
    fan = fanout()
    servers = [TaskNoting(), TaskNoting("gate"), TaskNoting()]
    joined = [await join(fan, server, f"client #{n}") for n, server in enumerate(servers)]
    members = tuple(member for member, _ in joined)
    fan.offer(members, outgoing("hello"))
    await fan.handed_out()
    assert [texts(server) for server in servers] == [["hello"], [], ["hello"]]  # past the one that waits
    writer = members[1]._writer
    assert members[1].state is Flow.WAITING
    assert writer is not None
    assert writer is not asyncio.current_task()
    servers[1].room.set()
    await asyncio.wait_for(writer, TIMEOUT)
    assert texts(servers[1]) == ["hello"]
    assert servers[1].tasks == [(writer, writer)]  # begun and finished in the courier that stayed with it
    assert [began is ended for began, ended in servers[0].tasks + servers[2].tasks] == [True, True]
    for server in servers:
        server.leave()


async def test_a_line_reaches_everyone_through_one_courier_that_then_ends() -> None:
    fan = fanout()
    servers = [TaskNoting() for _ in range(3)]
    joined = [await join(fan, server, f"client #{n}") for n, server in enumerate(servers)]
    idle = asyncio.all_tasks()
    fan.offer(tuple(member for member, _ in joined), outgoing("hello"))
    await fan.handed_out()
    assert [texts(server) for server in servers] == [["hello"]] * 3
    (courier,) = {began for server in servers for began, _ in server.tasks}
    assert courier is not None
    assert courier not in idle  # a task of its own, not the offering one
    assert asyncio.all_tasks() == idle  # and gone: an idle fan-out holds no task
    for server in servers:
        server.leave()


async def test_lines_for_one_member_and_for_all_reach_each_in_the_order_they_were_offered() -> None:
    fan = fanout()
    gated, reading = WebSocketClient(mode="gate"), WebSocketClient()
    (slow, _), (fast, _) = [await join(fan, gated, "client #1"), await join(fan, reading, "client #2")]
    both = (slow, fast)
    slow.send("slow 1")  # waits for room; what follows queues behind it
    fan.offer(both, outgoing("all 1"))
    fast.send("fast 1")
    slow.send("slow 2")
    fan.offer(both, outgoing("all 2"))
    await fan.handed_out()
    assert texts(reading) == ["all 1", "fast 1", "all 2"]
    gated.room.set()
    await asyncio.wait_for(slow.drained(), TIMEOUT)
    assert texts(gated) == ["slow 1", "all 1", "slow 2", "all 2"]
    gated.leave()
    reading.leave()


async def test_lines_the_fanout_has_yet_to_hand_out_count_towards_a_members_backlog() -> None:
    fan = fanout(max_messages=4)  # backlogged once 2 lines wait
    gated, reading = WebSocketClient(mode="gate"), WebSocketClient()
    (slow, _), (fast, _) = [await join(fan, gated, "client #1"), await join(fan, reading, "client #2")]
    slow.send("one")  # the courier will wait in this send: what follows waits for the next courier
    fast.send("two")
    fast.send("three")
    assert fast.outbox is None
    assert fast.backlogged()  # both lines are still in the fan-out's queue, and may yet end up in its outbox
    await asyncio.wait_for(fast.drained(), TIMEOUT)
    assert texts(reading) == ["two", "three"]
    assert not fast.backlogged()
    gated.leave()
    reading.leave()


async def test_a_send_whose_member_ends_before_the_courier_is_relieved_is_cancelled() -> None:
    fan = fanout()
    gated, reading = WebSocketClient(mode="gate"), WebSocketClient()
    (slow, _), (fast, _) = [await join(fan, gated, "client #1"), await join(fan, reading, "client #2")]
    fan.offer((slow, fast), outgoing("one"))
    if sys.version_info < (3, 12):
        await asyncio.sleep(0)  # one turn of the loop: the courier runs (at once from 3.12 on, eagerly)
    assert (gated.data_sends, slow.state, slow._writer) == (1, Flow.READY, None)  # it waits in that send
    courier = fan._walker
    assert courier is not None
    fan.drop(slow, TryAgainLater("slow consumer: test"))  # before the step is over and the courier relieved
    await fan.handed_out()
    assert texts(reading) == ["one"]  # the line went on
    assert (texts(gated), slow.state, slow._writer) == ([], Flow.ENDED, None)
    await asyncio.wait({courier}, timeout=TIMEOUT)
    assert courier.cancelled()  # and that send with it: nobody wants it any more
    reading.leave()


async def test_what_was_offered_to_a_member_goes_out_before_it_leaves() -> None:
    fan = fanout()
    server = WebSocketClient()
    session = await accepted(fan, server)
    async with fan.member(session, "client #1") as member:
        member.send("last words")  # and the block ends at once, as an endpoint that closes after a reply
    assert texts(server) == ["last words"]
    assert len(fan) == 0
