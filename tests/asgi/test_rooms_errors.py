"""``/chat/ws`` through the app: every request that is refused, with its error code, the
connection staying open; a store out of reach; replies carrying the request's id."""

from __future__ import annotations

import json
from typing import Any

import pytest

from asgi_chat import ChatApp, Settings, create_app
from asgi_chat.engine.people import Person
from asgi_chat.engine.replay import Stored
from asgi_chat.engine.stores import StoreListener, StoreUnavailable
from asgi_chat.engine.stores.memory import MemoryStore
from tests.asgi.rooms_helpers import ROOM, error_of, in_room, next_is_live, offsets, rooms_app, say_lines, still_open
from tests.rooms_support import RoomsClient, opened, presence_of

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
    welcome = await client.expect("welcome")
    assert (welcome["type"], welcome["user"], welcome["id"]) == ("welcome", shown, "h")
    assert (await client.join(ROOM))["presence"] == sorted(["other", shown])
    assert (await other.expect("presence"))["join"] == presence_of(ROOM, join=(welcome,))["join"]
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
    # An empty room with no history holds no slot: "two" was forgotten as ada left it.
    assert (await bob.join("three"))["presence"] == ["bob"]


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

    async def append(self, room: str, person: Person, text: str, say_id: str | None) -> tuple[int, bool]:
        if self.down:
            raise StoreUnavailable("the store is down")
        return await super().append(room, person, text, say_id)

    async def enter(self, room: str, person: Person) -> list[Person]:
        if self.down:
            raise StoreUnavailable("the store is down")
        return await super().enter(room, person)

    async def exit(self, room: str, person: Person) -> None:
        if self.down:
            raise StoreUnavailable("the store is down")
        await super().exit(room, person)

    async def before(self, room: str, before: int, limit: int) -> list[Stored]:
        if self.down:
            raise StoreUnavailable("the store is down")
        return await super().before(room, before, limit)


def down_app() -> tuple[ChatApp, DownStore]:
    settings = Settings(rate_per_second=0)
    store = DownStore(settings)
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
    welcome = await client.expect("welcome")
    assert (welcome["type"], welcome["user"], welcome["id"]) == ("welcome", "ada", "\u00e9-1")
    await client.request("join", room=ROOM, id="j")
    joined = await client.expect("joined")
    assert (joined["type"], joined["id"]) == ("joined", "j")
    assert set(joined) == {"type", "room", "epoch", "offset", "presence", "count", "members", "id"}
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


class BrokenStore(MemoryStore):
    """A memory store with a bug: its history read raises something nobody planned for."""

    async def before(self, room: str, before: int, limit: int) -> list[Stored]:
        raise RuntimeError("a bug in the store")


async def test_an_unexpected_error_is_answered_internal_and_the_connection_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A request that fails for a reason of the server's own gets an ``error`` ``internal`` with its
    id; the connection stays open; the log has one line per failure, the traceback only once."""
    settings = Settings(rate_per_second=0)
    app = create_app(settings, store=BrokenStore(settings))
    (ada,) = await in_room(app, "ada")
    for n in (1, 2):
        error = await error_of(ada, kind="history", room=ROOM, before=5, limit=5, id=f"h{n}")
        assert error == {
            "type": "error",
            "code": "internal",
            "message": "the server could not handle this request",
            "id": f"h{n}",
        }
    await still_open(ada)
    failures = [record for record in caplog.records if "a request failed" in record.getMessage()]
    assert [bool(record.exc_info) for record in failures] == [True, False]
    assert "RuntimeError('a bug in the store')" in failures[1].getMessage()
    await ada.disconnect()
