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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .fields import ERROR_CODES, MAX_WHOLE, BadRequest, Fields, encodable

__all__ = ["ERROR_CODES", "MAX_WHOLE", "BadRequest", "Fields", "encodable"]  # and the requests below

SUBPROTOCOL: Final = "asgi-chat.v1"
MAX_ID_CHARS: Final = 64
MAX_TOKEN_CHARS: Final = 8192  # identity/tokens.py refuses longer ones too: checked here first
MAX_HISTORY_LIMIT: Final = 100
MODERATION: Final = ("kick", "ban", "unban", "mute", "unmute", "redact", "disconnect")
MAX_UID_CHARS: Final = 256
MAX_REASON_CHARS: Final = 200
MAX_SECONDS: Final = 366 * 24 * 3600  # a ban or a mute lasts a year at most: longer is a policy
# --- requests -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    id: str | None
    user: str | None  # the name asked for: a guest's; a token's name wins over it
    token: str | None = None  # an operator's token (a JWT), or the guest token a welcome gave


@dataclass(frozen=True, slots=True)
class Refresh:
    """``{"type": "refresh", "token": T}``: the same user's new token, before the old one expires."""

    id: str | None
    token: str


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


@dataclass(frozen=True, slots=True)
class Moderate:
    """A moderator's request (endpoints/moderation.py carries it out): kick, ban, unban, mute and
    unmute name a room and a uid, redact a room and an offset, disconnect a uid everywhere."""

    id: str | None
    action: str  # one of MODERATION
    room: str = ""  # "" for disconnect
    uid: str = ""  # "" for redact
    seconds: int = 0  # how long a ban or a mute lasts
    offset: int = 0  # the message a redact removes
    reason: str = ""  # shown to the one kicked, banned or disconnected, and logged


Request = Hello | Refresh | Join | Say | Leave | History | Members | Moderate


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
        return parser(Fields(frame), request_id, max_text_chars)
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


def _hello(fields: Fields, request_id: str | None, max_text_chars: int) -> Hello:
    user = fields.text("user") if "user" in fields.frame else None
    token = _token(fields) if "token" in fields.frame else None
    if user is None and token is None:
        raise BadRequest("bad_name", "say hello with a name (user), or a token")
    return Hello(request_id, user, token)


def _refresh(fields: Fields, request_id: str | None, max_text_chars: int) -> Refresh:
    return Refresh(request_id, _token(fields))


def _token(fields: Fields) -> str:
    token = fields.text("token")
    if not 1 <= len(token) <= MAX_TOKEN_CHARS:
        raise BadRequest("bad_request", f"token must be a string of 1 to {MAX_TOKEN_CHARS} characters")
    return token


def _join(fields: Fields, request_id: str | None, max_text_chars: int) -> Join:
    room = fields.room()
    if "since" in fields.frame and "history" in fields.frame:
        raise BadRequest("bad_request", "since and history exclude each other")
    history = fields.optional_whole("history")
    since = _since(fields.frame["since"]) if "since" in fields.frame else None
    return Join(request_id, room, since, history, fields.flag("presence", True))


def _since(value: object) -> Since:
    if not isinstance(value, dict):
        raise BadRequest("bad_request", "since must be an object with epoch and offset")
    since = Fields(value)
    return Since(since.text("epoch"), since.whole("offset"))


def _say(fields: Fields, request_id: str | None, max_text_chars: int) -> Say:
    room = fields.room()
    text = fields.text("text")
    if not text:
        raise BadRequest("bad_request", "text must not be empty")
    if max_text_chars and len(text) > max_text_chars:
        raise BadRequest("too_large", f"text is longer than {max_text_chars} characters")
    return Say(request_id, room, text)


def _leave(fields: Fields, request_id: str | None, max_text_chars: int) -> Leave:
    return Leave(request_id, fields.room())


def _history(fields: Fields, request_id: str | None, max_text_chars: int) -> History:
    room = fields.room()
    before, limit = fields.whole("before"), fields.whole("limit")
    if not 1 <= limit <= MAX_HISTORY_LIMIT:
        raise BadRequest("bad_request", f"limit must be 1 to {MAX_HISTORY_LIMIT}")
    return History(request_id, room, before, limit)


def _members(fields: Fields, request_id: str | None, max_text_chars: int) -> Members:
    return Members(request_id, fields.room())


def _moderate(fields: Fields, request_id: str | None, max_text_chars: int) -> Moderate:
    action = str(fields.frame["type"])
    room = "" if action == "disconnect" else fields.room()
    uid = "" if action == "redact" else _short(fields, "uid", MAX_UID_CHARS)
    seconds = fields.whole("seconds") if action in ("ban", "mute") else 0
    if action in ("ban", "mute") and not 1 <= seconds <= MAX_SECONDS:
        raise BadRequest("bad_request", f"seconds must be 1 to {MAX_SECONDS}")
    offset = fields.whole("offset") if action == "redact" else 0
    reason = _short(fields, "reason", MAX_REASON_CHARS, empty=True) if "reason" in fields.frame else ""
    return Moderate(request_id, action, room, uid, seconds, offset, reason)


def _short(fields: Fields, name: str, most: int, *, empty: bool = False) -> str:
    value = fields.text(name)
    if not (0 if empty else 1) <= len(value) <= most:
        raise BadRequest("bad_request", f"{name} must be a string of at most {most} characters")
    return value


_PARSERS: dict[str, Callable[[Fields, str | None, int], Request]] = {
    "hello": _hello,
    "refresh": _refresh,
    "join": _join,
    "say": _say,
    "leave": _leave,
    "history": _history,
    "presence": _members,
    **dict.fromkeys(MODERATION, _moderate),
}
