"""The room policy: which rooms are private, which are read-only, and who may join and say.

Rooms are public unless the operator's policy file (``ASGI_CHAT_ROOM_POLICY``, TOML, read once
at start-up) says otherwise. It maps room patterns (claims.py: ``*`` any run of characters,
``?`` one) to two flags::

    [rooms."staff-*"]        # quoted: a bare TOML key cannot hold * or ?
    private = true           # joined only by users whose token's rooms claim matches the room

    [rooms.announcements]
    read_only = true         # everyone may join; only moderators may say

A room takes every flag of every pattern that matches it (the stricter wins, and the order of
the file does not matter). Guests are never in private rooms, and never moderators.

A file that cannot be read, is not TOML, or holds anything else (an unknown key, a flag that is
not true or false, a pattern that is not one) stops the app at start-up with one line naming the
file and the problem: a typo must not leave a private room open.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from .claims import Identity, matches, room_pattern
from .errors import ConfigError

VARIABLE: Final = "ASGI_CHAT_ROOM_POLICY"
FLAGS: Final = ("private", "read_only")


class PolicySettings(Protocol):
    @property
    def room_policy(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class RoomRule:
    pattern: str
    private: bool = False
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed, or not and why (the text of a ``forbidden`` error). True when allowed."""

    allowed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


ALLOWED: Final = Decision(True)


@dataclass(frozen=True, slots=True)
class RoomPolicy:
    """The rules of the policy file; no rule: every room public."""

    rules: tuple[RoomRule, ...] = ()

    @classmethod
    def from_settings(cls, settings: PolicySettings) -> RoomPolicy:
        return load(settings.room_policy) if settings.room_policy else cls()

    def private(self, room: str) -> bool:
        return any(rule.private and matches(rule.pattern, room) for rule in self.rules)

    def read_only(self, room: str) -> bool:
        return any(rule.read_only and matches(rule.pattern, room) for rule in self.rules)

    def may_join(self, identity: Identity, room: str) -> Decision:
        if not self.private(room):
            return ALLOWED
        if identity.guest:
            return Decision(False, f"{room} is a private room, which guests cannot join")
        if any(matches(pattern, room) for pattern in identity.rooms):
            return ALLOWED
        return Decision(False, f"{room} is a private room, and your token's rooms do not include it")

    def may_say(self, identity: Identity, room: str) -> Decision:
        if self.read_only(room) and not (identity.moderator and not identity.guest):
            return Decision(False, f"{room} is read-only: only moderators may say")
        return ALLOWED


def load(path: str) -> RoomPolicy:
    """The policy in the file at ``path``, or :class:`ConfigError` naming it and the problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigError(f"{VARIABLE}={path!r}: cannot read it ({reason})") from None
    try:
        return parse(text)
    except ValueError as problem:  # tomllib.TOMLDecodeError included
        one_line = " ".join(str(problem).split())
        raise ConfigError(f"{VARIABLE}={path!r}: {one_line}") from None


def parse(text: str) -> RoomPolicy:
    """The policy a TOML text describes; ValueError, with a one-line message, for anything else."""
    document = tomllib.loads(text)
    unknown = sorted(set(document) - {"rooms"})
    if unknown:
        raise ValueError(f'unknown key {unknown[0]!r} (a policy file has [rooms."pattern"] tables only)')
    rooms = document.get("rooms", {})
    if not isinstance(rooms, dict):
        raise ValueError('rooms must be tables: [rooms."pattern"]')
    return RoomPolicy(tuple(_rule(pattern, flags) for pattern, flags in rooms.items()))


def _rule(pattern: str, flags: object) -> RoomRule:
    where = f"[rooms.{pattern!r}]".replace("'", '"')
    try:
        room_pattern(pattern)
    except ValueError as problem:
        raise ValueError(f"{where}: {problem}") from None
    if not isinstance(flags, Mapping):
        raise ValueError(f"{where} must be a table of private and read_only")
    for name, value in flags.items():
        if name not in FLAGS:
            raise ValueError(f"{where}: unknown key {name!r} (expected private or read_only)")
        if not isinstance(value, bool):
            raise ValueError(f"{where}: {name} must be true or false")
    return RoomRule(pattern, private=flags.get("private", False), read_only=flags.get("read_only", False))
