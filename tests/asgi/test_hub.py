"""The broadcast hub: slow consumers, failing peers, ordering, joins and leaves, nothing left behind.

A server's ``send`` that blocks or fails is what matters here: the suite's fake server
(:class:`tests.helpers.WebSocketClient`) plays one in each ``mode``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from asgi_chat import ChatApp, Settings, create_app
from asgi_chat.engine.brokers import BrokerUnavailable
from asgi_chat.engine.brokers.memory import MemoryBroker
from tests.helpers import LifespanClient, SendMode, WebSocketClient, wait_until


def chatter(app: ChatApp, client_id: int, mode: SendMode = "ok") -> WebSocketClient:
    """One chat client at ASGI level, on ``/ws/<client_id>``; ``mode`` decides what the app's data
    sends to it do (see WebSocketClient): ``block`` is a client that stopped reading, ``gate`` one
    whose buffer is full until ``room`` is set, ``raise`` one that is gone."""
    return WebSocketClient(app, f"/ws/{client_id}", mode=mode)


def slow_app(**limits: Any) -> ChatApp:
    return create_app(Settings(**limits))


async def test_a_peer_whose_send_never_returns_is_dropped_with_1013(caplog: pytest.LogCaptureFixture) -> None:
    app = slow_app(send_timeout=0.2)
    healthy, stalled = chatter(app, 1), chatter(app, 2, "block")
    await healthy.accept()
    await stalled.accept()
    with caplog.at_level(logging.WARNING, logger="asgi_chat"):
        await healthy.send("hello")
        assert await healthy.receive_many(2) == ["You wrote: hello", "Client #1 says: hello"]
        assert await healthy.receive_many(1) == ["Client #2 left the chat"]  # after the send timeout
        await stalled.finished()
    assert caplog.text.count("dropped") == 1
    assert "client #2 dropped: slow consumer: a send blocked for more than 0.2 s" in caplog.text
    assert app.ctx.metrics.slow_consumer_disconnects == 1
    await healthy.send("still here")  # the healthy client was never held up
    assert await healthy.receive_many(2) == ["You wrote: still here", "Client #1 says: still here"]
    healthy.leave()
    await healthy.finished()


async def test_a_full_outbox_drops_the_member_with_1013_and_a_reason() -> None:
    app = slow_app(outbox_max_messages=3, send_timeout=0)
    healthy, stalled = chatter(app, 1), chatter(app, 2, "block")
    await healthy.accept()
    await stalled.accept()
    for n in range(6):
        await healthy.send(f"m{n}")
    received = await healthy.receive_many(13)  # 6 x (You wrote + says), then the leave
    assert received[-1] == "Client #2 left the chat"
    assert [t for t in received if t.startswith("Client #1 says")] == [f"Client #1 says: m{n}" for n in range(6)]
    await stalled.finished()
    assert app.ctx.metrics.slow_consumer_disconnects == 1
    assert app.ctx.metrics.outbox_depth_max == 3
    assert stalled.data_sends == 1  # the writer took one message and has been stuck on it since


async def test_the_outbox_byte_bound_counts_utf8() -> None:
    app = slow_app(outbox_max_bytes=70, send_timeout=0)
    talker, stalled = chatter(app, 1), chatter(app, 2)
    await talker.accept()
    await stalled.accept()
    stalled.mode = "block"
    line = "\u00e9" * 10  # "Client #1 says: " + 20 bytes of UTF-8 = 36 bytes (26 characters)
    for _ in range(3):
        await talker.send(line)  # the writer holds the first, the second waits, the third would make 72
        await talker.receive_many(2)
    await stalled.finished()
    assert app.ctx.metrics.slow_consumer_disconnects == 1
    close = await stalled.output()
    assert close == {
        "type": "websocket.close",
        "code": 1013,
        "reason": "slow consumer: 1 messages (36 bytes) already waiting",
    }


async def test_a_peer_whose_send_fails_leaves_alone_and_the_sender_stays() -> None:
    # The tutorial's bug: a failed send inside its broadcast removed and announced the *sender*.
    app = create_app(Settings())
    sender, gone = chatter(app, 1), chatter(app, 2)
    await sender.accept()
    await gone.accept()
    gone.mode = "raise"
    await sender.send("hi")
    assert await sender.receive_many(3) == ["You wrote: hi", "Client #1 says: hi", "Client #2 left the chat"]
    await gone.finished()
    assert app.ctx.metrics.connections == 1  # the gone member is not counted as open
    await sender.send("again")
    assert await sender.receive_many(2) == ["You wrote: again", "Client #1 says: again"]
    assert [m.label for m in app.ctx.hub.members] == ["client #1"]
    sender.leave()
    await sender.finished()


async def test_a_send_that_fails_in_another_way_ends_that_member_only(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings())
    sender, odd = chatter(app, 1), chatter(app, 2)
    await sender.accept()
    await odd.accept()
    odd.mode, odd.error = "raise", ValueError("a server bug")
    with caplog.at_level(logging.WARNING, logger="asgi_chat"):
        await sender.send("hi")
        assert await sender.receive_many(3) == ["You wrote: hi", "Client #1 says: hi", "Client #2 left the chat"]
        await odd.finished()
    assert "client #2: the server's send raised ValueError('a server bug')" in caplog.text
    await sender.send("again")  # the fan-out goes on
    assert await sender.receive_many(2) == ["You wrote: again", "Client #1 says: again"]
    sender.leave()


async def test_one_senders_messages_arrive_in_order_everywhere_under_concurrency() -> None:
    app = create_app(Settings(rate_per_second=0))
    peers = [chatter(app, n) for n in range(5)]
    for peer in peers:
        await peer.accept()
    count = 60
    for n in range(count):  # interleave the senders as tightly as the event loop allows
        for client_id, peer in enumerate(peers):
            await peer.send(f"{client_id}:{n}")
    for peer in peers:
        texts = await peer.receive_many(count * 6)  # 60 "You wrote" + 5 x 60 "says"
        for sender in range(len(peers)):
            prefix = f"Client #{sender} says: {sender}:"
            seen = [int(t.removeprefix(prefix)) for t in texts if t.startswith(prefix)]
            assert seen == list(range(count))
    for peer in peers:
        peer.leave()


async def test_after_a_send_that_waited_the_queue_follows_in_order_and_sending_resumes() -> None:
    app = create_app(Settings(rate_per_second=0))
    talker, slow = chatter(app, 1), chatter(app, 2)
    await talker.accept()
    await slow.accept()
    slow.mode = "gate"
    for n in range(3):
        await talker.send(f"m{n}")  # m0's send to slow waits for room; m1 and m2 queue behind it
    await talker.receive_many(6)
    await wait_until(lambda: slow.data_sends == 1)
    assert [message["type"] for message in slow.sent] == ["websocket.accept"]  # nothing more arrived yet
    slow.room.set()  # room again: m0 finishes, then the writer sends m1 and m2
    assert await slow.receive_many(3) == [f"Client #1 says: m{n}" for n in range(3)]
    await talker.send("m3")  # the writer is done: this line goes out at once, after the others
    assert await slow.receive_many(1) == ["Client #1 says: m3"]
    assert slow.data_sends == 4
    talker.leave()
    slow.leave()
    await talker.finished()
    await slow.finished()


async def test_a_member_that_leaves_is_not_sent_to_again() -> None:
    app = slow_app(send_timeout=0)
    talker, leaver = chatter(app, 1), chatter(app, 2, "block")
    await talker.accept()
    leaver.mode = "ok"
    await leaver.accept()
    leaver.mode = "block"
    for n in range(3):
        await talker.send(f"m{n}")  # the leaver's writer blocks on m0; m1 and m2 wait in its outbox
    await talker.receive_many(6)
    await wait_until(lambda: leaver.data_sends == 1)
    leaver.leave()
    assert await talker.receive_many(1) == ["Client #2 left the chat"]
    await leaver.finished()
    await talker.send("after")
    await talker.receive_many(2)
    assert leaver.data_sends == 1  # m1, m2 and "after" never reached the gone member


async def test_a_join_or_leave_leaves_the_member_view_a_delivery_holds_unchanged() -> None:
    # _deliver iterates hub.members; copy-on-write: a join or leave makes a new view, never edits one.
    app = create_app(Settings())
    first, late = chatter(app, 1), chatter(app, 2)
    await first.accept()
    held = app.ctx.hub.members
    (member,) = held
    await late.accept()
    await wait_until(lambda: len(app.ctx.hub.members) == 2)
    assert held == (member,)
    assert app.ctx.hub.members[0] is member
    late.leave()
    await late.finished()
    assert app.ctx.hub.members == (member,)
    assert held == (member,)
    first.leave()
    await first.finished()


async def test_a_line_delivered_before_a_join_does_not_reach_the_newcomer() -> None:
    app = create_app(Settings())
    first, late = chatter(app, 1), chatter(app, 2)
    await first.accept()
    await first.send("before")
    assert await first.receive_many(2) == ["You wrote: before", "Client #1 says: before"]  # delivered: done
    await late.accept()
    await wait_until(lambda: len(app.ctx.hub.members) == 2)
    await first.send("after")
    assert await first.receive_many(2) == ["You wrote: after", "Client #1 says: after"]
    assert await late.receive_many(1) == ["Client #1 says: after"]  # its first line; nothing from before
    first.leave()
    late.leave()


class HeldBroker(MemoryBroker):
    """The in-process broker, but every line stays on its way until ``arrive`` is set (a slow Redis)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrive = asyncio.Event()

    async def publish(self, channel: str, message: str) -> None:
        await self.arrive.wait()
        await super().publish(channel, message)


