"""Moderation on ``/chat/ws``: what a moderator may do to a room and its people, on every worker.

A moderator is a user whose token carries the role ``moderator`` (endpoints/identity.py); a
guest never is. Each action goes to the rooms' store, which keeps it for every process that
shares it (engine/stores/): a ban or a mute outlives a reconnect and holds on the other worker,
a kick and a disconnect reach each of the user's connections wherever they are.

- ``kick`` (room, uid): every connection of that user leaves the room and hears ``kicked``; the
  room sees the user leave;
- ``ban`` (room, uid, seconds): a kick, and the user's joins of the room are ``forbidden`` that
  long; ``unban`` ends it early;
- ``mute`` (room, uid, seconds): the user's says in the room are ``forbidden`` that long;
  ``unmute``;
- ``redact`` (room, offset): the message keeps its offset and loses its text and user (history
  and replays show ``"redacted": true``, so the sequence stays whole); members hear ``redacted``;
- ``disconnect`` (uid): every connection of the user closes with 4403.

Each success is answered ``{"type": "moderated", "action": A, ...the request's fields, "id": ID}``,
logged once at warning with the actor, the target, the room and the reason (never a token), and
counted in ``/metrics``. A non-moderator's request is ``forbidden``.
"""

from __future__ import annotations

import logging

from ..engine import frames
from ..engine.member import Member
from ..engine.rooms import Rooms
from ..engine.stores import StoreUnavailable
from ..identity import Identity
from .common import EndpointContext
from .protocol import BadRequest, Moderate

logger = logging.getLogger("asgi_chat")


async def moderate(ctx: EndpointContext, member: Member, identity: Identity, request: Moderate) -> None:
    """Carry out a moderator's ``request`` and answer it; ``forbidden`` for anyone else."""
    if not identity.moderator:
        raise BadRequest("forbidden", f"only a moderator may {request.action}", request.id)
    try:
        found = await carry_out(ctx.rooms, request, identity.uid)
    except StoreUnavailable:
        raise BadRequest("unavailable", "the room store cannot be reached; try again", request.id) from None
    if not found:
        message = f"room {request.room} retains no message {request.offset}"
        raise BadRequest("bad_request", message, request.id)
    where = f" in room {request.room}" if request.room else ""
    target = f"message {request.offset}" if request.action == "redact" else f"user {request.uid!r}"
    logger.warning("moderation: %s %s%s by %r: %s", request.action, target, where, identity.uid, request.reason or "-")
    ctx.metrics.moderated(request.action)
    member.send(frames.moderated(request.action, request.room, request.uid, request.offset, request.id))


async def carry_out(rooms: Rooms, request: Moderate, by: str) -> bool:
    """Carry out a moderator's ``request`` as ``by`` (a moderator's uid, or the operator's API
    acting as the system): False when a redaction found no such message, and nothing was done."""
    action = request.action
    if action in ("kick", "ban"):
        await rooms.kick(request.room, request.uid, by, request.reason, ban_seconds=request.seconds)
    elif action == "unban":
        await rooms.unban(request.room, request.uid)
    elif action == "mute":
        await rooms.mute(request.room, request.uid, request.seconds)
    elif action == "unmute":
        await rooms.unmute(request.room, request.uid)
    elif action == "redact":
        return await rooms.redact(request.room, request.offset, by)
    else:
        await rooms.disconnect(request.uid, request.reason)
    return True
