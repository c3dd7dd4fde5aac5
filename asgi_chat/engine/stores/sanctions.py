"""Bans and mutes as the memory store keeps them: (room, uid) -> until when, forgotten once past.

A moderator's ban refuses a user's joins of a room for a while, a mute their says (engine/stores'
``Forbidden``); both outlive the user's connections, since they belong to the user (its uid),
not to a socket. The Redis store keeps the same as keys that expire on their own (stores/redis.py).
"""

from __future__ import annotations

from collections.abc import Callable

Key = tuple[str, str]  # (room, uid)


class Sanctions:
    """One kind of sanction (bans, or mutes): who is under it in which room, and until when."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._until: dict[Key, float] = {}

    def impose(self, room: str, uid: str, seconds: float) -> None:
        self._forget_past()
        self._until[(room, uid)] = self._clock() + seconds

    def lift(self, room: str, uid: str) -> None:
        self._until.pop((room, uid), None)

    def remaining(self, room: str, uid: str) -> float:
        """Seconds the sanction still holds: 0.0 when there is none (or it is over)."""
        until = self._until.get((room, uid))
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._until[(room, uid)]
            return 0.0
        return left

    def __len__(self) -> int:
        return len(self._until)

    def _forget_past(self) -> None:
        # Only moderators add entries, so a sweep on each addition keeps the dict to those in force.
        now = self._clock()
        for key in [key for key, until in self._until.items() if until <= now]:
            del self._until[key]
