"""Who a connection is: :class:`Identity`, and how a verified token's claims become one.

A token's claims (RFC 7519 section 4) are read here only after its signature and its registered
claims (``exp``, ``nbf``, ``aud``, ``iss``) have been checked (tokens.py, guests.py): what is
left is to turn the claims the chat uses into typed values, and to refuse any that are not
what docs/identity.md says:

- ``sub``: the user id, a string of 1 to :data:`MAX_UID_CHARS` characters, never in the
  guests' namespace (:data:`GUEST_PREFIX`): only the server makes guest uids, so no token can
  claim to be a guest that someone else is;
- ``name``: the display name (default: the ``sub``, its first 32 characters), under the rules
  of names.py;
- ``rooms``: the private rooms this user may join, as room patterns (:func:`room_pattern`);
- ``roles``: ``"moderator"`` makes a moderator; other roles are ignored.

Room patterns live here too, because the ``rooms`` claim and the room policy (policy.py) use
the same ones: a room name (``a-z``, ``0-9``, ``_``, ``-``) in which ``*`` stands for any run of
characters, none included, and ``?`` for exactly one. ``team-*`` matches ``team-red`` and
``team-``; ``*`` matches every room.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from .errors import BadName, Unauthorized
from .names import MAX_NAME_CHARS, check_name

GUEST_PREFIX: Final = "guest:"
# The uid the operator's API and asgi_chat.publish speak as (web/api_endpoints.py): no token may be it.
SYSTEM_UID: Final = "system"
MODERATOR: Final = "moderator"
MAX_UID_CHARS: Final = 128
MAX_PATTERNS: Final = 100  # patterns in one token's rooms claim
MAX_MS: Final = 2**53 - 1  # the largest integer a JSON number holds exactly in JavaScript
# A room name as the protocol has it (endpoints/protocol.py's ROOM_NAME), with * and ? among
# its characters; at most 64 characters, like a room name.
_PATTERN: Final = re.compile(r"[a-z0-9_*?-]{1,64}")


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified user, for the life of a connection (or until a refresh replaces it)."""

    uid: str  # a token's sub, or a guest uid: GUEST_PREFIX and random
    name: str  # the display name, checked by names.check_name
    guest: bool
    moderator: bool  # never for a guest
    rooms: tuple[str, ...]  # room patterns of the private rooms it may join; () for a guest
    expires_ms: int | None  # the token's exp in ms since the epoch; None: the connection has no deadline


def identity_from_claims(claims: Mapping[str, object]) -> Identity:
    """The identity an operator's verified token stands for, or :class:`Unauthorized`."""
    uid = _uid(claims.get("sub"))
    roles = _strings(claims, "roles")
    moderator = MODERATOR in roles
    # No name: the sub stands for it, cut to a name's length (a UUID or an e-mail address is longer).
    name = claims.get("name", uid[:MAX_NAME_CHARS])
    if not isinstance(name, str):
        raise Unauthorized("bad claim", "name must be a string")
    try:
        name = check_name(name, moderator=moderator)
    except BadName as refused:
        raise Unauthorized("bad claim", f"name: {refused}") from None
    try:
        rooms = tuple(room_pattern(text) for text in _strings(claims, "rooms"))
    except ValueError as refused:
        raise Unauthorized("bad claim", f"rooms: {refused}") from None
    return Identity(uid, name, guest=False, moderator=moderator, rooms=rooms, expires_ms=expires_ms(claims))


def _uid(sub: object) -> str:
    if sub is None or sub == "":
        raise Unauthorized("no sub")
    if not isinstance(sub, str) or len(sub) > MAX_UID_CHARS or not sub.isprintable():
        raise Unauthorized("bad claim", f"sub must be 1 to {MAX_UID_CHARS} printable characters")
    if sub.startswith(GUEST_PREFIX):
        raise Unauthorized("guest sub", f"a sub starting with {GUEST_PREFIX!r} is a guest's, made by the server")
    if sub == SYSTEM_UID:
        raise Unauthorized("bad claim", f"the sub {SYSTEM_UID!r} is the server's own (the API's announcements)")
    return sub


def _strings(claims: Mapping[str, object], name: str) -> tuple[str, ...]:
    """A claim that is a list of strings (absent: empty), at most :data:`MAX_PATTERNS` of them."""
    value = claims.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Unauthorized("bad claim", f"{name} must be a list of strings")
    if len(value) > MAX_PATTERNS:
        raise Unauthorized("bad claim", f"{name} has more than {MAX_PATTERNS} entries")
    return tuple(value)


def expires_ms(claims: Mapping[str, object]) -> int:
    """``exp`` (RFC 7519 section 4.1.4: seconds since the epoch, a NumericDate) in milliseconds."""
    exp = claims.get("exp")
    if exp is None:
        raise Unauthorized("no exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise Unauthorized("malformed", "exp must be a number")
    # Whole seconds (PyJWT compares int(exp) too), and no further than a JSON number holds exactly.
    return min(int(exp) * 1000, MAX_MS)


# --- room patterns ---------------------------------------------------------------------------


def room_pattern(text: str) -> str:
    """``text`` if it is a room pattern, else ValueError saying what one is."""
    if not _PATTERN.fullmatch(text):
        raise ValueError(f"{text!r} is not a room pattern (a-z, 0-9, _, - and the wildcards * and ?)")
    return text


def matches(pattern: str, room: str) -> bool:
    """Whether ``room`` is one of the rooms ``pattern`` stands for."""
    return _compiled(pattern).fullmatch(room) is not None


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    # Every character but the wildcards is literal: escape it, then give * and ? their meaning.
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile("".join(parts))
