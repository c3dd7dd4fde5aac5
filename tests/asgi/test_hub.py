"""The broadcast hub: slow consumers, failing peers, ordering, joins and leaves, nothing left behind.

ApplicationCommunicator's ``send`` never blocks or fails, and those are the cases that matter
here, so these tests drive the app with :class:`Peer`, whose ``send`` can do either.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import pytest
from asgiref.typing import ASGIReceiveEvent, ASGISendEvent

from asgi_chat import ChatApp, Settings, create_app
from asgi_chat.engine.brokers import BrokerUnavailable
from asgi_chat.engine.brokers.memory import MemoryBroker
from tests.helpers import TIMEOUT, LifespanClient, WebSocketClient, wait_until, websocket_scope

Mode = Literal["ok", "block", "gate", "raise", "bug"]


class Peer:
    """One chat client at the ASGI level. ``mode`` decides what the app's data sends do:
    ``ok`` delivers, ``block`` never returns (a client that stopped reading), ``gate`` waits
    until ``room`` is set (a client whose buffer is full for a while), ``raise`` fails with
    OSError (a client that is gone, as ASGI 2.4 servers report it)."""

    def __init__(self, app: ChatApp, client_id: int, mode: Mode = "ok") -> None:
        self.client_id = client_id
        self.mode = mode
        self.inbox: asyncio.Queue[ASGIReceiveEvent] = asyncio.Queue()
        self.outbox: asyncio.Queue[ASGISendEvent] = asyncio.Queue()
        self.data_sends = 0  # websocket.send calls that reached this peer
        self.room = asyncio.Event()  # for mode "gate"
        self.task = asyncio.create_task(app(websocket_scope(f"/ws/{client_id}"), self.inbox.get, self.send))

    async def send(self, message: ASGISendEvent) -> None:
        if message["type"] == "websocket.send":
            self.data_sends += 1
            if self.mode == "block":
                await asyncio.Event().wait()  # never set: this send never returns
            elif self.mode == "gate":
                await self.room.wait()
            elif self.mode == "raise":
                raise OSError("peer gone")
            elif self.mode == "bug":
                raise ValueError("a server bug")
        self.outbox.put_nowait(message)

    async def join(self) -> None:
        self.inbox.put_nowait({"type": "websocket.connect"})
        assert (await self.next())["type"] == "websocket.accept"

    def say(self, text: str) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "text": text, "bytes": None})

    def leave(self, code: int = 1000) -> None:
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": code, "reason": ""})

    async def next(self) -> dict[str, Any]:
        return dict(await asyncio.wait_for(self.outbox.get(), TIMEOUT))

    async def texts(self, count: int) -> list[str]:
        return [str((await self.next())["text"]) for _ in range(count)]

    async def finished(self) -> None:
        await asyncio.wait_for(self.task, TIMEOUT)  # re-raises anything that escaped the app


def slow_app(**limits: Any) -> ChatApp:
    return create_app(Settings(**limits))


async def test_a_peer_whose_send_never_returns_is_dropped_with_1013(caplog: pytest.LogCaptureFixture) -> None:
    app = slow_app(send_timeout=0.2)
    healthy, stalled = Peer(app, 1), Peer(app, 2, "block")
    await healthy.join()
    await stalled.join()
    with caplog.at_level(logging.WARNING, logger="asgi_chat"):
        healthy.say("hello")
        assert await healthy.texts(2) == ["You wrote: hello", "Client #1 says: hello"]
        assert await healthy.texts(1) == ["Client #2 left the chat"]  # after the send timeout
        await stalled.finished()
    assert caplog.text.count("dropped") == 1
    assert "client #2 dropped: slow consumer: a send blocked for more than 0.2 s" in caplog.text
    assert app.ctx.metrics.slow_consumer_disconnects == 1
    healthy.say("still here")  # the healthy client was never held up
    assert await healthy.texts(2) == ["You wrote: still here", "Client #1 says: still here"]
    healthy.leave()
    await healthy.finished()


async def test_a_full_outbox_drops_the_member_with_1013_and_a_reason() -> None:
    app = slow_app(outbox_max_messages=3, send_timeout=0)
    healthy, stalled = Peer(app, 1), Peer(app, 2, "block")
    await healthy.join()
    await stalled.join()
    for n in range(6):
        healthy.say(f"m{n}")
    received = await healthy.texts(13)  # 6 x (You wrote + says), then the leave
    assert received[-1] == "Client #2 left the chat"
    assert [t for t in received if t.startswith("Client #1 says")] == [f"Client #1 says: m{n}" for n in range(6)]
    await stalled.finished()
    assert app.ctx.metrics.slow_consumer_disconnects == 1
    assert app.ctx.metrics.outbox_depth_max == 3
    assert stalled.data_sends == 1  # the writer took one message and has been stuck on it since


async def test_the_outbox_byte_bound_counts_utf8() -> None:
    app = slow_app(outbox_max_bytes=70, send_timeout=0)
    talker, stalled = Peer(app, 1), Peer(app, 2)
    await talker.join()
    await stalled.join()
    stalled.mode = "block"
    line = "\u00e9" * 10  # "Client #1 says: " + 20 bytes of UTF-8 = 36 bytes (26 characters)
    for _ in range(3):
        talker.say(line)  # the writer holds the first, the second waits, the third would make 72
        await talker.texts(2)
    await stalled.finished()
    assert app.ctx.metrics.slow_consumer_disconnects == 1
    close = await stalled.next()
    assert close == {
        "type": "websocket.close",
        "code": 1013,
        "reason": "slow consumer: 1 messages (36 bytes) already waiting",
    }


async def test_a_peer_whose_send_fails_leaves_alone_and_the_sender_stays() -> None:
    # The tutorial's bug: a failed send inside its broadcast removed and announced the *sender*.
    app = create_app(Settings())
    sender, gone = Peer(app, 1), Peer(app, 2)
    await sender.join()
    await gone.join()
    gone.mode = "raise"
    sender.say("hi")
    assert await sender.texts(3) == ["You wrote: hi", "Client #1 says: hi", "Client #2 left the chat"]
    await gone.finished()
    assert app.ctx.metrics.connections == 1  # the gone member is not counted as open
    sender.say("again")
    assert await sender.texts(2) == ["You wrote: again", "Client #1 says: again"]
    assert [m.label for m in app.ctx.hub.members] == ["client #1"]
    sender.leave()
    await sender.finished()


async def test_a_send_that_fails_in_another_way_ends_that_member_only(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings())
    sender, odd = Peer(app, 1), Peer(app, 2)
    await sender.join()
    await odd.join()
    odd.mode = "bug"
    with caplog.at_level(logging.WARNING, logger="asgi_chat"):
        sender.say("hi")
        assert await sender.texts(3) == ["You wrote: hi", "Client #1 says: hi", "Client #2 left the chat"]
        await odd.finished()
    assert "client #2: the server's send raised ValueError('a server bug')" in caplog.text
    sender.say("again")  # the fan-out goes on
    assert await sender.texts(2) == ["You wrote: again", "Client #1 says: again"]
    sender.leave()


async def test_one_senders_messages_arrive_in_order_everywhere_under_concurrency() -> None:
    app = create_app(Settings(rate_per_second=0))
    peers = [Peer(app, n) for n in range(5)]
    for peer in peers:
        await peer.join()
    count = 60
    for n in range(count):  # interleave the senders as tightly as the event loop allows
        for peer in peers:
            peer.say(f"{peer.client_id}:{n}")
    for peer in peers:
        texts = await peer.texts(count * 6)  # 60 "You wrote" + 5 x 60 "says"
        for sender in peers:
            prefix = f"Client #{sender.client_id} says: {sender.client_id}:"
            seen = [int(t.removeprefix(prefix)) for t in texts if t.startswith(prefix)]
            assert seen == list(range(count))
    for peer in peers:
        peer.leave()


async def test_after_a_send_that_waited_the_queue_follows_in_order_and_sending_resumes() -> None:
    app = create_app(Settings(rate_per_second=0))
    talker, slow = Peer(app, 1), Peer(app, 2)
    await talker.join()
    await slow.join()
    slow.mode = "gate"
    for n in range(3):
        talker.say(f"m{n}")  # m0's send to slow waits for room; m1 and m2 queue behind it
    await talker.texts(6)
    await wait_until(lambda: slow.data_sends == 1)
    assert slow.outbox.empty()
    slow.room.set()  # room again: m0 finishes, then the writer sends m1 and m2
    assert await slow.texts(3) == [f"Client #1 says: m{n}" for n in range(3)]
    talker.say("m3")  # the writer is done: this line goes out at once, after the others
    assert await slow.texts(1) == ["Client #1 says: m3"]
    assert slow.data_sends == 4
    talker.leave()
    slow.leave()
    await talker.finished()
    await slow.finished()


async def test_a_member_that_leaves_is_not_sent_to_again() -> None:
    app = slow_app(send_timeout=0)
    talker, leaver = Peer(app, 1), Peer(app, 2, "block")
    await talker.join()
    leaver.mode = "ok"
    await leaver.join()
    leaver.mode = "block"
    for n in range(3):
        talker.say(f"m{n}")  # the leaver's writer blocks on m0; m1 and m2 wait in its outbox
    await talker.texts(6)
    await wait_until(lambda: leaver.data_sends == 1)
    leaver.leave()
    assert await talker.texts(1) == ["Client #2 left the chat"]
    await leaver.finished()
    talker.say("after")
    await talker.texts(2)
    assert leaver.data_sends == 1  # m1, m2 and "after" never reached the gone member


async def test_a_join_during_a_broadcast_gets_the_later_messages() -> None:
    app = create_app(Settings())
    first, late = Peer(app, 1), Peer(app, 2)
    await first.join()
    snapshot = app.ctx.hub.members
    first.say("during")  # published; its delivery races with the join below
    await late.join()
    assert snapshot == app.ctx.hub.members[:1]  # a delivery's view of the members never changes
    first.say("after")
    assert await first.texts(4) == [
        "You wrote: during",
        "Client #1 says: during",
        "You wrote: after",
        "Client #1 says: after",
    ]
    says = await late.texts(1)
    if says == ["Client #1 says: during"]:  # the join won the race: it gets both, in order
        says = await late.texts(1)
    assert says == ["Client #1 says: after"]
    first.leave()
    late.leave()


async def test_nothing_is_left_behind_after_everyone_has_gone() -> None:
    app = create_app(Settings(send_timeout=0.2))
    life = LifespanClient(app)
    assert (await life.startup())["type"] == "lifespan.startup.complete"
    before = asyncio.all_tasks()
    peers = [Peer(app, n) for n in range(4)] + [Peer(app, 9, "block")]
    for peer in peers:
        await peer.join()
    peers[0].say("hello")
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