async def test_a_line_still_on_its_way_when_someone_joins_reaches_them_too() -> None:
    broker = HeldBroker()
    app = create_app(Settings(), broker=broker)
    first, late = chatter(app, 1), chatter(app, 2)
    await first.accept()
    await first.send("during")
    assert await first.receive_many(1) == ["You wrote: during"]  # its "says" is now with the broker
    await late.accept()
    await wait_until(lambda: len(app.ctx.hub.members) == 2)
    broker.arrive.set()  # the line arrives after the join: whoever is in the chat then gets it
    await first.send("after")
    assert await first.receive_many(3) == ["Client #1 says: during", "You wrote: after", "Client #1 says: after"]
    assert await late.receive_many(2) == ["Client #1 says: during", "Client #1 says: after"]
    first.leave()
    late.leave()


async def test_each_recipient_of_a_line_sent_at_once_is_counted_once() -> None:
    # Every send here finishes at once: one courier delivers the line to each, never waiting.
    app = create_app(Settings())
    clients = [chatter(app, n) for n in range(1, 5)]
    for client in clients:
        await client.accept()
    before = app.ctx.metrics.messages_delivered
    await clients[0].send("hi")
    assert await clients[0].receive_many(2) == ["You wrote: hi", "Client #1 says: hi"]
    for client in clients[1:]:
        assert await client.receive_many(1) == ["Client #1 says: hi"]
    assert app.ctx.metrics.messages_delivered - before == 1 + len(clients)  # "You wrote", and a "says" each
    for client in clients:
        client.leave()


