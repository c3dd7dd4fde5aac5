"""The engine's one room abstraction (engine/room.py): members by name, the joining ones, and the
copy-on-write snapshot a line is offered to; and both chats keep their members in one.

A Room only holds members as keys, so the members here are real :class:`Member` objects of a
fan-out that never sends (their session is never used)."""

from __future__ import annotations

from typing import cast

from asgi_chat import Settings, create_app
from asgi_chat.asgi.session import Session
from asgi_chat.engine.fanout import Fanout
from asgi_chat.engine.member import Member
from asgi_chat.engine.policy import SlowConsumerPolicy
from asgi_chat.engine.room import Room
from asgi_chat.ops.metrics import Metrics
from tests.helpers import accepted
from tests.rooms_support import RoomsClient

FANOUT = Fanout(SlowConsumerPolicy(0, max_bytes=0, send_timeout=0), Metrics())


def members(*labels: str) -> list[Member]:
    return [Member(FANOUT, cast(Session, None), label) for label in labels]


def test_members_seated_live_are_the_snapshot_in_the_order_they_came() -> None:
    room = Room()
    one, two, three = members("client #1", "client #2", "client #3")
    for member in (one, two, three):
        room.seat(member, member.label)
    assert room.live == (one, two, three)
    assert room.users == {one: "client #1", two: "client #2", three: "client #3"}


def test_the_snapshot_is_copy_on_write() -> None:
    room = Room()
    one, two = members("a", "b")
    room.seat(one, "a")
    before = room.live
    assert room.live is before  # no copy per line while nobody comes or goes
    room.seat(two, "b")
    assert before == (one,)  # a line on its way keeps the snapshot it was offered to
    assert room.live == (one, two)
    after_join = room.live
    room.remove(one)
    assert after_join == (one, two)
    assert list(room.live) == [two]


def test_a_joining_member_is_not_live_until_it_goes_live() -> None:
    room = Room()
    here, joiner = members("ada", "bob")
    room.seat(here, "ada")
    room.seat(joiner, "bob", joining=True)
    assert room.live == (here,)
    assert list(room.joining) == [joiner]
    assert room.users[joiner] == "bob"  # seated: presence and the room's names count it
    room.go_live(joiner)
    assert list(room.live) == [here, joiner]
    assert room.joining == {}


def test_a_member_removed_while_joining_never_goes_live() -> None:
    room = Room()
    (joiner,) = members("bob")
    room.seat(joiner, "bob", joining=True)
    assert room.remove(joiner)
    room.go_live(joiner)  # a join that finishes after its connection left the room
    assert room.live == ()
    assert room.users == {}


def test_a_name_has_left_when_its_last_member_here_has() -> None:
    room = Room()
    tab, other_tab, bob = members("ada", "ada", "bob")
    for member in (tab, other_tab, bob):
        room.seat(member, member.label)
    assert room.names == {"ada": 2, "bob": 1}
    assert room.remove(tab) is False  # ada's other tab is still here
    assert room.remove(other_tab) is True
    assert room.remove(bob) is True
    assert room.remove(bob) is False  # not in the room (any more): nothing left
    assert (room.users, room.names, room.live) == ({}, {}, ())


async def test_both_chats_keep_their_members_in_the_one_room_class() -> None:
    app = create_app(Settings(rate_per_second=0))
    chat = await accepted(app, "/ws/7", "/ws/7", "/ws/8")
    await chat[0].send("hi")
    await chat[0].receive_many(2)  # the chat's members are in by now
    hub = app.ctx.hub
    assert type(hub.room) is Room
    assert hub.members is hub.room.live  # the snapshot the hub offers each line to
    assert sorted(hub.room.users.values()) == ["client #7", "client #7", "client #8"]
    assert hub.room.names == {"client #7": 2, "client #8": 1}
    ada = await RoomsClient(app).open()
    welcome = await ada.hello("ada")
    await ada.join("lobby")
    lobby = app.ctx.rooms._rooms["lobby"]
    assert type(lobby) is Room
    assert list(lobby.users.values()) == [welcome["uid"]]  # a room's members are in under their uid
    assert len(lobby.live) == 1
    await ada.disconnect()
    for client in chat:
        await client.disconnect()
    assert (hub.room.users, hub.room.live, app.ctx.rooms._rooms) == ({}, (), {})
