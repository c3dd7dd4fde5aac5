"""``/chat/ws`` (``asgi-chat.v1``, issue 11) through the app: every request and error, presence,
delivery, dedup, history, resume, slow consumers, and nothing left behind.

Where a test must show that something was *not* sent, it sends a line after it and checks that
this line is the next frame: an event to wait on, rather than a silence to wait out.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from asgi_chat import ChatApp, Settings, create_app
from asgi_chat.endpoints import protocol
from asgi_chat.endpoints.protocol import SUBPROTOCOL
from asgi_chat.engine.replay import Stored
from asgi_chat.engine.stores import StoreListener, StoreUnavailable
from asgi_chat.engine.stores.memory import OVERHEAD, MemoryStore
from tests.helpers import TIMEOUT, WebSocketClient
from tests.rooms_support import Frame, RoomsClient, opened

ROOM = "lobby"


def rooms_app(**settings: Any) -> ChatApp:
    """An app of its own; no rate limit unless a test asks for one (tests send in bursts)."""
    return create_app(Settings(**{"rate_per_second": 0, **settings}))


async def in_room(app: ChatApp, *users: str, room: str = ROOM) -> list[RoomsClient]:
    """One connection per user, each joined to ``room`` live only, in order; every presence
    event the earlier ones got for the later ones read."""
    clients = await opened(app, *users)
    for n, client in enumerate(clients):
        await client.join(room)
        for earlier in clients[:n]:
            assert await earlier.expect("presence") == {
                "type": "presence",
                "room": room,
                "user": users[n],
                "event": "join",
            }
    return clients


async def say_lines(
    client: RoomsClient, texts: list[str], room: str = ROOM, others: list[Frame] | None = None
) -> list[Frame]:
    """``client`` (a member of ``room``) says each line in turn; the ``msg`` frames it got back.

    Any other frame that comes meanwhile goes to ``others``; without ``others``, none may come.
    """
    echoes: list[Frame] = []
    for text in texts:
        await client.say(room, text)
        before, _ = await client.until("ack")
        echoes += [frame for frame in before if frame["type"] == "msg"]
        rest = [frame for frame in before if frame["type"] != "msg"]
        if others is None:
            assert not rest, rest
        else:
            others.extend(rest)
    return echoes


def lines(first: int, last: int) -> list[str]:
    return [f"line {n}" for n in range(first, last + 1)]


def offsets(frames: list[Frame]) -> list[int]:
    assert all(frame["type"] == "msg" for frame in frames), frames
    return [frame["offset"] for frame in frames]


async def next_is_live(reader: RoomsClient, writer: RoomsClient, offset: int, room: str = ROOM) -> None:
    """Nothing else is on its way to ``reader``: a line said now is its very next frame."""
    await writer.say(room, "live")
    if reader is writer:  # its line and the ack, in either order
        frames = sorted(await reader.frames(2), key=lambda frame: str(frame["type"]))
        assert [frame["type"] for frame in frames] == ["ack", "msg"], frames
        frame = frames[1]
    else:
        await writer.until("ack")
        frame = await reader.frame()
    assert (frame["type"], frame["offset"], frame["text"]) == ("msg", offset, "live"), frame


async def error_of(client: RoomsClient, **request: Any) -> Frame:
    await client.request(**request)
    return await client.expect("error")


async def still_open(client: RoomsClient, room: str = ROOM) -> Frame:
    """The connection works on: a line said in ``room`` comes back (its ``msg``)."""
    await client.say(room, "still here")
    (echo,), _ = await client.until("ack")
    assert echo["text"] == "still here"
    return echo


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
        assert (await other.expect("presence"))["event"] == "join"
    await client.ws.send(data=json.dumps({"type": "say", "room": ROOM, "text": "x"}).encode())
    code, _ = await client.closed()
    assert code == 1003
    if joined_first:  # it left its rooms on the way out
        assert await other.expect("presence") == {"type": "presence", "room": ROOM, "user": "binary", "event": "leave"}
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
    assert await other.expect("presence") == {"type": "presence", "room": ROOM, "user": "big", "event": "leave"}


async def test_too_many_frames_close_1008_with_a_reason() -> None:
    app = create_app(Settings(rate_per_second=1, rate_burst=3))
    client = await RoomsClient(app).open("fast")  # 1: hello
    await client.join(ROOM)  # 2
    await client.say(ROOM, "one")  # 3
    await client.until("ack")
    await client.say(ROOM, "two")  # 4: over the burst
    assert await client.closed() == (1008, "too many messages: the limit is 1 per second")


# --- errors: every code, the connection staying open ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "echoed_id"),
    [
        ("not json", None),
        ("", None),
        ("{'type': 'say'}", None),  # Python, not JSON
        ("[1, 2]", None),  # JSON, but not an object
        ('"hello"', None),
        ("42", None),
        ("null", None),
        ('{"id": "r1"}', "r1"),  # no type
        ('{"type": "shout", "id": "r1"}', "r1"),
        ('{"type": 5, "id": "r1"}', "r1"),
        ('{"type": "hello", "user": "again", "id": "r1"}', "r1"),  # a second hello
        ('{"type": "say", "room": "lobby", "text": "", "id": "r1"}', "r1"),  # empty text
        ('{"type": "say", "room": "lobby", "id": "r1"}', "r1"),
        ('{"type": "say", "room": "lobby", "text": 5, "id": "r1"}', "r1"),
        ('{"type": "say", "room": "lobby", "text": null, "id": "r1"}', "r1"),
        ('{"type": "say", "room": 5, "text": "x", "id": "r1"}', "r1"),  # a wrong-typed room is no room name
        ('{"type": "say", "text": "x", "id": "r1"}', "r1"),
        ('{"type": "join", "room": "lobby", "id": "r1"}', "r1"),  # already joined
        ('{"type": "join", "room": "other", "since": {"epoch": "e", "offset": 0}, "history": 1, "id": "r1"}', "r1"),
        ('{"type": "join", "room": "other", "since": 5, "id": "r1"}', "r1"),
        ('{"type": "join", "room": "other", "since": null, "id": "r1"}', "r1"),
        ('{"type": "join", "room": "other", "since": {"epoch": "e"}, "id": "r1"}', "r1"),
        ('{"type": "join", "room": "other", "since": {"offset": 0}, "id": "r1"}', "r1"),
        ('{"type": "join", "room": "other", "since": {"epoch": 1, "offset": 0}, "id": "r1"}', "r1"),
        ('{"type": "join", "room": "other", "since": {"epoch": "e", "offset": -1}, "id": "r1"}', "r1"),
        ('{"type": "join", "room": "other", "since": {"epoch": "e", "offset": "3"}, "id": "r1"}', "r1"),
        ('{"type": "join", "room": "other", "history": -1, "id": "r1"}', "r1"),
        ('{"type": "join", "room": "other", "history": true, "id": "r1"}', "r1"),  # a bool is no number here
        ('{"type": "join", "room": "other", "history": 1.5, "id": "r1"}', "r1"),
        ('{"type": "join", "room": "other", "history": null, "id": "r1"}', "r1"),
        ('{"type": "leave", "id": "r1"}', "r1"),
        ('{"type": "history", "room": "lobby", "before": 5, "limit": 0, "id": "r1"}', "r1"),
        ('{"type": "history", "room": "lobby", "before": 5, "limit": 101, "id": "r1"}', "r1"),
        ('{"type": "history", "room": "lobby", "limit": 10, "id": "r1"}', "r1"),
        ('{"type": "history", "room": "lobby", "before": -1, "limit": 10, "id": "r1"}', "r1"),
        ('{"type": "history", "room": "lobby", "before": 5, "id": "r1"}', "r1"),
        # An id that is not one is not echoed.
        ('{"type": "say", "room": "lobby", "text": "x", "id": ""}', None),
        ('{"type": "say", "room": "lobby", "text": "x", "id": "' + "i" * 65 + '"}', None),
        ('{"type": "say", "room": "lobby", "text": "x", "id": 7}', None),
        ('{"type": "say", "room": "lobby", "text": "x", "id": null}', None),
    ],
)
async def test_a_bad_request_gets_an_error_and_the_connection_stays_open(text: str, echoed_id: str | None) -> None:
    (client,) = await in_room(rooms_app(), "ada")
    await client.send_text(text)
    error = await client.expect("error")
    assert error["code"] == "bad_request"
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error.get("id") == echoed_id
    assert set(error) == {"type", "code", "message"} | ({"id"} if echoed_id else set())
    # Nothing of the bad request happened: not a second name, not a room joined.
    assert (await still_open(client))["user"] == "ada"
    assert (await error_of(client, kind="say", room="other", text="x", id="r2"))["code"] == "not_joined"
    await client.disconnect()


@pytest.mark.parametrize(
    "request_frame",
    [
        {"type": "join", "room": ROOM},
        {"type": "say", "room": ROOM, "text": "x"},
        {"type": "leave", "room": ROOM},
        {"type": "history", "room": ROOM, "before": 1, "limit": 1},
    ],
)
async def test_any_request_before_hello_gets_hello_first(request_frame: dict[str, Any]) -> None:
    client = await RoomsClient(rooms_app()).open()
    await client.send_text(json.dumps({**request_frame, "id": "early"}))
    error = await client.expect("error")
    assert (error["code"], error["id"]) == ("hello_first", "early")
    await client.hello("ada")  # the connection stays open, and hello still comes first
    await client.join(ROOM)
    await client.disconnect()


@pytest.mark.parametrize(
    "user",
    [
        "",
        "   ",
        "\t\n",  # whitespace only: empty once stripped
        "a" * 33,
        "e\u0301" * 17 + "x" * 16,  # 33 characters even once NFC-normalised (17 é + 16 x)
        "ab\x07",  # a control character (Cc) ...
        "a\nb",  # ... inside the name, where stripping does not reach it
        "\x7f",
        "ada\x00",
        "\u0085ada\u0085x",  # NEL is Cc (and whitespace: the outer one is stripped, not the inner)
    ],
)
async def test_a_bad_name_gets_bad_name_and_hello_may_be_tried_again(user: str) -> None:
    client = await RoomsClient(rooms_app()).open()
    await client.request("hello", user=user, id="h1")
    error = await client.expect("error")
    assert (error["code"], error["id"]) == ("bad_name", "h1")
    assert (await error_of(client, kind="join", room=ROOM, id="j1"))["code"] == "hello_first"
    assert (await client.hello("ada"))["user"] == "ada"
    await client.disconnect()


@pytest.mark.parametrize(
    ("user", "shown"),
    [
        ("  Ada Lovelace \t", "Ada Lovelace"),  # stripped
        ("e\u0301", "\u00e9"),  # NFC: é as one character
        ("x" * 31 + "e\u0301", "x" * 31 + "\u00e9"),  # 33 characters before NFC, 32 after: allowed
        ("a" * 32, "a" * 32),
        ("\u6f22\u5b57 \U0001f642", "\u6f22\u5b57 \U0001f642"),
    ],
)
async def test_a_name_is_welcomed_as_normalised_and_shown_so(user: str, shown: str) -> None:
    app = rooms_app()
    (other,) = await in_room(app, "other")
    client = await RoomsClient(app).open()
    await client.request("hello", user=user, id="h")
    assert await client.expect("welcome") == {"type": "welcome", "user": shown, "id": "h"}
    assert (await client.join(ROOM))["presence"] == sorted(["other", shown])
    assert (await other.expect("presence"))["user"] == shown
    await client.say(ROOM, "hi")
    assert (await other.expect("msg"))["user"] == shown


@pytest.mark.parametrize(
    "room",
    ["", "A", "Lobby", "-a", "_a", "a" * 65, "a\n", "a ", " a", "a b", "caf\u00e9", "a/b", "a.b", "a\x00", "\u0661"],
)
async def test_a_bad_room_name_gets_bad_room(room: str) -> None:
    app = rooms_app()
    (client,) = await in_room(app, "ada")
    error = await error_of(client, kind="join", room=room, id="j")
    assert (error["code"], error["id"]) == ("bad_room", "j")
    assert room not in app.ctx.rooms._rooms
    await still_open(client)


@pytest.mark.parametrize("room", ["a" * 64, "0", "a_-9", "9-lives", "a_"])
async def test_a_good_room_name_is_joined(room: str) -> None:
    (client,) = await opened(rooms_app(), "ada")
    assert (await client.join(room))["room"] == room


@pytest.mark.parametrize(
    "request_frame",
    [
        {"type": "say", "room": "Lobby", "text": "x"},
        {"type": "leave", "room": "lobby\n"},
        {"type": "history", "room": "-lobby", "before": 1, "limit": 1},
    ],
)
async def test_bad_room_comes_before_not_joined(request_frame: dict[str, Any]) -> None:
    (client,) = await in_room(rooms_app(), "ada")
    await client.send_text(json.dumps({**request_frame, "id": "x"}))
    assert (await client.expect("error"))["code"] == "bad_room"


@pytest.mark.parametrize(
    "request_frame",
    [
        {"type": "say", "room": "elsewhere", "text": "x"},
        {"type": "leave", "room": "elsewhere"},
        {"type": "history", "room": "elsewhere", "before": 1, "limit": 1},
    ],
)
async def test_a_room_not_joined_gets_not_joined(request_frame: dict[str, Any]) -> None:
    app = rooms_app()
    (member,) = await in_room(app, "member", room="elsewhere")  # the room exists, but ada is not in it
    (client,) = await in_room(app, "ada")
    await client.send_text(json.dumps({**request_frame, "id": "x"}))
    error = await client.expect("error")
    assert (error["code"], error["id"]) == ("not_joined", "x")
    await next_is_live(member, member, 1, room="elsewhere")  # ada's say did not reach the room


async def test_after_leave_the_room_is_not_joined() -> None:
    (client,) = await in_room(rooms_app(), "ada")
    await client.request("leave", room=ROOM)
    assert await client.expect("left") == {"type": "left", "room": ROOM}
    assert (await error_of(client, kind="say", room=ROOM, text="x"))["code"] == "not_joined"
    assert (await error_of(client, kind="leave", room=ROOM))["code"] == "not_joined"
    assert (await client.join(ROOM))["offset"] == 0  # and may be joined again


async def test_too_many_rooms_for_one_connection() -> None:
    app = rooms_app(rooms_per_connection=3)
    (client,) = await opened(app, "ada")
    await client.join("zero")
    await client.join("one")
    await client.join("two")
    error = await error_of(client, kind="join", room="three", id="j3")
    assert (error["code"], error["id"]) == ("too_many_rooms", "j3")
    assert (await error_of(client, kind="say", room="three", text="x"))["code"] == "not_joined"
    await client.request("leave", room="one")
    await client.expect("left")
    assert (await client.join("three"))["room"] == "three"  # a room left frees its place
    (other,) = await opened(app, "ada")  # the limit is per connection, not per user
    for room in ("one", "two", "four"):
        await other.join(room)


async def test_too_many_rooms_in_the_process() -> None:
    app = rooms_app(max_rooms=2)
    ada, bob = await opened(app, "ada", "bob")
    await ada.join("one")
    await ada.join("two")
    error = await error_of(bob, kind="join", room="three", id="j3")
    assert (error["code"], error["id"]) == ("too_many_rooms", "j3")
    assert "three" not in app.ctx.rooms._rooms  # the refused join left nothing behind
    assert (await error_of(bob, kind="say", room="three", text="x"))["code"] == "not_joined"
    assert (await bob.join("one"))["presence"] == ["ada", "bob"]  # rooms that exist can still be joined
    await ada.request("leave", room="two")
    await ada.until("left")
    # An empty room is still held (with its history) until it has been idle for room_idle_seconds.
    assert (await error_of(bob, kind="join", room="three"))["code"] == "too_many_rooms"


async def test_a_text_longer_than_max_text_chars_is_too_large() -> None:
    (client,) = await in_room(rooms_app(max_text_chars=5), "ada")
    error = await error_of(client, kind="say", room=ROOM, text="123456", id="s1")
    assert (error["code"], error["id"]) == ("too_large", "s1")
    echoes = await say_lines(client, ["12345", "\u00e9\u00e9\u00e9\u00e9\u00e9"])  # characters, not bytes
    assert [echo["text"] for echo in echoes] == ["12345", "\u00e9" * 5]
    assert offsets(echoes) == [1, 2]  # the refused say took no offset


class DownStore(MemoryStore):
    """A memory store that cannot be reached while ``down`` is set."""

    down = False

    async def open(self, listener: StoreListener) -> None:
        if self.down:
            raise StoreUnavailable("the store is down")
        await super().open(listener)

    async def append(self, room: str, user: str, text: str, say_id: str | None) -> tuple[int, bool]:
        if self.down:
            raise StoreUnavailable("the store is down")
        return await super().append(room, user, text, say_id)

    async def enter(self, room: str, user: str) -> list[str]:
        if self.down:
            raise StoreUnavailable("the store is down")
        return await super().enter(room, user)

    async def exit(self, room: str, user: str) -> None:
        if self.down:
            raise StoreUnavailable("the store is down")
        await super().exit(room, user)

    async def before(self, room: str, before: int, limit: int) -> list[Stored]:
        if self.down:
            raise StoreUnavailable("the store is down")
        return await super().before(room, before, limit)


def down_app() -> tuple[ChatApp, DownStore]:
    settings = Settings(rate_per_second=0)
    store = DownStore(settings, protocol.msg)
    return create_app(settings, store=store), store


async def test_a_store_that_cannot_be_reached_is_unavailable() -> None:
    app, store = down_app()
    store.down = True
    assert await RoomsClient(app).ws.connect() == {
        "type": "websocket.close",
        "code": 1013,
        "reason": "chat unavailable: its room store cannot be reached",
    }
    store.down = False
    (client,) = await in_room(app, "ada")
    store.down = True
    error = await error_of(client, kind="say", room=ROOM, text="x", id="s")
    assert (error["code"], error["id"]) == ("unavailable", "s")
    error = await error_of(client, kind="join", room="other", id="j")
    assert (error["code"], error["id"]) == ("unavailable", "j")
    assert "other" not in app.ctx.rooms._rooms
    store.down = False
    assert (await client.join("other"))["room"] == "other"  # the failed join did not count as joined
    await still_open(client)


async def test_history_with_a_store_that_cannot_be_reached_is_unavailable() -> None:
    app, store = down_app()
    (client,) = await in_room(app, "ada")
    store.down = True
    await client.send_text(json.dumps({"type": "history", "room": ROOM, "before": 1, "limit": 1, "id": "r"}))
    error = await client.expect("error")
    assert (error["code"], error["id"]) == ("unavailable", "r")
    store.down = False
    await still_open(client)


async def test_leave_with_a_store_that_cannot_be_reached_still_leaves() -> None:
    """Leaving never fails: this connection is out of the room at once, and a store out of reach
    forgets it when its presence entry expires (the Redis store's design)."""
    app, store = down_app()
    (client,) = await in_room(app, "ada")
    store.down = True
    await client.send_text(json.dumps({"type": "leave", "room": ROOM, "id": "r"}))
    assert await client.expect("left") == {"type": "left", "room": ROOM, "id": "r"}
    assert ROOM not in app.ctx.rooms._rooms
    store.down = False
    await client.send_text(json.dumps({"type": "say", "room": ROOM, "text": "x", "id": "s"}))
    assert (await client.expect("error"))["code"] == "not_joined"


# --- replies carry the request's id ---------------------------------------------------------------


async def test_every_reply_carries_the_requests_id() -> None:
    app = rooms_app()
    (other,) = await in_room(app, "other")
    client = await RoomsClient(app).open()
    long_id = "i" * 64
    await client.request("hello", user="ada", id="\u00e9-1")
    assert await client.expect("welcome") == {"type": "welcome", "user": "ada", "id": "\u00e9-1"}
    await client.request("join", room=ROOM, id="j")
    joined = await client.expect("joined")
    assert (joined["type"], joined["id"]) == ("joined", "j")
    assert set(joined) == {"type", "room", "epoch", "offset", "presence", "id"}
    await other.expect("presence")
    await client.request("say", room=ROOM, text="hello", id=long_id)
    frames = sorted(await client.frames(2), key=lambda frame: str(frame["type"]))
    assert frames == [
        {"type": "ack", "room": ROOM, "offset": 1, "id": long_id},
        {**frames[1], "type": "msg", "offset": 1, "id": long_id},  # the say's id rides along on the msg
    ]
    assert (await other.expect("msg"))["id"] == long_id
    await client.request("history", room=ROOM, before=2, limit=10, id="h")
    history = await client.expect("history")
    assert (history["id"], len(history["messages"])) == ("h", 1)
    await client.request("join", room=ROOM, id="again")
    assert await client.expect("error") == {
        "type": "error",
        "code": "bad_request",
        "message": f"already in room {ROOM}",
        "id": "again",
    }
    await client.request("leave", room=ROOM, id="l")
    assert await client.expect("left") == {"type": "left", "room": ROOM, "id": "l"}


async def test_replies_without_an_id_carry_none() -> None:
    (client,) = await opened(rooms_app(), "ada")
    joined = await client.join(ROOM)
    assert "id" not in joined
    await client.say(ROOM, "x")
    assert all("id" not in frame for frame in await client.frames(2))
    await client.request("leave", room=ROOM)
    assert await client.expect("left") == {"type": "left", "room": ROOM}


# --- presence --------------------------------------------------------------------------------------


async def test_presence_counts_users_not_connections() -> None:
    app = rooms_app()
    zed, amy_1, amy_2 = await opened(app, "zed", "amy", "amy")
    first = await zed.join(ROOM)
    assert (first["offset"], first["presence"]) == (0, ["zed"])  # a new room: no message, the joiner present
    assert (await amy_1.join(ROOM))["presence"] == ["amy", "zed"]  # sorted, the joiner included
    assert await zed.expect("presence") == {"type": "presence", "room": ROOM, "user": "amy", "event": "join"}
    assert (await amy_2.join(ROOM))["presence"] == ["amy", "zed"]  # amy's second tab is still one amy
    await next_is_live(zed, amy_2, 1)  # so zed heard no second join: its next frame is this line
    assert offsets([await amy_1.frame()]) == [1]  # nor did amy's first tab hear of a join of its own
    await amy_1.disconnect(1001)  # one tab of two closed: amy is still here
    await next_is_live(zed, amy_2, 2)  # zed's next frame is this line, not a leave
    await next_is_live(amy_2, zed, 3)
    await amy_2.disconnect(1006)  # the last tab: amy has left
    assert await zed.expect("presence") == {"type": "presence", "room": ROOM, "user": "amy", "event": "leave"}
    bob = await RoomsClient(app).open("Bob")
    assert (await bob.join(ROOM))["presence"] == ["Bob", "zed"]
    await zed.expect("presence")
    await bob.request("leave", room=ROOM)  # a leave request is announced like a close
    await bob.expect("left")
    assert await zed.expect("presence") == {"type": "presence", "room": ROOM, "user": "Bob", "event": "leave"}
    await next_is_live(zed, zed, 4)


async def test_a_closed_connection_leaves_every_room_it_was_in() -> None:
    app = rooms_app()
    watcher, leaver = await opened(app, "watcher", "leaver")
    for room in ("one", "two"):
        await watcher.join(room)
        await leaver.join(room)
        assert (await watcher.expect("presence"))["event"] == "join"
    await leaver.disconnect()
    leaves = await watcher.frames(2)
    assert sorted(frame["room"] for frame in leaves) == ["one", "two"]
    assert {(frame["type"], frame["user"], frame["event"]) for frame in leaves} == {("presence", "leaver", "leave")}


# --- say -------------------------------------------------------------------------------------------


async def test_a_line_reaches_every_member_the_sender_included_and_no_one_else() -> None:
    app = rooms_app()
    ada, bob, cy = await in_room(app, "ada", "bob", "cy")
    (outsider,) = await in_room(app, "outsider", room="elsewhere")
    before = time.time_ns() // 1_000_000
    await ada.say(ROOM, "hello, room", id="s-1")
    frames = sorted(await ada.frames(2), key=lambda frame: str(frame["type"]))
    after = time.time_ns() // 1_000_000
    ack, msg = frames
    assert ack == {"type": "ack", "room": ROOM, "offset": 1, "id": "s-1"}
    assert msg == {
        "type": "msg",
        "room": ROOM,
        "offset": 1,
        "ts": msg["ts"],
        "user": "ada",
        "text": "hello, room",
        "id": "s-1",
    }
    assert type(msg["ts"]) is int  # integer milliseconds since the Unix epoch, server time
    assert before <= msg["ts"] <= after
    assert await bob.expect("msg") == msg
    assert await cy.expect("msg") == msg
    await next_is_live(outsider, outsider, 1, room="elsewhere")  # its own room's offsets, nothing of lobby's
    await bob.say(ROOM, "no id")
    assert set(await ada.expect("msg")) == {"type", "room", "offset", "ts", "user", "text"}


async def test_a_resent_say_id_is_acked_with_the_first_offset_and_not_published_again() -> None:
    app = rooms_app()
    ada, bob = await in_room(app, "ada", "bob")
    await ada.say(ROOM, "once", id="k")
    first = next(frame for frame in await ada.frames(2) if frame["type"] == "msg")
    assert (await bob.expect("msg")) == first
    await ada.say(ROOM, "once", id="k")
    assert await ada.expect("ack") == {"type": "ack", "room": ROOM, "offset": 1, "id": "k"}  # no msg before it
    await ada.say(ROOM, "a different text, the same id", id="k")  # the id decides, not the text
    assert await ada.expect("ack") == {"type": "ack", "room": ROOM, "offset": 1, "id": "k"}
    await next_is_live(bob, ada, 2)  # and neither reached bob
    await next_is_live(ada, ada, 3)


async def test_a_client_that_lost_its_connection_before_the_ack_can_resend() -> None:
    app = rooms_app()
    (bob,) = await in_room(app, "bob")
    (ada,) = await in_room(app, "ada")
    await bob.expect("presence")
    await ada.say(ROOM, "did it arrive?", id="k")
    await ada.disconnect(1006)  # before reading the ack
    assert (await bob.expect("msg"))["text"] == "did it arrive?"
    assert (await bob.expect("presence"))["event"] == "leave"
    (again,) = await in_room(app, "ada")  # the same user, a new connection
    await bob.expect("presence")
    await again.say(ROOM, "did it arrive?", id="k")
    assert await again.expect("ack") == {"type": "ack", "room": ROOM, "offset": 1, "id": "k"}
    await next_is_live(bob, bob, 2)


async def test_a_say_id_is_one_users_in_one_room() -> None:
    app = rooms_app()
    ada, bob = await in_room(app, "ada", "bob")
    await ada.join("other")
    await bob.join("other")
    await ada.expect("presence")
    await ada.say(ROOM, "ada in lobby", id="k")
    assert (await ada.until("ack"))[1]["offset"] == 1
    await bob.say(ROOM, "bob in lobby, the same id", id="k")  # another user's id
    assert (await bob.until("ack"))[1]["offset"] == 2
    await ada.say("other", "ada in other, the same id", id="k")  # another room
    assert (await ada.until("ack"))[1]["offset"] == 1
    other = await bob.expect("msg")
    assert (other["room"], other["offset"], other["text"]) == ("other", 1, "ada in other, the same id")


# --- history -----------------------------------------------------------------------------------------


async def test_history_pages_back_through_the_room() -> None:
    app = rooms_app()
    (writer,) = await in_room(app, "writer")
    said = await say_lines(writer, lines(1, 10))
    by_offset = {frame["offset"]: frame for frame in said}

    async def page(before: int, limit: int) -> list[Frame]:
        await writer.request("history", room=ROOM, before=before, limit=limit, id="h")
        reply = await writer.expect("history")
        assert set(reply) == {"type", "room", "messages", "id"}
        assert reply["room"] == ROOM
        return list(reply["messages"])

    assert await page(11, 3) == [by_offset[n] for n in (8, 9, 10)]  # the latest 3 before 11, ascending
    assert await page(8, 3) == [by_offset[n] for n in (5, 6, 7)]  # "load earlier": before the first shown
    assert await page(5, 100) == [by_offset[n] for n in (1, 2, 3, 4)]
    assert await page(2, 1) == [by_offset[1]]
    assert await page(1, 100) == []
    assert await page(0, 1) == []
    assert await page(1000, 2) == [by_offset[9], by_offset[10]]


async def test_history_holds_only_what_is_retained() -> None:
    app = rooms_app(history_messages=4)
    (writer,) = await in_room(app, "writer")
    said = await say_lines(writer, lines(1, 10))
    await writer.request("history", room=ROOM, before=11, limit=100)
    assert (await writer.expect("history"))["messages"] == said[-4:]  # 7 to 10: the latest 4
    await writer.request("history", room=ROOM, before=9, limit=100)
    assert offsets((await writer.expect("history"))["messages"]) == [7, 8]
    await writer.request("history", room=ROOM, before=7, limit=100)
    assert (await writer.expect("history"))["messages"] == []


@pytest.mark.parametrize(
    ("history", "replayed"),
    [
        (3, [6, 7, 8]),  # the latest 3
        (0, []),
        (1, [8]),
        (100, [1, 2, 3, 4, 5, 6, 7, 8]),  # all there is
    ],
)
async def test_join_with_history_replays_the_latest_k_then_goes_live(history: int, replayed: list[int]) -> None:
    app = rooms_app()
    (writer,) = await in_room(app, "writer")
    said = await say_lines(writer, lines(1, 8))
    (reader,) = await opened(app, "reader")
    joined = await reader.join(ROOM, history=history)
    assert (joined["offset"], joined["presence"]) == (8, ["reader", "writer"])
    assert await reader.frames(len(replayed)) == [said[n - 1] for n in replayed]
    await writer.expect("presence")
    await next_is_live(reader, writer, 9)  # no gap, no repeat: straight on to the live line


async def test_join_with_history_of_a_trimmed_room_gives_what_is_retained_without_a_gap() -> None:
    app = rooms_app(history_messages=3)
    (writer,) = await in_room(app, "writer")
    await say_lines(writer, lines(1, 8))
    (reader,) = await opened(app, "reader")
    await reader.join(ROOM, history=5)
    assert offsets(await reader.frames(3)) == [6, 7, 8]
    await writer.expect("presence")
    await next_is_live(reader, writer, 9)


async def test_a_live_only_join_replays_nothing() -> None:
    app = rooms_app()
    (writer,) = await in_room(app, "writer")
    await say_lines(writer, lines(1, 5))
    (reader,) = await opened(app, "reader")
    assert (await reader.join(ROOM))["offset"] == 5
    await writer.expect("presence")
    await next_is_live(reader, writer, 6)


# --- resume ------------------------------------------------------------------------------------------


async def test_resume_after_a_lost_connection_replays_exactly_what_was_missed() -> None:
    app = rooms_app()
    writer, reader = await in_room(app, "writer", "reader")
    epoch = reader.epochs[ROOM]
    assert epoch == writer.epochs[ROOM]
    said = await say_lines(writer, lines(1, 3))
    assert await reader.frames(3) == said
    await reader.disconnect(1006)
    await writer.expect("presence")
    said += await say_lines(writer, lines(4, 7))
    (again,) = await opened(app, "reader")
    joined = await again.join(ROOM, since={"epoch": epoch, "offset": 3})
    assert (joined["epoch"], joined["offset"]) == (epoch, 7)
    assert await again.frames(4) == said[3:]  # 4 to 7, each once, in order, no gap
    await writer.expect("presence")
    await next_is_live(again, writer, 8)


async def resume(
    app: ChatApp, writer: RoomsClient, since: dict[str, Any], room: str = ROOM
) -> tuple[Frame, RoomsClient]:
    """A new connection of "reader" that joins ``room`` with ``since``: its ``joined``, and it."""
    (reader,) = await opened(app, "reader")
    joined = await reader.join(room, since=since)
    assert await writer.expect("presence") == {"type": "presence", "room": room, "user": "reader", "event": "join"}
    return joined, reader


def gap(first: int, last: int, reason: str) -> Frame:
    return {"type": "gap", "room": ROOM, "from": first, "to": last, "reason": reason}


@pytest.mark.parametrize(
    ("settings", "since", "expected"),
    [
        # Everything retained: exactly (since, top].
        ({}, 0, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        ({}, 6, [7, 8, 9, 10]),
        ({}, 10, []),  # at the top: nothing missed
        # history_messages=4 keeps 7 to 10: what is gone is one trimmed gap, with exact bounds.
        ({"history_messages": 4}, 1, [gap(2, 6, "trimmed"), 7, 8, 9, 10]),
        ({"history_messages": 4}, 0, [gap(1, 6, "trimmed"), 7, 8, 9, 10]),
        ({"history_messages": 4}, 5, [gap(6, 6, "trimmed"), 7, 8, 9, 10]),
        ({"history_messages": 4}, 6, [7, 8, 9, 10]),  # just retained: no gap
        # replay_max=3: more than 3 to replay skips the oldest part, announced as a limit gap.
        ({"replay_max": 3}, 1, [gap(2, 7, "limit"), 8, 9, 10]),
        ({"replay_max": 3}, 7, [8, 9, 10]),
        ({"replay_max": 3}, 6, [gap(7, 7, "limit"), 8, 9, 10]),
        # Both: the trimmed part first, then the limit part, then the newest 2.
        ({"history_messages": 5, "replay_max": 2}, 1, [gap(2, 5, "trimmed"), gap(6, 8, "limit"), 9, 10]),
    ],
)
async def test_resume_replays_what_is_missed_or_says_exactly_what_is_not(
    settings: dict[str, Any], since: int, expected: list[int | Frame]
) -> None:
    app = rooms_app(**settings)
    (writer,) = await in_room(app, "writer")
    said = await say_lines(writer, lines(1, 10))
    joined, reader = await resume(app, writer, {"epoch": writer.epochs[ROOM], "offset": since})
    assert (joined["epoch"], joined["offset"], joined["presence"]) == (writer.epochs[ROOM], 10, ["reader", "writer"])
    frames = await reader.frames(len(expected))
    assert frames == [item if isinstance(item, dict) else said[item - 1] for item in expected]
    await next_is_live(reader, writer, 11)


@pytest.mark.parametrize(
    "since",
    [
        {"epoch": "not-this-rooms", "offset": 3},  # another history
        {"epoch": "", "offset": 0},
        {"epoch": "same", "offset": 11},  # above the top: a position this history never had
        {"epoch": "same", "offset": 10**12},
    ],
)
async def test_resume_from_another_history_is_a_reset_then_live_only(since: dict[str, Any]) -> None:
    app = rooms_app()
    (writer,) = await in_room(app, "writer")
    epoch = writer.epochs[ROOM]
    await say_lines(writer, lines(1, 10))
    if since["epoch"] == "same":
        since = {**since, "epoch": epoch}
    joined, reader = await resume(app, writer, since)
    assert (joined["epoch"], joined["offset"]) == (epoch, 10)
    # offset: what the next line follows, the top (10), so live only
    assert await reader.frame() == {"type": "gap", "room": ROOM, "reason": "reset", "epoch": epoch, "offset": 10}
    await next_is_live(reader, writer, 11)  # nothing replayed


async def test_a_restarted_server_has_new_epochs_so_an_old_position_reads_as_reset() -> None:
    before = rooms_app()
    (writer,) = await in_room(before, "writer")
    await say_lines(writer, lines(1, 3))
    old = writer.epochs[ROOM]
    after = rooms_app()  # the memory store's restart: everything forgotten
    (writer,) = await in_room(after, "writer")
    await say_lines(writer, lines(1, 5))  # offsets 1 to 5 again, in another history
    new = writer.epochs[ROOM]
    assert new != old
    _, reader = await resume(after, writer, {"epoch": old, "offset": 3})
    assert await reader.frame() == {"type": "gap", "room": ROOM, "reason": "reset", "epoch": new, "offset": 5}
    await next_is_live(reader, writer, 6)


async def test_the_process_wide_byte_budget_trims_the_oldest_line_of_any_room() -> None:
    # Every line here has the same size: equal room name lengths, texts and ts digits.
    size = len(protocol.msg(ROOM, 1, time.time_ns() // 1_000_000, "writer", "line 1", None).encode()) + OVERHEAD
    app = rooms_app(history_max_bytes=4 * size)
    (writer,) = await in_room(app, "writer")
    await writer.join("other")
    said = await say_lines(writer, lines(1, 3))
    said_other = await say_lines(writer, lines(1, 2), room="other")  # the fifth line: lobby's first goes
    _, reader = await resume(app, writer, {"epoch": writer.epochs[ROOM], "offset": 0})
    assert await reader.frames(3) == [gap(1, 1, "trimmed"), *said[1:]]
    await reader.join("other", since={"epoch": writer.epochs["other"], "offset": 0})
    await writer.expect("presence")
    assert await reader.frames(2) == said_other  # the newer room keeps all of its lines
    await next_is_live(reader, writer, 4)


# --- time: dedup and idle rooms, on the store's clock ------------------------------------------------


class Clock:
    """The memory store's monotonic clock, moved by hand: time passes without a sleep."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def clocked_app(clock: Clock, **settings: Any) -> ChatApp:
    config = Settings(**{"rate_per_second": 0, **settings})
    return create_app(config, store=MemoryStore(config, protocol.msg, clock=clock))


async def test_a_say_id_is_remembered_for_dedup_seconds() -> None:
    clock = Clock()
    (ada,) = await in_room(clocked_app(clock, dedup_seconds=10), "ada")
    await ada.say(ROOM, "once", id="k")
    assert (await ada.until("ack"))[1]["offset"] == 1
    clock.now += 9.9
    await ada.say(ROOM, "once", id="k")
    assert await ada.expect("ack") == {"type": "ack", "room": ROOM, "offset": 1, "id": "k"}  # within the window
    clock.now += 0.2
    await ada.say(ROOM, "once", id="k")  # the window has passed: a new line
    frames = sorted(await ada.frames(2), key=lambda frame: str(frame["type"]))
    assert [(frame["type"], frame["offset"]) for frame in frames] == [("ack", 2), ("msg", 2)]


async def test_an_idle_empty_room_is_forgotten_so_a_position_in_it_reads_as_reset() -> None:
    clock = Clock()
    app = clocked_app(clock, room_idle_seconds=100, max_rooms=2)
    (ada,) = await opened(app, "ada")
    old = (await ada.join("old"))["epoch"]
    await say_lines(ada, lines(1, 3), room="old")
    await ada.request("leave", room="old")
    await ada.until("left")
    await ada.join("other")  # two rooms held: the limit
    clock.now += 99
    assert (await error_of(ada, kind="join", room="third"))["code"] == "too_many_rooms"  # "old" is still held
    clock.now += 2  # "old" has been empty and silent for 101 s
    await ada.join("third")  # creating a room forgets the idle ones: "old" has gone, its place is free
    await ada.request("leave", room="other")
    await ada.until("left")
    clock.now += 101
    joined = await ada.join("old", since={"epoch": old, "offset": 3})  # ("other" is forgotten now)
    assert (joined["offset"], joined["epoch"] != old) == (0, True)  # a new room, a new history
    reset = {"type": "gap", "room": "old", "reason": "reset", "epoch": joined["epoch"], "offset": 0}
    assert await ada.frame() == reset


async def test_an_idle_empty_room_joined_again_is_a_new_room() -> None:
    clock = Clock()
    (ada,) = await opened(clocked_app(clock, room_idle_seconds=100), "ada")
    old = (await ada.join("old"))["epoch"]
    await say_lines(ada, lines(1, 3), room="old")
    await ada.request("leave", room="old")
    await ada.until("left")
    clock.now += 101  # empty and silent for longer than room_idle_seconds: forgotten
    joined = await ada.join("old", since={"epoch": old, "offset": 3})
    assert (joined["offset"], joined["epoch"] != old) == (0, True)


# --- a slow consumer ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "burst"),
    [
        ({"outbox_max_messages": 4, "send_timeout": 0}, 20),  # its outbox overflows
        ({"send_timeout": 0.2}, 3),  # one send stays blocked too long (the watchdog)
    ],
)
async def test_a_slow_consumer_is_dropped_with_1013_and_resuming_recovers_everything_once(
    limits: dict[str, Any], burst: int
) -> None:
    app = rooms_app(**limits)
    talker, slow = await in_room(app, "talker", "slow")
    said = await say_lines(talker, lines(1, 3))
    assert await slow.frames(3) == said
    slow.stop_reading()  # a frozen tab: from now on every send to it blocks
    others: list[Frame] = []
    said += await say_lines(talker, lines(4, 3 + burst), others=others)  # the talker is never held up
    code, reason = await slow.closed()  # at the overflow, or within the send timeout
    assert code == 1013
    assert reason.startswith("slow consumer: ")
    if not others:  # the watchdog's drop comes after the burst
        others.append(await talker.expect("presence"))
    assert others == [{"type": "presence", "room": ROOM, "user": "slow", "event": "leave"}]
    assert app.ctx.metrics.slow_consumer_disconnects == 1
    top = 3 + burst
    joined, back = await resume(app, talker, {"epoch": slow.epochs[ROOM], "offset": 3})  # its last offset
    assert joined["offset"] == top
    assert await back.frames(burst) == said[3:]  # what its discarded outbox held, and the rest: once each
    await next_is_live(back, talker, top + 1)


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
