"""``asgi-chat.v1`` frames (issue 11): what ``parse_request`` makes of good and hostile requests,
and the exact JSON each server frame builder (engine/frames.py) writes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from asgi_chat.endpoints import protocol
from asgi_chat.endpoints.protocol import (
    BadRequest,
    Hello,
    History,
    Join,
    Leave,
    Refresh,
    Request,
    Say,
    Since,
    parse_request,
)
from asgi_chat.engine import frames
from asgi_chat.engine.people import Person
from asgi_chat.identity import Identity

MAX_TEXT = 10  # max_text_chars for these tables: small, so "+1" is easy to write


def parse(frame: object, max_text_chars: int = MAX_TEXT) -> Request:
    return parse_request(json.dumps(frame, ensure_ascii=False), max_text_chars)


def refusal(text: str, max_text_chars: int = MAX_TEXT) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse_request(text, max_text_chars)
    return caught.value


# --- the frame as a whole ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",  # nothing at all
        "{",  # cut off
        "{'type': 'hello'}",  # Python's quotes, not JSON's
        '{"type":"hello","user":"ada"} x',  # trailing garbage after a valid object
        "\x00",
        "hello",
        "\ud800",  # a lone surrogate: the text of no JSON document
    ],
)
def test_what_is_not_json_is_a_bad_request(text: str) -> None:
    error = refusal(text)
    assert (error.code, error.message, error.request_id) == ("bad_request", "not valid JSON", None)


@pytest.mark.parametrize(
    "text",
    [
        '[{"type":"hello","user":"ada"}]',  # the right object, inside an array
        "[]",
        "1",
        "-0.5",
        '"hello"',  # a JSON string
        "null",
        "true",
    ],
)
def test_json_that_is_not_an_object_is_a_bad_request(text: str) -> None:
    error = refusal(text)
    assert (error.code, error.message) == ("bad_request", "a request is a JSON object")


@pytest.mark.parametrize("text", ["[" * 2000, '{"a":' * 2000])
def test_deeply_nested_json_is_a_bad_request(text: str) -> None:
    """json.loads raises RecursionError, not ValueError, past the recursion limit: 2 kB of brackets,
    far below max_message_bytes, must not crash the connection (the endpoint catches BadRequest)."""
    assert refusal(text).code == "bad_request"


@pytest.mark.parametrize(
    ("frame", "shown"),
    [
        ({"type": "helo", "user": "ada"}, "'helo'"),  # a typo
        ({"type": "HELLO", "user": "ada"}, "'HELLO'"),  # types are case-sensitive
        ({"type": "", "room": "a"}, "''"),
        ({"room": "a"}, "'None'"),  # no type at all
        ({"type": None}, "'None'"),
        ({"type": 1}, "'1'"),  # a type that is not a string
        ({"type": ["join"], "room": "a"}, "\"['join']\""),  # a list holding a good type
        ({"type": {"join": 1}}, "\"{'join': 1}\""),
        ({"type": True}, "'True'"),
        ({"type": "welcome", "user": "ada"}, "'welcome'"),  # a server frame sent back
        ({"type": "__class__"}, "'__class__'"),
    ],
)
def test_an_unknown_or_non_string_type_is_a_bad_request(frame: dict[str, Any], shown: str) -> None:
    error = refusal(json.dumps(frame))
    assert (error.code, error.message) == ("bad_request", f"unknown type {shown}")


def test_an_unknown_type_names_at_most_40_characters_of_it() -> None:
    error = refusal(json.dumps({"type": "x" * 1000}))
    assert error.message == f"unknown type {'x' * 40!r}"


# --- the request id --------------------------------------------------------------------------


@pytest.mark.parametrize("request_id", ["x", "7", "é" * 64, "a" * 64, " ", '"messages":[]'])
def test_an_id_of_1_to_64_characters_is_carried(request_id: str) -> None:
    assert parse({"type": "leave", "room": "a", "id": request_id}) == Leave(request_id, "a")


def test_no_id_is_none() -> None:
    assert parse({"type": "leave", "room": "a"}) == Leave(None, "a")


@pytest.mark.parametrize(
    "request_id",
    [
        "",  # 0 characters
        "a" * 65,  # one too many
        "é" * 65,  # characters, not bytes: 65 of them
        None,  # null is not "no id": the key is there
        7,
        7.5,
        True,
        ["a"],
        {"id": "a"},
    ],
)
def test_an_id_that_is_not_a_string_of_1_to_64_is_a_bad_request(request_id: object) -> None:
    error = refusal(json.dumps({"type": "leave", "room": "a", "id": request_id}))
    assert (error.code, error.request_id) == ("bad_request", None)  # no valid id to answer with
    assert "id must be" in error.message


def test_an_id_is_checked_before_the_type() -> None:
    error = refusal(json.dumps({"type": "nope", "id": ""}))
    assert error.message.startswith("id must be")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "nope", "id": "r1"}, "bad_request"),  # unknown type: still answered with its id
        ({"type": "hello", "id": "r1"}, "bad_name"),  # neither user nor token
        ({"type": "hello", "id": "r1", "user": 7}, "bad_request"),
        ({"type": "join", "id": "r1", "room": "A"}, "bad_room"),
        ({"type": "say", "id": "r1", "room": "a", "text": "x" * (MAX_TEXT + 1)}, "too_large"),
        ({"type": "history", "id": "r1", "room": "a", "before": 1, "limit": 0}, "bad_request"),
        ({"type": "join", "id": "r1", "room": "a", "since": {"epoch": "e"}}, "bad_request"),  # nested field
    ],
)
def test_a_refusal_carries_the_id_of_the_request(frame: dict[str, Any], code: str) -> None:
    error = refusal(json.dumps(frame))
    assert (error.code, error.request_id) == (code, "r1")


def test_a_refusal_without_an_id_carries_none() -> None:
    assert refusal(json.dumps({"type": "join", "room": "A"})).request_id is None


# --- hello and refresh --------------------------------------------------------------------------


def test_a_hello_carries_the_name_asked_for_and_a_token_as_given() -> None:
    # Names are checked where identities are made (identity/names.py): a guest's name, or a
    # token's, which wins over the one asked for. The parser only reads the fields.
    assert parse({"type": "hello", "user": " ada ", "id": "h"}) == Hello("h", " ada ")
    assert parse({"type": "hello", "token": "a.b.c"}) == Hello(None, None, "a.b.c")
    assert parse({"type": "hello", "user": "ada", "token": "a.b.c"}) == Hello(None, "ada", "a.b.c")


def test_a_hello_with_neither_name_nor_token_is_a_bad_name() -> None:
    error = refusal(json.dumps({"type": "hello", "id": "h"}))
    assert (error.code, error.request_id) == ("bad_name", "h")


@pytest.mark.parametrize("user", [7, ["ada"], {"name": "ada"}, True])
def test_a_hello_whose_user_is_not_a_string_is_a_bad_request(user: object) -> None:
    error = refusal(json.dumps({"type": "hello", "user": user}))
    assert (error.code, error.message) == ("bad_request", "user must be a string")


@pytest.mark.parametrize("token", ["", "x" * (protocol.MAX_TOKEN_CHARS + 1)])
def test_a_token_of_no_or_too_many_characters_is_a_bad_request(token: str) -> None:
    for kind in ("hello", "refresh"):
        error = refusal(json.dumps({"type": kind, "user": "ada", "token": token}))
        assert error.code == "bad_request"
        assert str(protocol.MAX_TOKEN_CHARS) in error.message


def test_a_refresh_carries_its_token() -> None:
    assert parse({"type": "refresh", "token": "a.b.c", "id": "r"}) == Refresh("r", "a.b.c")
    assert refusal(json.dumps({"type": "refresh"})).message == "token must be a string"


# --- rooms -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "room",
    [
        "a",
        "0",
        "a-b_c",
        "lobby",
        "a" * 64,  # the longest
        "9-",  # - and _ may come anywhere but first
        "a__",
    ],
)
def test_a_good_room_name_is_taken_whole(room: str) -> None:
    assert parse({"type": "leave", "room": room}) == Leave(None, room)


@pytest.mark.parametrize(
    "room",
    [
        "",
        "a" * 65,  # one too many
        "A",  # lower case only
        "Lobby",
        "-a",  # must start with a letter or digit
        "_a",
        "a\n",  # the `$` trap: re.match(r"...$") accepts a trailing newline
        "\na",
        "a b",
        "a.b",
        "a/b",
        "é",  # ASCII letters only
        "\uff41",  # a fullwidth a
        "a\x00",
    ],
)
def test_a_bad_room_name_is_refused(room: str) -> None:
    for kind in ("join", "leave"):
        error = refusal(json.dumps({"type": kind, "room": room}))
        assert error.code == "bad_room", (kind, room)


@pytest.mark.parametrize("room", [None, 1, ["a"], {"a": 1}])
def test_a_room_that_is_missing_or_not_a_string_is_a_bad_request(room: object) -> None:
    frame: dict[str, object] = {"type": "join"} if room is None else {"type": "join", "room": room}
    error = refusal(json.dumps(frame))
    assert (error.code, error.message) == ("bad_request", "room must be a string")


# --- join ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"type": "join", "room": "a"}, Join(None, "a")),  # live only
        ({"type": "join", "room": "a", "history": 0}, Join(None, "a", history=0)),  # K = 0 is allowed
        ({"type": "join", "room": "a", "history": 50}, Join(None, "a", history=50)),
        (
            {"type": "join", "room": "a", "since": {"epoch": "e1", "offset": 0}},
            Join(None, "a", since=Since("e1", 0)),
        ),
        (
            {"type": "join", "room": "a", "since": {"epoch": "e1", "offset": 12, "extra": 1}, "id": "j"},
            Join("j", "a", since=Since("e1", 12)),  # unknown fields are ignored
        ),
        (
            {"type": "join", "room": "a", "since": {"epoch": "", "offset": 3}},
            Join(None, "a", since=Since("", 3)),  # an epoch is opaque: even empty is one (it just never matches)
        ),
        (
            {"type": "join", "room": "a", "since": {"epoch": "e", "offset": 2**53 - 1}},
            Join(None, "a", since=Since("e", 2**53 - 1)),  # above any top: the rooms answer reset
        ),
    ],
)
def test_a_good_join_parses(frame: dict[str, Any], expected: Join) -> None:
    assert parse(frame) == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"since": {"epoch": "e", "offset": 1}, "history": 3},  # both: they exclude each other
        {"since": {"epoch": "e", "offset": 1}, "history": None},  # both keys, even with one null
        {"since": None},  # null is not "no since"
        {"since": "e:1"},  # not an object
        {"since": ["e", 1]},
        {"since": 5},
        {"since": {}},
        {"since": {"offset": 1}},  # missing epoch
        {"since": {"epoch": "e"}},  # missing offset
        {"since": {"epoch": 7, "offset": 1}},  # epoch not a string
        {"since": {"epoch": None, "offset": 1}},
        {"since": {"epoch": "e", "offset": -1}},  # negative offset
        {"since": {"epoch": "e", "offset": True}},  # a bool is an int in Python, not an offset
        {"since": {"epoch": "e", "offset": False}},
        {"since": {"epoch": "e", "offset": 1.0}},  # a float, even a whole one
        {"since": {"epoch": "e", "offset": "1"}},
        {"since": {"epoch": "e", "offset": None}},
        {"history": -1},
        {"history": True},
        {"history": "3"},
        {"history": 2.5},
        {"history": None},
        {"history": [3]},
    ],
)
def test_a_bad_join_is_a_bad_request(fields: dict[str, Any]) -> None:
    error = refusal(json.dumps({"type": "join", "room": "a", "id": "j", **fields}))
    assert (error.code, error.request_id) == ("bad_request", "j")


# --- say -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "x",
        "x" * MAX_TEXT,  # exactly max_text_chars
        "é" * MAX_TEXT,  # characters, not UTF-8 bytes
        " ",  # non-empty is all a text must be
        "one\ntwo",  # lines inside a text are fine
        "\x00",
    ],
)
def test_a_good_say_parses(text: str) -> None:
    assert parse({"type": "say", "room": "a", "text": text, "id": "s"}) == Say("s", "a", text)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "bad_request"),  # empty
        ("x" * (MAX_TEXT + 1), "too_large"),  # one character too many
        ("é" * (MAX_TEXT + 1), "too_large"),
        (None, "bad_request"),  # not a string
        (5, "bad_request"),
        (["x"], "bad_request"),
        (True, "bad_request"),
    ],
)
def test_a_bad_say_is_refused(text: object, code: str) -> None:
    error = refusal(json.dumps({"type": "say", "room": "a", "text": text}))
    assert error.code == code


def test_a_say_without_text_is_a_bad_request() -> None:
    assert refusal(json.dumps({"type": "say", "room": "a"})).message == "text must be a string"


def test_max_text_chars_0_turns_the_limit_off() -> None:
    assert parse({"type": "say", "room": "a", "text": "x" * 100_000}, max_text_chars=0) == Say(None, "a", "x" * 100_000)


def test_the_room_of_a_say_is_checked_before_its_text() -> None:
    assert refusal(json.dumps({"type": "say", "room": "A", "text": ""})).code == "bad_room"


# --- history ---------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 99, 100])
def test_a_history_limit_of_1_to_100_parses(limit: int) -> None:
    frame = {"type": "history", "room": "a", "before": 7, "limit": limit, "id": "h"}
    assert parse(frame) == History("h", "a", 7, limit)


def test_a_history_before_0_parses() -> None:
    assert parse({"type": "history", "room": "a", "before": 0, "limit": 1}) == History(None, "a", 0, 1)


@pytest.mark.parametrize(
    "fields",
    [
        {"before": 5, "limit": 0},  # below 1
        {"before": 5, "limit": 101},  # above 100
        {"before": 5, "limit": -1},
        {"before": 5, "limit": True},  # a bool is not a count
        {"before": 5, "limit": "10"},
        {"before": 5, "limit": 10.0},
        {"before": 5},  # limit missing
        {"limit": 10},  # before missing
        {"before": -1, "limit": 10},
        {"before": None, "limit": 10},
        {"before": "5", "limit": 10},
        {"before": False, "limit": 10},
    ],
)
def test_a_bad_history_is_a_bad_request(fields: dict[str, Any]) -> None:
    error = refusal(json.dumps({"type": "history", "room": "a", "id": "h", **fields}))
    assert (error.code, error.request_id) == ("bad_request", "h")


# --- server frames ---------------------------------------------------------------------------

ADA, BOB, CY = Person("u1", "ada"), Person("guest:b", "bob", guest=True), Person("u3", "cy")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            frames.welcome(Identity("u1", "ada", False, False, (), 1700000000000), None, None),
            '{"type":"welcome","user":"ada","uid":"u1","guest":false,"expires":1700000000000}',
        ),
        (
            frames.welcome(Identity("guest:x", "ada", True, False, (), None), "g.t.k", "h1"),
            '{"type":"welcome","user":"ada","uid":"guest:x","guest":true,"expires":null,"token":"g.t.k","id":"h1"}',
        ),
        (frames.refreshed(1700000000000, "r"), '{"type":"refreshed","expires":1700000000000,"id":"r"}'),
        (
            frames.joined("a", "e1", 7, [ADA, BOB], None),
            '{"type":"joined","room":"a","epoch":"e1","offset":7,"presence":["ada","bob"],"count":2,'
            '"members":[{"uid":"u1","user":"ada","guest":false},{"uid":"guest:b","user":"bob","guest":true}]}',
        ),
        (
            frames.joined("a", "e1", 0, [], "j"),
            '{"type":"joined","room":"a","epoch":"e1","offset":0,"presence":[],"count":0,"members":[],"id":"j"}',
        ),
        (
            frames.joined("a", "e1", 0, [ADA], None, listed=False),
            '{"type":"joined","room":"a","epoch":"e1","offset":0,"count":1}',
        ),
        (
            frames.joined("a", "e1", 3, [ADA, Person("u9", "ada")], None),  # two people of one name
            '{"type":"joined","room":"a","epoch":"e1","offset":3,"presence":["ada","ada"],"count":2,'
            '"members":[{"uid":"u1","user":"ada","guest":false},{"uid":"u9","user":"ada","guest":false}]}',
        ),
        (
            frames.members("a", [ADA, BOB], "p"),
            '{"type":"members","room":"a","members":[{"uid":"u1","user":"ada","guest":false},'
            '{"uid":"guest:b","user":"bob","guest":true}],"count":2,"id":"p"}',
        ),
        (frames.ack("a", 3, None), '{"type":"ack","room":"a","offset":3}'),
        (frames.ack("a", 3, "s1"), '{"type":"ack","room":"a","offset":3,"id":"s1"}'),
        (frames.left("a", None), '{"type":"left","room":"a"}'),
        (frames.left("a", "l"), '{"type":"left","room":"a","id":"l"}'),
        (
            frames.msg("a", 4, 1700000000123, ADA, "hi", None),
            '{"type":"msg","room":"a","offset":4,"ts":1700000000123,"user":"ada","uid":"u1","guest":false,"text":"hi"}',
        ),
        (
            frames.msg("a", 4, 5, BOB, "hi", "s1"),
            '{"type":"msg","room":"a","offset":4,"ts":5,"user":"bob","uid":"guest:b","guest":true,"text":"hi","id":"s1"}',
        ),
        (frames.gap("a", 2, 9, "trimmed"), '{"type":"gap","room":"a","from":2,"to":9,"reason":"trimmed"}'),
        (frames.gap("a", 10, 10, "limit"), '{"type":"gap","room":"a","from":10,"to":10,"reason":"limit"}'),
        (frames.reset("a", "e2", 0), '{"type":"gap","room":"a","reason":"reset","epoch":"e2","offset":0}'),
        (frames.reset("a", "e2", 7), '{"type":"gap","room":"a","reason":"reset","epoch":"e2","offset":7}'),
        (
            frames.presence("a", [BOB], []),
            '{"type":"presence","room":"a","join":[{"uid":"guest:b","user":"bob","guest":true}],"leave":[]}',
        ),
        (
            frames.presence("a", [ADA, BOB], [CY]),
            '{"type":"presence","room":"a","join":[{"uid":"u1","user":"ada","guest":false},'
            '{"uid":"guest:b","user":"bob","guest":true}],"leave":[{"uid":"u3","user":"cy","guest":false}]}',
        ),
        (
            frames.error("not_joined", "join it first"),
            '{"type":"error","code":"not_joined","message":"join it first"}',
        ),
        (
            frames.error("bad_room", "no", "r9"),
            '{"type":"error","code":"bad_room","message":"no","id":"r9"}',
        ),
        (frames.history("a", [], None), '{"type":"history","room":"a","messages":[]}'),
        (frames.history("a", [], "h"), '{"type":"history","room":"a","messages":[],"id":"h"}'),
    ],
)
def test_each_server_frame_is_this_exact_json(text: str, expected: str) -> None:
    """Field order as in the issue, no spaces, ``id`` last and only when the request had one."""
    assert text == expected


def test_non_ascii_is_written_as_is() -> None:
    text = frames.msg("a", 1, 2, Person("ü:1", "Åsa"), "李 ✓ é", "ü")
    said = '"user":"Åsa","uid":"ü:1","guest":false,"text":"李 ✓ é","id":"ü"}'
    assert text == '{"type":"msg","room":"a","offset":1,"ts":2,' + said
    assert "\\u" not in frames.welcome(Identity("u", "Åsa", False, False, (), None), None, None)


def test_text_is_escaped_as_json() -> None:
    text = frames.msg("a", 1, 2, ADA, 'say "hi"\n\\', None)
    assert json.loads(text)["text"] == 'say "hi"\n\\'


def test_a_history_wraps_the_msg_frames_as_they_were_encoded() -> None:
    said = [frames.msg("a", n, 10 + n, ADA, f"line {n}", None) for n in (3, 4)]
    text = frames.history("a", said, "h")
    assert text == '{"type":"history","room":"a","messages":[' + ",".join(said) + '],"id":"h"}'
    assert json.loads(text)["messages"] == [json.loads(frame) for frame in said]


@pytest.mark.parametrize(
    "request_id",
    [
        '"messages":[]',  # the very text the builder replaces
        '"messages":[],"x":"',
        "]}",
        '\\"messages\\":[]',
    ],
)
def test_a_history_stays_valid_json_whatever_the_id(request_id: str) -> None:
    said = [frames.msg("a", 1, 2, ADA, '"messages":[]', request_id)]
    text = frames.history("a", said, request_id)
    frame = json.loads(text)
    assert frame == {"type": "history", "room": "a", "messages": [json.loads(said[0])], "id": request_id}
    assert list(frame) == ["type", "room", "messages", "id"]


def test_a_frame_built_for_one_request_does_not_keep_its_id() -> None:
    assert frames.ack("a", 1, "x") != frames.ack("a", 1, None)
    assert "id" not in json.loads(frames.ack("a", 1, None))
