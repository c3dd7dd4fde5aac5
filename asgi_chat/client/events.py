"""What the server says, as typed events: every ``asgi-chat.v1`` frame parsed once, by a pure function.

:func:`parse_frame` turns the text of one frame into one frozen dataclass, the way h11 and wsproto
hand out events: the client's loop and your code then match on types, never on dict keys. The
frames are described in docs/rooms.md; a field the server adds later is ignored, a frame type it
adds later arrives as :class:`Unknown` (so an older client keeps working against a newer server).

:class:`Disconnected` is the one event that is not a frame: the client itself reports a lost
connection with it, and whether (and when) it tries again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import BadFrame


@dataclass(frozen=True, slots=True)
class Welcome:
    """The answer to ``hello``: your name as the server shows it. With identity, also who you are
    (``uid``), whether you are a guest, when your token expires (``expires``, ms since 1970), and
    for a guest the ``token`` to present next time, to stay the same guest (the client does)."""

    user: str
    uid: str | None = None
    guest: bool | None = None
    expires: int | None = None
    token: str | None = field(default=None, repr=False)  # a credential: kept out of logs and reprs


@dataclass(frozen=True, slots=True)
class Refreshed:
    """The answer to a ``refresh`` the client sent on the live connection (``get_token``'s new
    token): it now ``expires`` then (ms since 1970), and the connection goes on."""

    expires: int | None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Joined:
    """You are in ``room``: its ``epoch`` and top ``offset`` when you joined, who is there (``presence``,
    None after a join with ``presence=False``) and how many (``count``). Replayed messages follow."""

    room: str
    epoch: str
    offset: int
    count: int
    presence: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One line of a room: its ``offset`` in the room's sequence, when (``ts``, milliseconds since
    1970), who and what; ``id`` is the id of the say that made it (yours, when it is your line).
    ``uid`` is who said it where the server has identity (two people may share a name)."""

    room: str
    offset: int
    ts: int
    user: str
    text: str
    id: str | None = None
    uid: str | None = None

    @property
    def time(self) -> datetime:
        """``ts`` as a local, timezone-aware datetime."""
        return datetime.fromtimestamp(self.ts / 1000).astimezone()


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages you will never get, said exactly.

    ``trimmed``, ``limit`` or ``lost``: offsets ``first`` to ``last`` (the wire's ``from`` and ``to``,
    both included) are gone. ``reset``: the room's history itself is gone (the server restarted
    with the memory store, or Redis lost the room); positions now belong to ``epoch``, the next
    message is ``offset + 1``, and what was said meanwhile is unknown.
    """

    room: str
    reason: str
    first: int | None = None
    last: int | None = None
    epoch: str | None = None
    offset: int | None = None

    @property
    def reset(self) -> bool:
        return self.reason == "reset"


@dataclass(frozen=True, slots=True)
class Presence:
    """Who joined and who left ``room`` in one window of the server's (both may be empty)."""

    room: str
    joins: tuple[str, ...]
    leaves: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Members:
    """The answer to a ``presence`` request: who is in ``room`` now, on every server process."""

    room: str
    members: tuple[str, ...]
    count: int
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """Your say ``id`` is published, at ``offset`` (the first offset, when it was a resend)."""

    room: str
    offset: int
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Left:
    room: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """The answer to a ``history`` request: retained messages, ascending."""

    room: str
    messages: tuple[Message, ...]
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Error:
    """The server could not take a request (``id`` names which); ``code`` is one of docs/rooms.md's.
    ``retry_ms`` comes with ``slow_down``: how long to wait before asking again."""

    code: str
    message: str
    id: str | None = None
    retry_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Unknown:
    """A frame of a type this client does not know (a newer server's): passed on, never dropped."""

    type: str
    frame: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Disconnected:
    """Not a frame: the connection ended (``code``: its close code, 1006 when it dropped without a
    close frame, None when it never opened) and the client tries again in ``retry_in`` seconds, or,
    when that is None, stops for good (see :class:`asgi_chat.client.errors.Closed`)."""

    code: int | None
    reason: str
    retry_in: float | None


# What a frame can be; an event is one of those, or the client's own Disconnected.
Frame = Welcome | Refreshed | Joined | Message | Gap | Presence | Members | Ack | Left | History | Error | Unknown
Event = Frame | Disconnected


