"""How the Redis store keeps a room's message, and how a process makes a frame of it again.

The APPEND script (lua.py) stores and publishes a message's fields, not a frame: the offset that
Redis assigns never has to be written into encoded JSON. Whoever delivers or replays a message
encodes its ``msg`` frame here, with engine/frames.py, like every other frame.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .. import frames
from ..replay import Stored


def body(ts: int, user: str, text: str, say_id: str | None) -> str:
    """A message as APPEND stores and publishes it: its fields, no room, no offset (lua.py)."""
    return json.dumps([ts, user, text, say_id], ensure_ascii=False, separators=(",", ":"))


def say_field(room: str, user: str, say_id: str) -> str:
    """A say id as APPEND remembers it in ``says`` (lua.py): the room, and a digest of user and id."""
    digest = hashlib.sha1(f"{user}\0{say_id}".encode(), usedforsecurity=False).hexdigest()
    return f"{room} {digest}"


def frame(room: str, offset: int, body: str | bytes) -> str:
    """The ``msg`` frame of a stored message, encoded by the process that delivers it."""
    ts, user, text, say_id = json.loads(body)
    return frames.msg(room, offset, ts, user, text, say_id)


def message(room: str, offset: int, field: bytes, value: bytes) -> Stored:
    """A stream entry's one field: ``d``, the message's fields; ``f``, an older version's frame."""
    text = value.decode() if field == b"f" else frame(room, offset, value)
    return Stored(offset, text, len(text))


def entry(room: str, entry_id: bytes, fields: dict[bytes, bytes]) -> Stored:
    ((field, value),) = fields.items()
    return message(room, int(entry_id.split(b"-", 1)[0]), field, value)


def stored_tail(room: str, flat: list[Any]) -> list[Stored]:
    """WINDOW's tail: offset, field, value, offset, field, value, ..."""
    return [message(room, int(flat[i]), flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)]
