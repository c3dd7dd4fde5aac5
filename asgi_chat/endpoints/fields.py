"""A request's fields, read with their types: the one place a value from a client is checked.

Every string must encode to UTF-8 (:func:`encodable`), every whole number fit what both stores
hold (:data:`MAX_WHOLE`), every room name match :data:`ROOM_NAME`; a field that is missing or of
the wrong type is a :class:`BadRequest`, answered with an ``error`` frame (endpoints/protocol.py
parses whole requests with these).
"""

from __future__ import annotations

import re
from typing import Final

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
        "unauthorized",
        "forbidden",
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


class Fields:
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
