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


def encode(frame: dict[str, object], request_id: str | None = None) -> str:
    """One frame as JSON text; ``request_id`` is echoed as ``"id"`` when the request had one."""
    if request_id is not None:
        frame["id"] = request_id
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def welcome(user: str, request_id: str | None) -> str:
    return encode({"type": "welcome", "user": user}, request_id)


def joined(room: str, epoch: str, top: int, presence: list[str], request_id: str | None, *, listed: bool = True) -> str:
    """The answer to a join: the room's position, and who is there (``count``, and the names
    unless the join asked for no presence: a big room's viewer need not receive them all)."""
    frame: dict[str, object] = {"type": "joined", "room": room, "epoch": epoch, "offset": top}
    if listed:
        frame["presence"] = presence
    frame["count"] = len(presence)
    return encode(frame, request_id)


def members(room: str, users: list[str], request_id: str | None) -> str:
    """The answer to a ``presence`` request: who is in the room now, on every process."""
    return encode({"type": "members", "room": room, "members": _people(users), "count": len(users)}, request_id)


def _people(users: list[str]) -> list[dict[str, object]]:
    return [{"user": user} for user in users]


def ack(room: str, offset: int, request_id: str | None) -> str:
    return encode({"type": "ack", "room": room, "offset": offset}, request_id)


def left(room: str, request_id: str | None) -> str:
    return encode({"type": "left", "room": room}, request_id)


def history(room: str, frames: list[str], request_id: str | None) -> str:
    """A ``history`` reply around ``msg`` frames already encoded (each is encoded once, when said)."""
    head = encode({"type": "history", "room": room, "messages": []}, request_id)
    return head.replace('"messages":[]', '"messages":[' + ",".join(frames) + "]", 1)


def msg(room: str, offset: int, ts: int, user: str, text: str, say_id: str | None) -> str:
    frame: dict[str, object] = {"type": "msg", "room": room, "offset": offset, "ts": ts, "user": user, "text": text}
    return encode(frame, say_id)


def gap(room: str, first: int, last: int, reason: str) -> str:
    return encode({"type": "gap", "room": room, "from": first, "to": last, "reason": reason})


def reset(room: str, epoch: str, offset: int) -> str:
    """The room's history is gone: positions are ``epoch``'s now, and the next ``msg`` (or ``gap``)
    of the room on this connection is ``offset + 1``: after a join, its top (``joined``'s offset:
    live messages only); live, 0 (the new epoch's messages follow from 1)."""
    return encode({"type": "gap", "room": room, "reason": "reset", "epoch": epoch, "offset": offset})


def presence(room: str, joins: list[str], leaves: list[str]) -> str:
    """Who joined and who left the room in one window (engine/presence.py): either may be empty."""
    return encode({"type": "presence", "room": room, "join": _people(joins), "leave": _people(leaves)})


def error(code: str, message: str, request_id: str | None = None) -> str:
    """The answer to a request the server could not take (endpoints/protocol.py's BadRequest)."""
    return encode({"type": "error", "code": code, "message": message}, request_id)


def slow_down(retry_ms: int, request_id: str | None) -> str:
    """An ``error`` ``slow_down``: the request would produce output while the connection's (or
    its address's) output budget is spent (engine/budget.py); ``retry_ms`` says how long to wait."""
    message = f"too much output asked for: try again in {retry_ms} ms"
    return encode({"type": "error", "code": "slow_down", "message": message, "retry_ms": retry_ms}, request_id)
