"""The fan-out's members over real sessions on the fake server: the FLOW table walked by real
sends, what a cancelled member ends with, and what the delivered counter counts."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

from asgi_chat.asgi.errors import Disconnected, TryAgainLater
from asgi_chat.asgi.session import Session, State
from asgi_chat.engine.fanout import FLOW, Fanout, Flow, Member, outgoing
from asgi_chat.engine.policy import SlowConsumerPolicy
from asgi_chat.ops.metrics import Metrics
from tests.helpers import TIMEOUT, WebSocketClient


def fanout(max_messages: int = 0) -> Fanout:
    """A fan-out with no watchdog (send_timeout 0): every drop here is the test's own."""
    return Fanout(SlowConsumerPolicy(max_messages, max_bytes=0, send_timeout=0), Metrics())


async def join(fan: Fanout, server: WebSocketClient, label: str = "client #1") -> tuple[Member, asyncio.Task[None]]:
    """A member of ``fan`` over an accepted session on ``server``, and its reader: a task of its
    own that waits in the session's receive, as an endpoint's reader does, until the peer leaves
    or the fan-out ends the member."""
    session = Session(server.scope, server.asgi_receive, server.asgi_send, metrics=fan.metrics)
    server.feed({"type": "websocket.connect"})
    await session.wait_connect()
    await session.accept()
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

    member.send("one")  # the server's send has to wait for room: the rest goes to a writer task
    assert state_of(member) is Flow.WAITING
    writer = member._writer
    assert writer is not None
    member.send("two")  # queued behind it
    assert state_of(member) is Flow.WAITING
    assert (len(member.outbox or ()), texts(server), fan.metrics.messages_delivered) == (1, [], 0)

    server.room.set()  # room again: the writer finishes "one", sends "two", and is done
    await asyncio.wait_for(writer, TIMEOUT)
    assert state_of(member) is Flow.READY
    assert (member._writer, member.send_started) == (None, None)
    assert (texts(server), fan.metrics.messages_delivered) == (["one", "two"], 2)

    member.send("three")  # READY: out at once, no writer
    assert (member.state, member._writer) == (Flow.READY, None)
    assert (texts(server), fan.metrics.messages_delivered) == (["one", "two", "three"], 3)

    server.mode = "raise"  # the peer is gone: the next send fails, and ends the member
    member.send("four")
    assert state_of(member) is Flow.ENDED
    assert isinstance(member.reason, Disconnected)

    server.mode = "ok"
    member.send("five")  # ENDED: ignored
    member.offer(outgoing("six"))
    assert state_of(member) is Flow.ENDED
    assert server.data_sends == 4  # "four" reached the server and failed; nothing did after it
    assert (texts(server), fan.metrics.messages_delivered) == (["one", "two", "three"], 3)
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
    assert (texts(server), server.data_sends, fan.metrics.messages_delivered) == ([], 0, 0)


async def test_a_member_dropped_in_the_step_of_its_first_waiting_send_leaves_no_send_unawaited() -> None:
    fan = fanout(max_messages=1)
    server = WebSocketClient(mode="gate")
    member, reader = await join(fan, server)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        member.send("one")  # waits for room: a writer task will finish it
        member.send("two")  # the outbox's one place
        member.send("three")  # one too many, in the same step: dropped before the writer ever ran
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
    before = fan.metrics.messages_delivered
    line = outgoing("hello")
    for member, _ in joined:
        member.offer(line)
    assert fan.metrics.messages_delivered - before == len(servers)
    assert [texts(server) for server in servers] == [["hello"]] * len(servers)
    assert [member.state for member, _ in joined] == [Flow.READY] * len(servers)  # each finished at once
    for server in servers:
        server.leave()
    for _, reader in joined:
        assert isinstance((await ended(reader)).exception(), Disconnected)