async def test_a_send_stuck_soon_after_the_join_is_dropped_within_a_quarter_past_the_send_timeout() -> None:
    # The watchdog starts with the first member and looks every send_timeout / 4, so a send stuck
    # at any moment is dropped within 1.25 x send_timeout; looking every send_timeout would take up
    # to twice as long. Which look catches the send depends on where it falls between two looks: one
    # that starts at the watchdog's very start is caught by a look at exactly send_timeout, under
    # either period, so this one starts ~0.1 s later (the silence after the join): 1.0-1.25 s here,
    # ~1.9 s with a send_timeout period. With 1 s, the 1.6 s bound leaves room for a busy machine.
    app = slow_app(send_timeout=1.0)
    stalled = chatter(app, 1, "block")
    await stalled.accept()  # the only member: the watchdog starts now
    assert await stalled.nothing()  # a join sends nothing, and 0.1 s of the first period go by
    loop = asyncio.get_running_loop()
    started = loop.time()
    await stalled.send("hi")  # its own "You wrote" is the send that never returns
    assert await stalled.receive_close() == (1013, "slow consumer: a send blocked for more than 1 s")
    waited = loop.time() - started
    assert 1.0 < waited < 1.6, f"dropped after {waited:.2f} s"
    await stalled.finished()
    assert app.ctx.metrics.slow_consumer_disconnects == 1


async def test_nothing_is_left_behind_after_everyone_has_gone() -> None:
    app = create_app(Settings(send_timeout=0.2))
    life = LifespanClient(app)
    assert (await life.startup())["type"] == "lifespan.startup.complete"
    before = asyncio.all_tasks()
    peers = [chatter(app, n) for n in range(4)] + [chatter(app, 9, "block")]
    for peer in peers:
        await peer.accept()
    await peers[0].send("hello")
    for peer in peers:
        peer.leave(1001)
    for peer in peers:
        await peer.finished()
    hub = app.ctx.hub
    assert hub.members == ()
    assert app.sessions == set()
    assert app.ctx.metrics.connections == 0
    await wait_until(lambda: app.ctx.fanout._watchdog is None or app.ctx.fanout._watchdog.done())
    assert asyncio.all_tasks() == before  # no writer, reader or watchdog task remains
    assert (await life.shutdown())["type"] == "lifespan.shutdown.complete"
    assert asyncio.all_tasks() == {asyncio.current_task()}  # the hub's listener is gone too


async def test_without_lifespan_a_chat_whose_broker_is_down_is_refused_before_accept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class DownBroker(MemoryBroker):
        async def open(self) -> None:
            raise BrokerUnavailable("cannot use Redis at redis://:***@10.9.9.9:6379/0: is it running?")

    app = create_app(Settings(), broker=DownBroker())  # no lifespan: the first join starts the hub
    with caplog.at_level(logging.WARNING, logger="asgi_chat"):
        answer = await WebSocketClient(app, "/ws/1").connect()
    assert answer == {
        "type": "websocket.close",
        "code": 1013,
        "reason": "chat unavailable: its message broker cannot be reached",
    }
    assert "chat unavailable: cannot use Redis at redis://:***@10.9.9.9:6379/0" in caplog.text


async def test_a_member_whose_peer_left_while_a_line_for_it_was_queued_ends_quietly() -> None:
    # Its "You wrote" is still in the fan-out's queue when the server hands its reader the
    # disconnect, and the courier reaches it while the reader is announcing the leave: the
    # closed session is skipped, so the reader ends as it would anyway, not cancelled midway.
    app = create_app(Settings(rate_per_second=0))
    connect: dict[str, Any] = {"type": "websocket.connect"}
    line: dict[str, Any] = {"type": "websocket.receive", "text": "bye", "bytes": None}
    scripts = [[connect], [connect], [connect, line], [connect]]
    clients = [WebSocketClient(app, f"/ws/{n}", script=script, then_gone=True) for n, script in enumerate(scripts)]
    for client in clients:
        await client.finished()  # "the app ended cancelled" if its reader was cancelled as it left
    assert app.ctx.hub.members == ()
