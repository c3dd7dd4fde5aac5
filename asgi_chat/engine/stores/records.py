"""How the Redis store keeps a room's message and a person, and how a process makes frames of them.

The APPEND script (lua.py) stores and publishes a message's fields, not a frame: the offset that
Redis assigns never has to be written into encoded JSON. Whoever delivers or replays a message
encodes its ``msg`` frame here, with engine/frames.py, like every other frame.

A message's body is a JSON array, ``[ts, user, text, say id or null, uid, guest]``: the name it
was said under first, as the version before people kept it, whose four-field bodies
(``[ts, user, text, say id]``) still read, as said by the uid ``user``, not a guest. A person,
in the room's ``people`` hash and in presence messages, is :meth:`Person.shown`'s JSON.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .. import frames
from ..people import Person
from ..replay import Stored


def body(ts: int, person: Person, text: str, say_id: str | None) -> str:
    """A message as APPEND stores and publishes it: its fields, no room, no offset (lua.py)."""
    fields = [ts, person.name, text, say_id, person.uid, person.guest]
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def digest(uid: str) -> str:
    """How a uid shows in a key's name (a ban's, a mute's): whatever it holds, no separator."""
    return hashlib.sha1(uid.encode(), usedforsecurity=False).hexdigest()


def say_field(room: str, uid: str, say_id: str) -> str:
    """A say id as APPEND remembers it in ``says`` (lua.py): the room, and a digest of uid and id,
    so that one uid's ids are never another's."""
    digest = hashlib.sha1(f"{uid}\0{say_id}".encode(), usedforsecurity=False).hexdigest()
    return f"{room} {digest}"


def frame(room: str, offset: int, body: str | bytes) -> str:
    """The ``msg`` frame of a stored message, encoded by the process that delivers it."""
    fields = json.loads(body)
    ts, user, text, say_id = fields[:4]
    # A body of the version before people: its user was its uid, and nobody was a guest.
    uid, guest = fields[4:6] if len(fields) >= 6 else (user, False)
    return frames.msg(room, offset, ts, Person(uid, user, guest), text, say_id)


def person(shown: str | bytes) -> Person:
    """A person as ``people`` and presence messages carry them: :meth:`Person.shown`'s JSON."""
    fields = json.loads(shown)
    return Person(fields["uid"], fields["user"], bool(fields["guest"]))


def shown(person: Person) -> str:
    return json.dumps(person.shown(), ensure_ascii=False, separators=(",", ":"))


def message(room: str, offset: int, field: bytes, value: bytes) -> Stored:
    """A stream entry's one field: ``d``, the message's fields; ``f``, an older version's frame;
    either marked redacted (``rd``, ``rf``: lua.py's WINDOW and READ), a redacted ``msg`` at its
    offset and time."""
    if field.startswith(b"r"):
        fields = json.loads(value)
        ts = fields["ts"] if field == b"rf" else fields[0]
        text = frames.redacted_msg(room, offset, ts)
    else:
        text = older_frame(room, offset, value) if field == b"f" else frame(room, offset, value)
    return Stored(offset, text, len(text))


def older_frame(room: str, offset: int, value: str | bytes) -> str:
    """An older version's frame (a stream entry's field ``f``, a channel's ``m``), with the ``uid``
    and ``guest`` every ``msg`` carries now: its user's name as uid, as for a four-field body."""
    old = json.loads(value)
    person = Person(old["user"], old["user"], False)
    return frames.msg(room, offset, old["ts"], person, old["text"], old.get("id"))


def stored_tail(room: str, flat: list[Any]) -> list[Stored]:
    """WINDOW's tail, READ's reply: offset, field, value, offset, field, value, ..."""
    return [message(room, int(flat[i]), flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)]
