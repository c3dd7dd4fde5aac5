"""What a client of ``asgi-chat.v1`` sends: each frame parsed once, into a typed request.

Pure functions and frozen values, nothing else: a frame is parsed once, at the edge, into one of
the request types below, and only typed values travel further. What the server sends is built in
engine/frames.py, the one place the engine and the endpoint both encode with (docs/rooms.md
describes both directions, docs/PROTOCOL.md shows them).

Every frame is one JSON object in a text frame. A request that is not valid JSON, not an object,
of an unknown ``type``, or with a missing or wrong-typed field is a :class:`BadRequest`, which the
endpoint answers with an ``error`` frame; the connection stays open.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

SUBPROTOCOL: Final = "asgi-chat.v1"
MAX_NAME_CHARS: Final = 32
MAX_ID_CHARS: Final = 64
MAX_HISTORY_LIMIT: Final = 100
# The largest whole number a request may carry (an offset, a count): 2**53 - 1, the largest
# integer a JSON number holds exactly in JavaScript, and in Redis' Lua (numbers are doubles
# there), so both stores can hold every position a client may send, and answer it the same way.
MAX_WHOLE: Final = 2**53 - 1
# The whole name (fullmatch: with re.match, "$" would also accept a trailing newline).
ROOM_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")

ERROR_CODES: Final = frozenset(
    {
        "bad_request",
        "hello_first",
        "bad_name",
        "bad_room",
        "not_joined",
        "too_many_rooms",
        "too_large",
        "unavailable",
        "slow_down",
        "internal",
    }
)


class BadRequest(Exception):
    """A request the server answers with ``{"type": "error", "code": code, ...}``."""

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        assert code in ERROR_CODES
        self.code = code
        self.message = message
        self.request_id = request_id


# --- requests -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    id: str | None
    user: str


@dataclass(frozen=True, slots=True)
class Since:
    epoch: str
    offset: int


@dataclass(frozen=True, slots=True)
class Join:
    id: str | None
    room: str
    since: Since | None = None  # resume after this position
    history: int | None = None  # or: the last K messages; neither: live only
    presence: bool = True  # false: no presence frames from this room (a big room's viewer)


@dataclass(frozen=True, slots=True)
class Say:
    id: str | None
    room: str
    text: str


@dataclass(frozen=True, slots=True)
class Leave:
    id: str | None
    room: str


@dataclass(frozen=True, slots=True)
class History:
    id: str | None
    room: str
    before: int
    limit: int


@dataclass(frozen=True, slots=True)
class Members:
    """``{"type": "presence", "room": R}``: who is in the room now (answered ``members``)."""

    id: str | None
    room: str


Request = Hello | Join | Say | Leave | History | Members


def parse_request(text: str, max_text_chars: int) -> Request:
    """The request in ``text``; raises :class:`BadRequest` naming what is wrong."""
    try:
        frame = json.loads(text)
    except RecursionError:  # deeply nested brackets: the parser gives up before the size limit does
        raise BadRequest("bad_request", "nested too deeply") from None
    except ValueError:
        raise BadRequest("bad_request", "not valid JSON") from None
    if not isinstance(frame, dict):
        raise BadRequest("bad_request", "a request is a JSON object")
    request_id = _request_id(frame)
    kind = frame.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise BadRequest("bad_request", f"unknown type {str(kind)[:40]!r}", request_id)
    try:
        return parser(_Fields(frame), request_id, max_text_chars)
    except BadRequest as error:
        error.request_id = request_id
        raise


def _request_id(frame: dict[str, object]) -> str | None:
    if "id" not in frame:
        return None
    value = frame["id"]
    if isinstance(value, str) and 1 <= len(value) <= MAX_ID_CHARS:
        return encodable(value, "id")
    raise BadRequest("bad_request", f"id must be a string of 1 to {MAX_ID_CHARS} characters")


def encodable(value: str, name: str) -> str:
    """``value``, if it can be sent on: JSON's ``\\ud800`` escape parses into a lone surrogate,
    which no UTF-8 encoder takes (RFC 3629 section 3: surrogates are not characters), so such a
    string is refused here, at the edge, before anything is assigned to it."""
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise BadRequest("bad_request", f"{name} is not valid Unicode: it holds a lone surrogate") from None
    return value


class _Fields:
    """Typed access to a request's fields: a missing or wrong-typed one is a BadRequest."""

    def __init__(self, frame: dict[str, object]) -> None:
        self.frame = frame

    def text(self, name: str) -> str:
        value = self.frame.get(name)
        if not isinstance(value, str):
            raise BadRequest("bad_request", f"{name} must be a string")
        return encodable(value, name)

    def flag(self, name: str, default: bool) -> bool:
        value = self.frame.get(name, default)
        if not isinstance(value, bool):
            raise BadRequest("bad_request", f"{name} must be true or false")
        return value

    def optional_whole(self, name: str) -> int | None:
        return self.whole(name) if name in self.frame else None

    def whole(self, name: str) -> int:
        value = self.frame.get(name)
        # bool is an int in Python, but true is not an offset.
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_WHOLE:
            raise BadRequest("bad_request", f"{name} must be a whole number from 0 to 2**53 - 1")
        return value

    def room(self) -> str:
        room = self.text("room")
        if not ROOM_NAME.fullmatch(room):
            raise BadRequest("bad_room", "a room name is 1 to 64 of a-z, 0-9, _ and -, starting with a letter or digit")
        return room


