"""``/chat/ws`` end to end: ``uvicorn asgi_chat:app`` on a free port, real ``websockets`` clients
(and ``asgi_chat.client``'s, for the concurrent senders).

Concurrent senders into one room, and a client whose TCP connection is dropped again and again in
the middle of a burst: every receiver gets every offset once, in order, or resumes to it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from contextlib import AsyncExitStack

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from asgi_chat.client import Client, Joined, Message, Presence, Welcome
from asgi_chat.endpoints.protocol import SUBPROTOCOL
from tests.helpers import TIMEOUT, Server, free_port, uvicorn_command
from tests.rooms_support import Frame, WireRoomsClient

SENDERS = 3
LINES = 200  # per sender
RECEIVERS = 3
KILLS = 50
LEAD = 200  # the killed client's sender stays at most this many lines ahead of it


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("rooms") / "server.log"
    env = {
        "ASGI_CHAT_RATE_PER_SECOND": "0",  # senders send as fast as they can
        "ASGI_CHAT_HISTORY_MESSAGES": "100000",  # keep every line of these tests: resume is exact
    }
    with Server(uvicorn_command(port), port, log, env) as running:
        yield running
    output = log.read_text()
    assert "Traceback" not in output, output
    assert "Exception in ASGI application" not in output, output


async def test_a_handshake_without_the_subprotocol_is_refused(server: Server) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{server.url}/chat/ws", open_timeout=TIMEOUT):
            pass
    # uvicorn offers the denial-response extension: the refusal is a 403 that says what to do.
    response = refused.value.response
    assert response.status_code == 403
    assert response.body == b"this endpoint speaks the asgi-chat.v1 subprotocol: offer it\n"


async def test_the_subprotocol_is_accepted_and_a_binary_frame_closes_1003(server: Server) -> None:
    client = await WireRoomsClient.connect(server.url, "ada")  # asserts the accepted subprotocol
    assert client.ws.subprotocol == SUBPROTOCOL
    await client.ws.send(b'{"type": "join", "room": "binary"}')
    assert (await client.closed())[0] == 1003


# --- many senders, one order ---------------------------------------------------------------------


async def collect(client: WireRoomsClient, messages: int) -> list[Frame]:
    """Read until ``messages`` msg frames have come; presence may come too, nothing else."""
    msgs: list[Frame] = []
    while len(msgs) < messages:
        frame = await client.frame()
        if frame["type"] == "msg":
            msgs.append(frame)
        else:
            assert frame["type"] == "presence", frame  # in particular, never a gap
    return msgs


async def lines_of(chat: Client, messages: int) -> list[Message]:
    """The next ``messages`` lines ``chat`` yields; presence may come too, nothing else (never a
    gap, never a reconnect)."""
    lines: list[Message] = []
    async for event in chat:
        if isinstance(event, Message):
            lines.append(event)
            if len(lines) == messages:
                return lines
        else:
            assert isinstance(event, (Welcome, Joined, Presence)), event
    raise AssertionError(f"the events ended after {len(lines)} lines")


async def test_concurrent_senders_every_receiver_gets_offsets_1_to_600_once_in_order(server: Server) -> None:
    """The senders are asgi_chat.client's (each say's offset is its ack's); the receivers read the
    wire itself, so that a line the server sent twice is seen (a Client would drop the repeat)."""
    room = "burst"
    total = SENDERS * LINES
    async with AsyncExitStack() as stack:
        senders = [await stack.enter_async_context(Client(server.url, user=f"sender-{n}")) for n in range(SENDERS)]
        receivers = [await WireRoomsClient.connect(server.url, f"receiver-{n}") for n in range(RECEIVERS)]
        for sender in senders:
            assert (await sender.join(room)).offset == 0
        for client in receivers:
            assert (await client.join(room))["offset"] == 0
        readers = [asyncio.create_task(collect(client, total)) for client in receivers]
        heard = [asyncio.create_task(lines_of(sender, total)) for sender in senders]

        # Every say of every sender in flight at once: each sender's sent in the order called.
        says = [
            asyncio.gather(*(sender.say(room, f"{n}:{line}") for line in range(LINES)))
            for n, sender in enumerate(senders)
        ]
        offsets = await asyncio.wait_for(asyncio.gather(*says), TIMEOUT * 2)
        received = await asyncio.wait_for(asyncio.gather(*readers), TIMEOUT * 2)
        sent_back = await asyncio.wait_for(asyncio.gather(*heard), TIMEOUT)
        for client in receivers:
            await client.close()
    reference = received[0]
    for msgs in received:
        assert [frame["offset"] for frame in msgs] == list(range(1, total + 1))  # no hole, no duplicate
        assert msgs == reference  # one total order, the same for everyone
    for n in range(SENDERS):
        own = [frame for frame in reference if frame["user"] == f"sender-{n}"]
        assert [frame["text"] for frame in own] == [f"{n}:{line}" for line in range(LINES)]  # in the order said
        assert offsets[n] == [frame["offset"] for frame in own]  # each say's ack names its line's offset
    as_sent = [(frame["offset"], frame["user"], frame["text"], frame["id"]) for frame in reference]
    for lines in sent_back:  # the senders hear the same lines, in the same order
        assert [(line.offset, line.user, line.text, line.id) for line in lines] == as_sent


# --- killed mid-burst, resumed ---------------------------------------------------------------------


class Progress:
    """How far the receiver has got, for the sender to keep within LEAD lines of it; and whether
    the receiver is done, for the sender to stop."""

    def __init__(self) -> None:
        self.offset = 0
        self.done = False
        self.changed = asyncio.Condition()

    async def advance(self, offset: int) -> None:
        async with self.changed:
            self.offset = offset
            self.changed.notify_all()

    async def finish(self) -> None:
        async with self.changed:
            self.done = True
            self.changed.notify_all()

    async def may_send(self, sent: int) -> bool:
        """Wait until the sender may send more (True) or should stop (False)."""
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: self.done or sent - self.offset < LEAD), TIMEOUT)
            return not self.done


async def keep_sending(sender: WireRoomsClient, room: str, progress: Progress) -> int:
    """Say "line 1", "line 2", ... in batches until the receiver is done, each acked with its own
    offset; the number of lines said."""
    rng = random.Random(2)
    sent = 0
    while await progress.may_send(sent):
        batch = rng.randint(1, 20)
        for n in range(sent + 1, sent + batch + 1):
            await sender.say(room, f"line {n}", id=str(n))
        for n in range(sent + 1, sent + batch + 1):
            _, ack = await sender.until("ack")
            assert (ack["id"], ack["offset"]) == (str(n), n)
        sent += batch
    return sent


async def read_some(client: WireRoomsClient, count: int, since: int, seen: list[int], progress: Progress) -> int:
    """Read ``count`` frames, each the next msg after ``since``; the last offset read."""
    for _ in range(count):
        frame = await client.frame()
        assert frame["type"] == "msg", frame  # never a gap: everything is retained
        assert (frame["offset"], frame["text"]) == (since + 1, f"line {since + 1}"), frame
        since = frame["offset"]
        seen.append(since)
        await progress.advance(since)
    return since


async def test_a_client_killed_mid_burst_resumes_with_since_and_gets_the_rest_once_50_times(server: Server) -> None:
    room = "kills"
    rng = random.Random(11)
    sender = await WireRoomsClient.connect(server.url, "sender")
    epoch = (await sender.join(room))["epoch"]
    progress = Progress()
    sending = asyncio.create_task(keep_sending(sender, room, progress))
    seen: list[int] = []
    since = 0
    for _ in range(KILLS):
        client = await WireRoomsClient.connect(server.url, "receiver")
        joined = await client.join(room, since={"epoch": epoch, "offset": since})
        assert joined["epoch"] == epoch
        # Anywhere: before the replay, inside it, or in the live lines after it.
        since = await read_some(client, rng.randint(0, 40), since, seen, progress)
        client.kill()  # no close frame: whatever was on its way to this connection is lost with it
    await progress.finish()
    top = await asyncio.wait_for(sending, TIMEOUT)
    client = await WireRoomsClient.connect(server.url, "receiver")
    joined = await client.join(room, since={"epoch": epoch, "offset": since})
    assert joined["offset"] == top
    await read_some(client, top - since, since, seen, progress)
    assert seen == list(range(1, top + 1))  # every line exactly once, across 51 connections
    assert top > KILLS * 10  # the sender really was mid-burst throughout
    await client.close()
    await sender.close()
