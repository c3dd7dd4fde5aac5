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


def joined(room: str, epoch: str, top: int, presence: list[str], request_id: str | None) -> str:
    return encode({"type": "joined", "room": room, "epoch": epoch, "offset": top, "presence": presence}, request_id)


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


def presence(room: str, user: str, event: str) -> str:
    return encode({"type": "presence", "room": room, "user": user, "event": event})


def error(code: str, message: str, request_id: str | None = None) -> str:
    """The answer to a request the server could not take (endpoints/protocol.py's BadRequest)."""
    return encode({"type": "error", "code": code, "message": message}, request_id)