def parse_frame(text: str) -> Frame:
    """The event in one frame's text; raises :class:`BadFrame` naming what is wrong."""
    try:
        frame = json.loads(text)
    except ValueError:
        raise BadFrame(f"not JSON: {text[:80]!r}") from None
    if not isinstance(frame, dict):
        raise BadFrame(f"not a JSON object: {text[:80]!r}")
    kind = frame.get("type")
    if not isinstance(kind, str):
        raise BadFrame(f"no type: {text[:80]!r}")
    parser = _PARSERS.get(kind)
    if parser is None:
        return Unknown(kind, frame)
    try:
        return parser(_Fields(frame))
    except BadFrame as error:
        raise BadFrame(f"{kind} frame: {error}") from None


class _Fields:
    """Typed reads of a frame's fields: a missing or wrong-typed one is a :class:`BadFrame`."""

    def __init__(self, frame: dict[str, Any]) -> None:
        self.frame = frame

    def text(self, name: str) -> str:
        value = self.frame.get(name)
        if not isinstance(value, str):
            raise BadFrame(f"{name} must be a string")
        return value

    def whole(self, name: str) -> int:
        value = self.frame.get(name)
        # bool is an int in Python, but true is no offset.
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadFrame(f"{name} must be a whole number")
        return value

    def maybe_text(self, name: str) -> str | None:
        return None if self.frame.get(name) is None else self.text(name)

    def maybe_whole(self, name: str) -> int | None:
        return None if self.frame.get(name) is None else self.whole(name)

    def maybe_flag(self, name: str) -> bool | None:
        value = self.frame.get(name)
        if value is not None and not isinstance(value, bool):
            raise BadFrame(f"{name} must be true or false")
        return value

    def items(self, name: str) -> list[_Fields]:
        """A list of JSON objects (people, messages), each with typed reads of its own."""
        value = self.frame.get(name)
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise BadFrame(f"{name} must be a list of objects")
        return [_Fields(item) for item in value]

    def names(self, name: str) -> tuple[str, ...]:
        """A list of ``{"user": NAME}`` objects (presence, members) as a tuple of names."""
        return tuple(person.text("user") for person in self.items(name))


def _welcome(f: _Fields) -> Welcome:
    guest, token = f.maybe_flag("guest"), f.maybe_text("token")
    return Welcome(f.text("user"), f.maybe_text("uid"), guest, f.maybe_whole("expires"), token)


def _refreshed(f: _Fields) -> Refreshed:
    return Refreshed(f.maybe_whole("expires"), f.maybe_text("id"))


def _joined(f: _Fields) -> Joined:
    listed = f.frame.get("presence")
    if listed is not None and not (isinstance(listed, list) and all(isinstance(name, str) for name in listed)):
        raise BadFrame("presence is not a list of names")
    presence = None if listed is None else tuple(listed)
    return Joined(f.text("room"), f.text("epoch"), f.whole("offset"), f.whole("count"), presence)


def _message(f: _Fields) -> Message:
    room, offset, ts, user, text = f.text("room"), f.whole("offset"), f.whole("ts"), f.text("user"), f.text("text")
    return Message(room, offset, ts, user, text, f.maybe_text("id"), f.maybe_text("uid"))


def _gap(f: _Fields) -> Gap:
    room, reason = f.text("room"), f.text("reason")
    if reason == "reset":
        return Gap(room, reason, epoch=f.text("epoch"), offset=f.whole("offset"))
    return Gap(room, reason, first=f.whole("from"), last=f.whole("to"))


def _presence(f: _Fields) -> Presence:
    return Presence(f.text("room"), f.names("join"), f.names("leave"))


def _members(f: _Fields) -> Members:
    return Members(f.text("room"), f.names("members"), f.whole("count"), f.maybe_text("id"))


def _ack(f: _Fields) -> Ack:
    return Ack(f.text("room"), f.whole("offset"), f.maybe_text("id"))


def _left(f: _Fields) -> Left:
    return Left(f.text("room"), f.maybe_text("id"))


def _history(f: _Fields) -> History:
    messages = tuple(_message(item) for item in f.items("messages"))
    return History(f.text("room"), messages, f.maybe_text("id"))


def _error(f: _Fields) -> Error:
    return Error(f.text("code"), f.text("message"), f.maybe_text("id"), f.maybe_whole("retry_ms"))


_PARSERS: dict[str, Callable[[_Fields], Frame]] = {
    "welcome": _welcome,
    "refreshed": _refreshed,
    "joined": _joined,
    "msg": _message,
    "gap": _gap,
    "presence": _presence,
    "members": _members,
    "ack": _ack,
    "left": _left,
    "history": _history,
    "error": _error,
}
