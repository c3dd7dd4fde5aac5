"""The server's frames of ``asgi-chat.v1``: every one the server sends is built here, and only here.

Pure functions from typed values to JSON text, each frame encoded once: the engine builds what
the rooms deliver (``msg`` in the store, ``presence``, ``gap``) and its answers to a join, a say
and a history request (``joined``, ``ack``, ``history``: engine/rooms.py), the endpoint its other
replies (``welcome``, ``left``, ``error``), and both read the wire format from this one page
(docs/rooms.md describes it, docs/PROTOCOL.md shows it). What a client sends is parsed in
endpoints/protocol.py.
"""

from __future__ import annotations

import json
from typing import Protocol

from .people import Person


class WelcomeIdentity(Protocol):
    """What a welcome says of who is speaking (identity/claims.py's Identity has it)."""

    @property
    def uid(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def guest(self) -> bool: ...
    @property
    def expires_ms(self) -> int | None: ...


def encode(frame: dict[str, object], request_id: str | None = None) -> str:
    """One frame as JSON text; ``request_id`` is echoed as ``"id"`` when the request had one."""
    if request_id is not None:
        frame["id"] = request_id
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def welcome(identity: WelcomeIdentity, guest_token: str | None, request_id: str | None) -> str:
    """Who the hello made this connection: its name, uid, whether a guest, its token's expiry (ms
    since the epoch, or null), and for a guest the token to present next time (keeps the uid)."""
    frame: dict[str, object] = {"type": "welcome", "user": identity.name, "uid": identity.uid}
    frame.update(guest=identity.guest, expires=identity.expires_ms)
    if guest_token is not None:
        frame["token"] = guest_token
    return encode(frame, request_id)


def refreshed(expires_ms: int | None, request_id: str | None) -> str:
    return encode({"type": "refreshed", "expires": expires_ms}, request_id)


def joined(
    room: str, epoch: str, top: int, people: list[Person], request_id: str | None, *, listed: bool = True
) -> str:
    """The answer to a join: the room's position, and who is there (``count``, and unless the join
    asked for no presence, a big room's viewer need not receive them all: ``presence``, their
    names as before, and ``members``, each person as :meth:`Person.shown` shows them). ``people``
    come sorted by name, then uid (the stores' order), so the names are sorted too."""
    frame: dict[str, object] = {"type": "joined", "room": room, "epoch": epoch, "offset": top}
    if listed:
        frame["presence"] = [person.name for person in people]
    frame["count"] = len(people)
    if listed:
        frame["members"] = _shown(people)
    return encode(frame, request_id)


def members(room: str, people: list[Person], request_id: str | None) -> str:
    """The answer to a ``presence`` request: who is in the room now, on every process."""
    return encode({"type": "members", "room": room, "members": _shown(people), "count": len(people)}, request_id)


def _shown(people: list[Person]) -> list[dict[str, object]]:
    return [person.shown() for person in people]


def ack(room: str, offset: int, request_id: str | None) -> str:
    return encode({"type": "ack", "room": room, "offset": offset}, request_id)


def left(room: str, request_id: str | None) -> str:
    return encode({"type": "left", "room": room}, request_id)


def history(room: str, frames: list[str], request_id: str | None) -> str:
    """A ``history`` reply around ``msg`` frames already encoded (each is encoded once, when said)."""
    head = encode({"type": "history", "room": room, "messages": []}, request_id)
    return head.replace('"messages":[]', '"messages":[' + ",".join(frames) + "]", 1)


def msg(room: str, offset: int, ts: int, person: Person, text: str, say_id: str | None) -> str:
    """A line said: by whom as every frame that names a person shows them (``user``, the name, then
    ``uid`` and ``guest``), encoded once by the store that numbered it (engine/stores/)."""
    frame: dict[str, object] = {"type": "msg", "room": room, "offset": offset, "ts": ts, "user": person.name}
    frame.update(uid=person.uid, guest=person.guest, text=text)
    return encode(frame, say_id)


def redacted_msg(room: str, offset: int, ts: int) -> str:
    """A message a moderator removed, where it was: its offset and time, no text, no user (so
    the room's sequence stays whole for history, replays and resumes)."""
    return encode({"type": "msg", "room": room, "offset": offset, "ts": ts, "redacted": True})


def redacted(room: str, offset: int, by: str) -> str:
    """Live, to a room's members: message ``offset`` was removed by moderator ``by``."""
    return encode({"type": "redacted", "room": room, "offset": offset, "by": by})


def kicked(room: str, by: str, reason: str) -> str:
    """To each connection of a user put out of ``room``: who did it, and why."""
    return encode({"type": "kicked", "room": room, "by": by, "reason": reason})


def moderated(action: str, room: str, uid: str, offset: int, request_id: str | None) -> str:
    """A moderator's request carried out: what, where, on whom (or which message)."""
    frame: dict[str, object] = {"type": "moderated", "action": action}
    if room:
        frame["room"] = room
    if action == "redact":
        frame["offset"] = offset
    else:
        frame["uid"] = uid
    return encode(frame, request_id)


def gap(room: str, first: int, last: int, reason: str) -> str:
    return encode({"type": "gap", "room": room, "from": first, "to": last, "reason": reason})


def reset(room: str, epoch: str, offset: int) -> str:
    """The room's history is gone: positions are ``epoch``'s now, and the next ``msg`` (or ``gap``)
    of the room on this connection is ``offset + 1``: after a join, its top (``joined``'s offset:
    live messages only); live, 0 (the new epoch's messages follow from 1)."""
    return encode({"type": "gap", "room": room, "reason": "reset", "epoch": epoch, "offset": offset})


def presence(room: str, joins: list[Person], leaves: list[Person]) -> str:
    """Who joined and who left the room in one window (engine/presence.py): either may be empty."""
    return encode({"type": "presence", "room": room, "join": _shown(joins), "leave": _shown(leaves)})


class PresenceBatch:
    """One window's ``presence`` frame, and the same frame without any one person in it, each the
    very text :func:`presence` makes. Every person is encoded once, so the frame of each member
    whose own uid changed (engine/presence.py leaves it out) costs a splice, not an encoding: in
    a join storm most members of a window are such members."""

    __slots__ = ("_head", "_joins", "_leaves", "_where")

    def __init__(self, room: str, joins: list[Person], leaves: list[Person]) -> None:
        empty = encode({"type": "presence", "room": room, "join": [], "leave": []})
        self._head = empty.removesuffix('"join":[],"leave":[]}')
        self._joins = [_encoded(person) for person in joins]
        self._leaves = [_encoded(person) for person in leaves]
        self._where = {person.uid: (self._joins, i) for i, person in enumerate(joins)}
        self._where.update((person.uid, (self._leaves, i)) for i, person in enumerate(leaves))

    def text(self, without: str | None = None) -> str | None:
        """The frame without the person of uid ``without``; None when nothing is left in it."""
        joins, leaves = self._joins, self._leaves
        where = self._where.get(without) if without is not None else None
        if where is not None:
            entries, i = where
            if entries is joins:
                joins = joins[:i] + joins[i + 1 :]
            else:
                leaves = leaves[:i] + leaves[i + 1 :]
        if not joins and not leaves:
            return None
        return f'{self._head}"join":[{",".join(joins)}],"leave":[{",".join(leaves)}]}}'


def _encoded(person: Person) -> str:
    return json.dumps(person.shown(), ensure_ascii=False, separators=(",", ":"))


def error(code: str, message: str, request_id: str | None = None) -> str:
    """The answer to a request the server could not take (endpoints/protocol.py's BadRequest)."""
    return encode({"type": "error", "code": code, "message": message}, request_id)


def slow_down(retry_ms: int, request_id: str | None) -> str:
    """An ``error`` ``slow_down``: the request would produce output while the connection's (or
    its address's) output budget is spent (engine/budget.py); ``retry_ms`` says how long to wait."""
    message = f"too much output asked for: try again in {retry_ms} ms"
    return encode({"type": "error", "code": "slow_down", "message": message, "retry_ms": retry_ms}, request_id)
