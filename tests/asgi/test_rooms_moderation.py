"""Moderation through the app (memory store): kick, ban, mute, redact, disconnect, and who may.

The same actions across two processes on Redis are tests/e2e/test_moderation_redis.py.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.asgi.rooms_helpers import ROOM, error_of, rooms_app
from tests.helpers import http_get
from tests.identity_support import SECRET, claims, sign
from tests.rooms_support import RoomsClient, presence_of

SERVER_SECRET = "the server's own secret, for guest tokens, 32+ bytes"


def token(sub: str, *, moderator: bool = False) -> str:
    extra: dict[str, Any] = {"roles": ["moderator"]} if moderator else {}
    return sign(SECRET, "HS256", claims(aud=None, iss=None, sub=sub, name=sub.title(), **extra))


async def person(app: Any, sub: str, *, moderator: bool = False, room: str | None = ROOM) -> RoomsClient:
    client = await RoomsClient(app).open()
    await client.request("hello", token=token(sub, moderator=moderator))
    assert (await client.expect("welcome"))["uid"] == sub
    if room is not None:
        await client.join(room)
    return client


async def room_of(app: Any) -> tuple[RoomsClient, RoomsClient, RoomsClient]:
    """Meg (a moderator), Alice and Bob in the room, every presence frame read."""
    meg = await person(app, "meg", moderator=True)
    alice = await person(app, "alice")
    await meg.expect("presence")
    bob = await person(app, "bob")
    for client in (meg, alice):
        await client.expect("presence")
    return meg, alice, bob


async def act(moderator: RoomsClient, action: str, **fields: Any) -> dict[str, Any]:
    await moderator.request(action, id=f"m-{action}", **fields)
    return (await moderator.until("moderated"))[1]


def app() -> Any:
    return rooms_app(jwt_secret=SECRET, secret=SERVER_SECRET)


async def test_a_kicked_user_leaves_the_room_is_told_by_whom_and_may_come_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chat = app()
    meg, alice, bob = await room_of(chat)
    with caplog.at_level(logging.WARNING, logger="asgi_chat"):
        done = await act(meg, "kick", room=ROOM, uid="alice", reason="spam")
    # Logged once, at warning: who did what to whom, where and why, and no credential.
    (logged,) = [record.getMessage() for record in caplog.records if "moderation" in record.getMessage()]
    assert logged == "moderation: kick user 'alice' in room lobby by 'meg': spam"
    assert SECRET not in caplog.text
    metrics = (await http_get(chat, "/metrics"))[2].decode()
    assert 'asgi_chat_moderation_actions_total{action="kick"} 1.0' in metrics
    assert done == {"type": "moderated", "action": "kick", "room": ROOM, "uid": "alice", "id": "m-kick"}
    assert await alice.expect("kicked") == {"type": "kicked", "room": ROOM, "by": "meg", "reason": "spam"}
    leave = presence_of(ROOM, leave=("alice",))
    assert await bob.expect("presence") == {**leave, "leave": [{"uid": "alice", "user": "Alice", "guest": False}]}
    assert (await error_of(alice, kind="say", room=ROOM, text="still here?"))["code"] == "not_joined"
    assert (await alice.join(ROOM))["room"] == ROOM  # a kick is not a ban


async def test_a_banned_user_cannot_join_again_until_unbanned_even_on_a_new_connection() -> None:
    chat = app()
    meg, alice, _ = await room_of(chat)
    await act(meg, "ban", room=ROOM, uid="alice", seconds=3600, reason="flooding")
    assert (await alice.expect("kicked"))["reason"] == "flooding"
    assert (await error_of(alice, kind="join", room=ROOM))["code"] == "forbidden"
    again = await person(chat, "alice", room=None)  # a reconnect: the ban is the user's, not the socket's
    assert (await error_of(again, kind="join", room=ROOM))["code"] == "forbidden"
    assert (await again.join("elsewhere"))["room"] == "elsewhere"  # one room's ban, not every room's
    await act(meg, "unban", room=ROOM, uid="alice")
    assert (await again.join(ROOM))["room"] == ROOM


async def test_a_muted_user_may_read_but_not_say_until_unmuted() -> None:
    chat = app()
    meg, alice, bob = await room_of(chat)
    await act(meg, "mute", room=ROOM, uid="alice", seconds=3600)
    assert (await error_of(alice, kind="say", room=ROOM, text="hello?"))["code"] == "forbidden"
    await bob.say(ROOM, "alice still reads")
    assert (await alice.expect("msg"))["text"] == "alice still reads"
    await act(meg, "unmute", room=ROOM, uid="alice")
    await alice.say(ROOM, "back", id="a1")
    assert (await alice.until("ack"))[1]["offset"] == 2


async def test_a_redacted_line_keeps_its_offset_live_in_history_and_in_a_resume() -> None:
    chat = app()
    meg, alice, bob = await room_of(chat)
    for text in ("one", "the bad one", "three"):
        await alice.say(ROOM, text)
        await alice.until("ack")
    for client in (meg, bob):
        assert [(await client.expect("msg"))["offset"] for _ in range(3)] == [1, 2, 3]
    await act(meg, "redact", room=ROOM, offset=2)
    assert await bob.expect("redacted") == {"type": "redacted", "room": ROOM, "offset": 2, "by": "meg"}
    await bob.request("history", room=ROOM, before=4, limit=10)
    messages = (await bob.expect("history"))["messages"]
    assert [message["offset"] for message in messages] == [1, 2, 3]  # the sequence stays whole
    assert messages[1]["redacted"] is True
    assert "text" not in messages[1]
    assert "user" not in messages[1]
    late = await person(chat, "carol", room=None)
    await late.request("join", room=ROOM, since={"epoch": alice.epochs[ROOM], "offset": 1})
    await late.expect("joined")
    replayed = [await late.expect("msg") for _ in range(2)]
    assert [(frame["offset"], frame.get("redacted", False)) for frame in replayed] == [(2, True), (3, False)]
    assert (await meg.expect("redacted"))["offset"] == 2  # the moderator is a member too
    assert (await meg.expect("presence"))["join"][0]["uid"] == "carol"
    assert (await error_of(meg, kind="redact", room=ROOM, offset=99))["code"] == "bad_request"


async def test_a_disconnect_closes_every_connection_of_the_user_with_4403() -> None:
    chat = app()
    meg, alice, bob = await room_of(chat)
    second_tab = await person(chat, "alice", room=None)
    await act(meg, "disconnect", uid="alice", reason="account closed")
    for tab in (alice, second_tab):
        assert await tab.closed() == (4403, "account closed")
    assert (await bob.expect("presence"))["leave"][0]["uid"] == "alice"


@pytest.mark.parametrize(
    "request_",
    [
        {"kind": "kick", "room": ROOM, "uid": "bob"},
        {"kind": "ban", "room": ROOM, "uid": "bob", "seconds": 60},
        {"kind": "mute", "room": ROOM, "uid": "bob", "seconds": 60},
        {"kind": "redact", "room": ROOM, "offset": 1},
        {"kind": "disconnect", "uid": "bob"},
    ],
)
async def test_only_a_moderator_may_moderate(request_: dict[str, Any]) -> None:
    chat = app()
    _, alice, _ = await room_of(chat)
    assert (await error_of(alice, **request_))["code"] == "forbidden"
    guest = await RoomsClient(chat).open("guest")
    assert (await error_of(guest, **request_))["code"] == "forbidden"
