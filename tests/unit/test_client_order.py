"""The client's exactly-once rule (asgi_chat/client/positions.py) and where it is applied
(inbox.py): each message once, in offset order, gaps past what they name, a reset into the new
epoch; a say settled by its own line or its ack, once; a refused join, a transient one."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from asgi_chat.client import Ack, Error, Event, Gap, Joined, Message, Refused
from asgi_chat.client.inbox import Inbox, Reconnect
from asgi_chat.client.ledger import Requests, Rooms
from asgi_chat.client.positions import Position


def sent(kind: str, **frame: object) -> str:
    """A frame as the server sends it (docs/rooms.md)."""
    return json.dumps({"type": kind, **frame})


def line(offset: int, user: str = "bob", say_id: str | None = None, room: str = "lobby") -> str:
    """A msg frame: ``user``'s line at ``offset``, of the say ``say_id`` when given."""
    said: dict[str, object] = {"room": room, "offset": offset, "ts": 1, "user": user, "text": f"line {offset}"}
    return sent("msg", **said, **({"id": say_id} if say_id else {}))


def message(offset: int, user: str = "ada", say_id: str | None = None, room: str = "lobby") -> Message:
    return Message(room, offset, 1, user, f"line {offset}", say_id)


# --- Position: the rule, pure --------------------------------------------------------------------


def test_a_first_join_asks_what_the_user_wants_and_later_joins_resume() -> None:
    position = Position()
    assert position.join_fields(None) == {}  # live only
    assert position.join_fields(20) == {"history": 20}
    position.joined(Joined("lobby", "e1", 50, 1), history=20)
    # The replay of the last 20 starts after 30: a drop in the middle of it resumes there.
    assert (position.epoch, position.last) == ("e1", 30)
    assert position.join_fields(20) == {"since": {"epoch": "e1", "offset": 30}}


@pytest.mark.parametrize(("top", "history", "last"), [(5, 20, 0), (0, None, 0), (9, None, 9), (9, 0, 9)])
def test_a_first_join_starts_where_its_replay_starts(top: int, history: int | None, last: int) -> None:
    position = Position()
    position.joined(Joined("lobby", "e1", top, 1), history)
    assert position.last == last


def test_a_resume_joined_in_another_epoch_does_not_move_the_position_its_reset_does() -> None:
    position = Position("e1", 30)
    position.joined(Joined("lobby", "e2", 4, 1), history=20)
    # Taking e2 now would pair it with offset 30: a position the server could take as valid.
    assert (position.epoch, position.last) == ("e1", 30)
    assert position.admit(Gap("lobby", "reset", epoch="e2", offset=4))
    assert (position.epoch, position.last) == ("e2", 4)
    assert position.admit(message(5))


def test_a_live_reset_starts_the_new_epoch_from_one() -> None:
    position = Position("e1", 30)
    assert position.admit(Gap("lobby", "reset", epoch="e2", offset=0))
    assert [position.admit(message(n)) for n in (1, 2)] == [True, True]


@pytest.mark.parametrize(
    ("events", "admitted", "last"),
    [
        ([message(1), message(2), message(3)], [True, True, True], 3),
        ([message(1), message(1)], [True, False], 1),  # the same offset twice: once
        ([message(2), message(1)], [True, False], 2),  # below the position: already past it
        ([Gap("lobby", "trimmed", first=1, last=4), message(5)], [True, True], 5),
        ([Gap("lobby", "trimmed", first=1, last=4), Gap("lobby", "trimmed", first=1, last=4)], [True, False], 4),
        ([message(3), Gap("lobby", "limit", first=1, last=3)], [True, False], 3),  # nothing new in it
        ([Gap("lobby", "lost", first=1, last=2), message(2), message(3)], [True, False, True], 3),
    ],
)
def test_each_offset_is_let_through_once(events: list[Message | Gap], admitted: list[bool], last: int) -> None:
    position = Position("e1", 0)
    assert [position.admit(event) for event in events] == admitted
    assert position.last == last


def test_any_number_of_overlapping_replays_yields_every_offset_once_in_order() -> None:
    """A model of what the wire may do: after each drop the client resumes with since its position,
    and the server (here, a careless one) replays from up to 5 offsets earlier, then a random
    stretch; whatever the cuts, the user sees 1..N once, in order."""
    rng = random.Random(7)
    total, position, seen = 500, Position("e1", 0), []
    for _ in range(1000):  # bounded: far more connections than needed
        if position.last == total:
            break
        start = max(1, position.last + 1 - rng.randint(0, 5))
        for offset in range(start, min(total, start + rng.randint(0, 30)) + 1):
            if position.admit(message(offset)):
                seen.append(offset)
    assert seen == list(range(1, total + 1))


