"""The client's frame parser (asgi_chat/client/events.py): every frame the server sends, as
docs/rooms.md writes it, becomes its typed event; a malformed one is a BadFrame; a type the client
does not know yet is passed on as Unknown."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from asgi_chat.client import (
    Ack,
    BadFrame,
    Error,
    Event,
    Gap,
    History,
    Joined,
    Left,
    Members,
    Message,
    Presence,
    Refreshed,
    Unknown,
    Welcome,
    parse_frame,
)

TS = 1_700_000_000_123  # milliseconds since 1970
LINE: dict[str, Any] = {
    "type": "msg",
    "room": "lobby",
    "offset": 7,
    "ts": TS,
    "user": "ada",
    "text": "hi ☕",
    "id": "s1",
}
READ = Message("lobby", 7, TS, "ada", "hi ☕", "s1")


def wire(**frame: Any) -> str:
    """A frame as the server sends it: one JSON object (``kind`` is its ``type``)."""
    return json.dumps({"type": frame.pop("kind"), **frame}, ensure_ascii=False)


@pytest.mark.parametrize(
    ("text", "event"),
    [
        (wire(kind="welcome", user="ada", id="r1"), Welcome("ada")),
        (
            wire(kind="joined", room="lobby", epoch="e1", offset=12, presence=["ada", "bob"], count=2, id="j1"),
            Joined("lobby", "e1", 12, 2, ("ada", "bob")),
        ),
        # joined after "presence": false: a count, no names.
        (wire(kind="joined", room="lobby", epoch="e1", offset=12, count=2), Joined("lobby", "e1", 12, 2, None)),
        (json.dumps(LINE, ensure_ascii=False), READ),
        (
            wire(kind="msg", room="lobby", offset=8, ts=TS, user="bob", text="no id"),
            Message("lobby", 8, TS, "bob", "no id"),
        ),
        # With identity, a line also says who (uid) and whether a guest: read, and ignored.
        (
            wire(kind="msg", room="lobby", offset=9, ts=TS, user="cy", uid="u-3", guest=False, text="hi"),
            Message("lobby", 9, TS, "cy", "hi", None, "u-3"),
        ),
        (
            wire(kind="gap", room="lobby", reason="trimmed", **{"from": 3, "to": 5}),
            Gap("lobby", "trimmed", first=3, last=5),
        ),
        (
            wire(kind="gap", room="lobby", reason="limit", **{"from": 6, "to": 9}),
            Gap("lobby", "limit", first=6, last=9),
        ),
        (wire(kind="gap", room="lobby", reason="lost", **{"from": 4, "to": 4}), Gap("lobby", "lost", first=4, last=4)),
        (
            wire(kind="gap", room="lobby", reason="reset", epoch="e2", offset=40),
            Gap("lobby", "reset", epoch="e2", offset=40),
        ),
        (
            wire(kind="presence", room="lobby", join=[{"user": "cy", "uid": "u-3"}], leave=[{"user": "bob"}]),
            Presence("lobby", ("cy",), ("bob",)),
        ),
        (wire(kind="presence", room="lobby", join=[], leave=[]), Presence("lobby", (), ())),
        (
            wire(kind="members", room="lobby", members=[{"user": "ada"}, {"user": "bob"}], count=2, id="m1"),
            Members("lobby", ("ada", "bob"), 2, "m1"),
        ),
        (wire(kind="ack", room="lobby", offset=7, id="s1"), Ack("lobby", 7, "s1")),
        (wire(kind="left", room="lobby", id="l1"), Left("lobby", "l1")),
        (wire(kind="history", room="lobby", messages=[LINE], id="h1"), History("lobby", (READ,), "h1")),
        (wire(kind="history", room="lobby", messages=[]), History("lobby", ())),
        (wire(kind="error", code="bad_room", message="no such room", id="j2"), Error("bad_room", "no such room", "j2")),
        (wire(kind="error", code="bad_request", message="not valid JSON"), Error("bad_request", "not valid JSON")),
        (
            wire(kind="error", code="slow_down", message="try again in 250 ms", retry_ms=250, id="h2"),
            Error("slow_down", "try again in 250 ms", "h2", 250),
        ),
    ],
)
def test_every_server_frame_becomes_its_event(text: str, event: Event) -> None:
    assert parse_frame(text) == event


def test_identity_fields_of_a_welcome_are_read_when_the_server_sends_them() -> None:
    """Issue 19 (identity) adds uid, guest and expires to welcome: read, and absent until then."""
    text = json.dumps({"type": "welcome", "user": "ada", "uid": "u-1", "guest": False, "expires": 1_800_000_000})
    assert parse_frame(text) == Welcome("ada", "u-1", False, 1_800_000_000)
    guest = json.dumps({"type": "welcome", "user": "ada", "uid": "g-1", "guest": True, "expires": None, "token": "t"})
    assert parse_frame(guest) == Welcome("ada", "g-1", True, None, "t")


def test_a_field_the_server_adds_later_is_ignored() -> None:
    assert parse_frame('{"type":"left","room":"lobby","since":"v2"}') == Left("lobby")


def test_a_refreshed_says_when_the_new_token_expires() -> None:
    assert parse_frame('{"type":"refreshed","expires":1800000000,"id":"r1"}') == Refreshed(1_800_000_000, "r1")
    assert parse_frame('{"type":"refreshed","expires":null}') == Refreshed(None)
    with pytest.raises(BadFrame, match="refreshed frame: expires"):
        parse_frame('{"type":"refreshed","expires":"soon"}')


def test_a_frame_type_the_client_does_not_know_is_passed_on() -> None:
    text = '{"type":"kicked","room":"lobby","by":"u-9"}'
    assert parse_frame(text) == Unknown("kicked", {"type": "kicked", "room": "lobby", "by": "u-9"})


def test_a_message_says_when_in_local_time() -> None:
    message = parse_frame(json.dumps(LINE))
    assert isinstance(message, Message)
    assert message.time == datetime.fromtimestamp(TS / 1000).astimezone()
    assert message.time.tzinfo is not None


@pytest.mark.parametrize(
    "text",
    [
        "",  # not JSON
        "{",
        "[]",  # not an object
        '"msg"',
        "{}",  # no type
        '{"type": 3}',
        '{"type":"msg","room":"lobby","offset":"7","ts":1,"user":"ada","text":"hi"}',  # offset as a string
        '{"type":"msg","room":"lobby","offset":true,"ts":1,"user":"ada","text":"hi"}',  # true is no offset
        '{"type":"msg","room":"lobby","offset":-1,"ts":1,"user":"ada","text":"hi"}',  # nor is -1
        '{"type":"msg","room":"lobby","offset":7,"ts":1,"user":"ada"}',  # no text
        '{"type":"gap","room":"lobby","reason":"trimmed","from":1}',  # no to
        '{"type":"gap","room":"lobby","reason":"reset","offset":4}',  # a reset without its epoch
        '{"type":"joined","room":"lobby","epoch":"e","offset":0,"count":1,"presence":[1]}',  # names are strings
        '{"type":"presence","room":"lobby","join":["ada"],"leave":[]}',  # people are objects
        '{"type":"history","room":"lobby","messages":[{"type":"msg"}]}',  # a message missing its fields
        '{"type":"welcome","user":"ada","guest":"no"}',
    ],
)
def test_a_malformed_frame_is_a_bad_frame(text: str) -> None:
    with pytest.raises(BadFrame):
        parse_frame(text)