def _hello(fields: _Fields, request_id: str | None, max_text_chars: int) -> Hello:
    return Hello(request_id, normalise_name(fields.text("user")))


def normalise_name(raw: str) -> str:
    """A user name as shown: stripped, NFC-normalised, 1 to 32 characters, no control character."""
    name = unicodedata.normalize("NFC", raw.strip())
    if not 1 <= len(name) <= MAX_NAME_CHARS or any(unicodedata.category(char) == "Cc" for char in name):
        raise BadRequest("bad_name", f"a name is 1 to {MAX_NAME_CHARS} characters, without control characters")
    return name


def _join(fields: _Fields, request_id: str | None, max_text_chars: int) -> Join:
    room = fields.room()
    if "since" in fields.frame and "history" in fields.frame:
        raise BadRequest("bad_request", "since and history exclude each other")
    history = fields.optional_whole("history")
    since = _since(fields.frame["since"]) if "since" in fields.frame else None
    return Join(request_id, room, since, history, fields.flag("presence", True))


def _since(value: object) -> Since:
    if not isinstance(value, dict):
        raise BadRequest("bad_request", "since must be an object with epoch and offset")
    since = _Fields(value)
    return Since(since.text("epoch"), since.whole("offset"))


def _say(fields: _Fields, request_id: str | None, max_text_chars: int) -> Say:
    room = fields.room()
    text = fields.text("text")
    if not text:
        raise BadRequest("bad_request", "text must not be empty")
    if max_text_chars and len(text) > max_text_chars:
        raise BadRequest("too_large", f"text is longer than {max_text_chars} characters")
    return Say(request_id, room, text)


def _leave(fields: _Fields, request_id: str | None, max_text_chars: int) -> Leave:
    return Leave(request_id, fields.room())


def _history(fields: _Fields, request_id: str | None, max_text_chars: int) -> History:
    room = fields.room()
    before, limit = fields.whole("before"), fields.whole("limit")
    if not 1 <= limit <= MAX_HISTORY_LIMIT:
        raise BadRequest("bad_request", f"limit must be 1 to {MAX_HISTORY_LIMIT}")
    return History(request_id, room, before, limit)


def _members(fields: _Fields, request_id: str | None, max_text_chars: int) -> Members:
    return Members(request_id, fields.room())


_PARSERS: dict[str, Callable[[_Fields, str | None, int], Request]] = {
    "hello": _hello,
    "join": _join,
    "say": _say,
    "leave": _leave,
    "history": _history,
    "presence": _members,
}
