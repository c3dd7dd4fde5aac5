"""``/chat/ws`` through the app: the handshake, the defences every endpoint shares, and nothing
left behind once the last client is gone."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

from asgi_chat import Settings, create_app
from asgi_chat.endpoints.protocol import SUBPROTOCOL
from tests.asgi.rooms_helpers import ROOM, in_room, lines, next_is_live, offsets, rooms_app, say_lines
from tests.helpers import TIMEOUT, WebSocketClient
from tests.rooms_support import RoomsClient, opened, presence_of

# --- the handshake ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subprotocols",
    [
        (),
        ("bearer", "token"),
        ("asgi-chat.v2",),  # another version of the protocol is another protocol
        ("asgi-chat",),
    ],
)
async def test_a_handshake_without_the_subprotocol_is_refused_before_accept_naming_it(
    subprotocols: tuple[str, ...],
) -> None:
    client = RoomsClient(rooms_app(), subprotocols=subprotocols)
    answer = await client.ws.connect()
    assert (answer["type"], answer["code"]) == ("websocket.close", 1008)  # before accept: HTTP 403 on the wire
    assert SUBPROTOCOL in answer["reason"]
    await client.ws.finished()


async def test_the_server_accepts_exactly_asgi_chat_v1_among_those_offered() -> None:
    client = RoomsClient(rooms_app(), subprotocols=("bearer", SUBPROTOCOL, "asgi-chat.v2"))
    assert await client.ws.connect() == {"type": "websocket.accept", "subprotocol": SUBPROTOCOL, "headers": []}
    await client.disconnect()


@pytest.mark.parametrize("joined_first", [False, True])
async def test_a_binary_frame_closes_1003(joined_first: bool) -> None:
    app = rooms_app()
    (other,) = await in_room(app, "other")
    client = await RoomsClient(app).open("binary")
    if joined_first:
        await client.join(ROOM)
        assert await other.expect("presence") == presence_of(ROOM, join=("binary",))
    await client.ws.send(data=json.dumps({"type": "say", "room": ROOM, "text": "x"}).encode())
    code, _ = await client.closed()
    assert code == 1003
    if joined_first:  # it left its rooms on the way out
        assert await other.expect("presence") == presence_of(ROOM, leave=("binary",))
    await next_is_live(other, other, 1)


# --- the defences of the other endpoints --------------------------------------------------------


async def test_a_foreign_origin_is_refused_before_accept() -> None:
    app = rooms_app()
    foreign = RoomsClient(app, headers=[(b"origin", b"https://evil.example")])
    assert await foreign.ws.connect() == {
        "type": "websocket.close",
        "code": 1008,
        "reason": "origin not allowed: https://evil.example:443",
    }
    own = RoomsClient(app, headers=[(b"origin", b"http://testserver")])
    await own.open("ada")
    await own.disconnect()


async def test_connections_beyond_the_per_address_limit_are_refused_before_accept() -> None:
    app = rooms_app(max_connections_per_address=1)
    first = await RoomsClient(app, client=("10.0.0.1", 1)).open("ada")
    second = RoomsClient(app, client=("10.0.0.1", 2))
    assert await second.ws.connect() == {
        "type": "websocket.close",
        "code": 1013,
        "reason": "too many open connections from your address",
    }
    await first.disconnect()
    again = await RoomsClient(app, client=("10.0.0.1", 3)).open("ada")  # a closed connection frees its place
    await again.disconnect()


async def test_a_frame_over_the_size_limit_closes_1009_and_leaves_the_rooms() -> None:
    def say(text: str) -> str:
        return json.dumps({"type": "say", "room": ROOM, "text": text}, ensure_ascii=False)

    fits, too_big = say("\u00e9" * 10), say("\u00e9" * 30)
    limit = len(too_big.encode()) - 1
    assert len(too_big) <= limit  # over the limit in UTF-8 bytes only, not in characters
    app = rooms_app(max_message_bytes=limit)
    other, big = await in_room(app, "other", "big")
    await big.send_text(fits)
    assert (await big.until("ack"))[1]["offset"] == 1
    assert (await other.expect("msg"))["offset"] == 1
    await big.send_text(too_big)
    assert await big.closed() == (1009, f"message too big: the limit is {limit} bytes")
    assert await other.expect("presence") == presence_of(ROOM, leave=("big",))


async def test_too_many_frames_close_1008_with_a_reason() -> None:
    app = create_app(Settings(rate_per_second=1, rate_burst=3))
    client = await RoomsClient(app).open("fast")  # 1: hello
    await client.join(ROOM)  # 2
    await client.say(ROOM, "one")  # 3
    await client.until("ack")
    await client.say(ROOM, "two")  # 4: over the burst
    assert await client.closed() == (1008, "too many messages: the limit is 1 per second")


# --- nothing left behind ------------------------------------------------------------------------------


async def running_tasks() -> set[asyncio.Task[Any]]:
    """The tasks still running besides this one, once those already told to stop have stopped."""
    current = asyncio.current_task()
    stopping = [task for task in asyncio.all_tasks() if task is not current and task.cancelling()]
    if stopping:
        await asyncio.wait(stopping, timeout=TIMEOUT)
    return {task for task in asyncio.all_tasks() if task is not current}


async def test_without_lifespan_no_task_outlives_the_last_rooms_client() -> None:
    app = rooms_app(send_timeout=5, outbox_max_messages=2)  # a watchdog, and a small outbox
    ada, bob, slow = await in_room(app, "ada", "bob", "slow")
    await bob.join("other")
    slow.stop_reading()
    await say_lines(ada, lines(1, 5), others=[])  # slow's writer task blocks, then it is dropped
    assert (await slow.closed())[0] == 1013
    await ada.request("leave", room=ROOM)
    await ada.until("left")
    await ada.disconnect()
    await bob.disconnect(1006)
    assert app.ctx.rooms._rooms == {}
    assert len(app.ctx.fanout) == 0
    assert await running_tasks() == set()


async def test_without_lifespan_no_task_outlives_the_last_tutorial_chat_client() -> None:
    app = rooms_app(send_timeout=5)
    one = WebSocketClient(app, "/ws/1")
    await one.accept()  # starts the hub on demand: its listener, and the fan-out's watchdog
    await one.send("hello")
    assert await one.receive_many(2) == ["You wrote: hello", "Client #1 says: hello"]
    (rooms,) = await in_room(app, "ada")  # a rooms client meanwhile shares the fan-out
    await rooms.disconnect()
    await one.disconnect()
    assert await running_tasks() == set()


@pytest.mark.parametrize("path", ["/ws/1", "/chat/ws"])
async def test_without_lifespan_a_client_gone_before_accept_leaves_no_task(path: str) -> None:
    """Connect, then gone before the app answers (issue 18): the hub or the rooms the handshake
    started on demand stop again, with nobody ever having been a member."""
    app = rooms_app(send_timeout=5)
    client = WebSocketClient(app, path, subprotocols=["asgi-chat.v1"])
    client.feed({"type": "websocket.connect"})
    client.leave(1001)
    with contextlib.suppress(AssertionError):  # the app may have accepted before it read the leave
        await client.output()
    await client.finished()
    assert await running_tasks() == set()


async def test_a_room_with_no_members_holds_nothing_here() -> None:
    app = rooms_app()
    ada, bob = await in_room(app, "ada", "bob")
    await say_lines(ada, lines(1, 2))
    await ada.request("leave", room=ROOM)
    await ada.until("left")
    assert set(app.ctx.rooms._rooms) == {ROOM}  # bob is still in it
    await bob.disconnect()
    assert app.ctx.rooms._rooms == {}
    assert len(app.ctx.rooms) == 0
    await ada.join(ROOM, history=0)  # its history is the store's, and comes back with a join
    await ada.request("history", room=ROOM, before=3, limit=10)
    assert offsets((await ada.expect("history"))["messages"]) == [1, 2]


@pytest.mark.parametrize(
    "chars",
    [
        100,  # 1000 msg frames of about 190 bytes: the replay fits the 1 MiB outbox
        2000,  # about 2 MB: more than the outbox holds, so the replay must wait for the client
    ],
)
async def test_a_reading_client_whose_buffer_is_full_for_a_moment_at_join_gets_the_whole_replay(chars: int) -> None:
    app = rooms_app()  # the default outbox bounds (1024 messages, 1 MiB) and replay_max (1000)
    (writer,) = await in_room(app, "writer")
    said = await say_lines(writer, [f"{n} " + "x" * chars for n in range(1, 1001)])
    (reader,) = await opened(app, "reader")
    reader.paused_sends = 1  # the joined frame finds the write buffer full; at the next turn it has room
    joined = await reader.join(ROOM, since={"epoch": writer.epochs[ROOM], "offset": 0})
    assert joined["offset"] == 1000
    assert await reader.frames(1000) == said