# --- Inbox: the rule applied to frames, and what they answer ---------------------------------------


class Inbound:
    """An Inbox as the runner drives it: one room joined, the events it puts out collected."""

    def __init__(self) -> None:
        self.rooms, self.requests = Rooms(), Requests()
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()
        self.inbox = Inbox(self.rooms, self.requests, self.events)
        self.inbox.name = "ada"
        self.room = self.rooms.add("lobby", None, True)
        self.rooms.sending_join(self.room, "join-1")

    def out(self) -> list[Event | None]:
        drained = []
        while not self.events.empty():
            drained.append(self.events.get_nowait())
        return drained


async def test_a_joined_answers_the_join_and_a_replay_overlapping_the_live_lines_comes_once() -> None:
    inbound = Inbound()
    inbound.inbox.receive(sent("joined", room="lobby", epoch="e1", offset=2, presence=["ada"], count=1, id="join-1"))
    assert inbound.room.first.result() == Joined("lobby", "e1", 2, 1, ("ada",))
    for offset in (3, 4, 4, 3, 5):
        inbound.inbox.receive(line(offset))
    out = inbound.out()
    assert [event.offset for event in out if isinstance(event, Message)] == [3, 4, 5]


async def test_a_say_is_settled_by_its_own_line_once_and_its_later_ack_changes_nothing() -> None:
    inbound = Inbound()
    say = inbound.requests.add("lobby", {"type": "say", "id": "s1", "room": "lobby", "text": "hi"})
    inbound.inbox.receive(line(9, "ada", "s1"))
    assert say.reply.result() == Ack("lobby", 9, "s1")  # the ack may be lost with the connection now
    inbound.inbox.receive(sent("ack", room="lobby", offset=9, id="s1"))
    assert [type(event) for event in inbound.out()] == [Message]


async def test_another_users_line_with_the_same_id_does_not_settle_your_say() -> None:
    inbound = Inbound()
    say = inbound.requests.add("lobby", {"type": "say", "id": "s1", "room": "lobby", "text": "hi"})
    inbound.inbox.receive(line(9, "bob", "s1"))
    assert not say.reply.done()
    inbound.inbox.receive(sent("ack", room="lobby", offset=10, id="s1"))
    assert say.reply.result() == Ack("lobby", 10, "s1")


async def test_with_identity_your_own_line_is_known_by_uid_not_by_name() -> None:
    """Two people may share a name where the server has identity: a line is yours by its uid."""
    inbound = Inbound()
    inbound.inbox.uid = "u-1"
    say = inbound.requests.add("lobby", {"type": "say", "id": "s1", "room": "lobby", "text": "hi"})
    namesake = {"room": "lobby", "offset": 9, "ts": 1, "user": "ada", "uid": "u-2", "text": "hi", "id": "s1"}
    inbound.inbox.receive(sent("msg", **namesake))
    assert not say.reply.done()
    inbound.inbox.receive(sent("msg", **{**namesake, "offset": 10, "uid": "u-1"}))
    assert say.reply.result() == Ack("lobby", 10, "s1")


async def test_a_refused_request_raises_in_its_caller_and_an_error_about_nothing_of_ours_is_yielded() -> None:
    inbound = Inbound()
    say = inbound.requests.add("lobby", {"type": "say", "id": "s1", "room": "lobby", "text": "x" * 5000})
    inbound.inbox.receive(sent("error", code="too_large", message="text is longer than 4000 characters", id="s1"))
    with pytest.raises(Refused) as refused:
        say.reply.result()
    assert refused.value.code == "too_large"
    inbound.inbox.receive(sent("error", code="bad_request", message="not valid JSON"))
    assert inbound.out() == [Error("bad_request", "not valid JSON")]


async def test_a_refused_first_join_raises_in_join_and_forgets_the_room() -> None:
    inbound = Inbound()
    inbound.inbox.receive(sent("error", code="too_many_rooms", message="1 room at most", id="join-1"))
    with pytest.raises(Refused):
        inbound.room.first.result()
    assert inbound.rooms.get("lobby") is None


async def test_a_rejoin_the_store_cannot_answer_starts_the_connection_over_and_keeps_the_room() -> None:
    inbound = Inbound()
    with pytest.raises(Reconnect):
        inbound.inbox.receive(
            sent("error", code="unavailable", message="the room store cannot be reached", id="join-1")
        )
    assert inbound.rooms.get("lobby") is inbound.room
    assert not inbound.room.first.done()


async def test_frames_of_a_room_left_and_frames_that_cannot_be_read_are_dropped() -> None:
    inbound = Inbound()
    inbound.inbox.receive(line(1, room="kitchen"))
    inbound.inbox.receive("{not json")
    inbound.inbox.receive(b"\xff")
    assert inbound.out() == []
