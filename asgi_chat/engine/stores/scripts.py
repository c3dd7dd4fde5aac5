"""Running the Redis store's Lua scripts: with every key they touch, and the bounds they count.

A script that keeps a bound (bounds.py) takes the deployment's keys, then six per room, and may
answer ``need`` with rooms it would have to touch and was not passed (whose oldest message goes,
which idle room gives way): :meth:`Scripts.run_rooms` runs it again with those rooms' keys. Each
reply that keeps a bound ends with the three counts that :attr:`Scripts.bounds` shows (/healthz,
/metrics), so they cost no command of their own.
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Any

from redis.exceptions import RedisError

from ..link_policy import describe
from ..redis_link import RedisLink
from ..replay import Stored
from . import Bound, Forbidden, StoreSettings, StoreUnavailable, lua, records
from .bounds import GLOBAL_KEYS, ROOM_KEYS, TRIM_BATCH

ATTEMPTS = 4  # runs of a script that keeps answering need: other processes keep moving the oldest
SWEPT = 16  # idle rooms the presence task forgets at most per round


class Scripts:
    """lua.py's scripts on one link, and the store's bounds as of their latest reply."""

    def __init__(self, link: RedisLink, settings: StoreSettings) -> None:
        self.link = link
        self.settings = settings
        self.prefix = f"{link.prefix}:room:"  # a room's keys and its channel start with it
        self.globals = [f"{link.prefix}:{name}" for name in GLOBAL_KEYS]
        self._scripts: dict[str, Any] = {name: link.client.register_script(getattr(lua, name)) for name in lua.SCRIPTS}
        self.bounds: tuple[Bound, ...] = ()
        self.oldest: list[str] = []  # the rooms with the oldest history, as the latest eviction saw them

    def keys(self, room: str, *names: str) -> list[str]:
        return [f"{self.prefix}{room}:{name}" for name in names]

    def held(self, room: str, kind: str, uid: str) -> str:
        """The key of ``uid``'s ban or mute (``kind``) in ``room``."""
        return f"{self.prefix}{room}:{kind}:{records.digest(uid)}"

    @property
    def keep_ms(self) -> int:
        """How long a room's keys live after their last use: twice room_idle_seconds, so that the
        idle sweep, which also takes the room's messages out of the history order, comes first."""
        return 2 * int(self.settings.room_idle_seconds * 1000) or 1 << 40

    async def run(self, script: str, keys: list[str], args: list[object]) -> Any:
        """Run a Lua script; an unreachable Redis is StoreUnavailable, for the client to hear."""
        try:
            return await self._scripts[script](keys=keys, args=args)
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"Redis at {self.link.shown_url}: {describe(error)}") from None

    async def call(self, command: Any) -> Any:
        """``command(client)``, a plain command; an unreachable Redis is StoreUnavailable."""
        try:
            return await command(self.link.client)
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"Redis at {self.link.shown_url}: {describe(error)}") from None

    async def run_rooms(
        self, script: str, room: str | None, args: list[object], others: list[str], own: str | None = None
    ) -> Any:
        """Run a bounded script on ``room`` and ``others`` (and its ``own`` key last), and again with
        the rooms it says it needs. Its last reply: still ``need`` only if other processes kept ahead
        of every run."""
        for _ in range(ATTEMPTS):
            names = list(dict.fromkeys([room, *others] if room is not None else others))
            keys = self.globals + [key for name in names for key in self.keys(name, *ROOM_KEYS)]
            keys += [own] if own is not None else []
            reply = await self.run(script, keys, [now_ms(), self.prefix, self.keep_ms, *args, *names])
            if reply[0] != b"need":
                return reply
            others = [name.decode() for name in reply[1:]]
        return reply

    async def append(self, room: str, uid: str, body: str, say: str) -> tuple[str, int, bool]:
        """APPEND ``body`` by ``uid`` (and remember ``say``, unless ""): its epoch, offset, and
        whether it was published (else ``say`` was seen, and the offset is its first).
        :class:`Forbidden` while ``uid`` is muted in ``room`` (no offset taken)."""
        budget, mute = self.settings.history_max_bytes, self.held(room, "mute", uid)
        reply = await self.run_rooms("APPEND", room, self._append_args(body, say, budget), self.oldest, mute)
        if reply[0] == b"need":  # others kept evicting ahead of it: over the budget until the next say
            reply = await self.run_rooms("APPEND", room, self._append_args(body, say, 0), [], mute)
        if reply[0] == b"muted":
            raise forbidden("muted in", room, int(reply[1]))
        self.counted(reply[4:7])
        self.oldest = [name.decode() for name in reply[7:]]
        return reply[1].decode(), int(reply[2]), bool(reply[3])

    def _append_args(self, body: str, say: str, budget: int) -> list[object]:
        """APPEND's own ARGV (lua.py), in its order."""
        settings = self.settings
        length, dedup_ms = settings.history_messages or 1 << 40, int(settings.dedup_seconds * 1000) or 1
        return [secrets.token_hex(8), body, length, TRIM_BATCH, budget, say, dedup_ms, settings.dedup_max]

    async def read(self, room: str, command: str, start: str, end: str, count: int | None = None) -> list[Stored]:
        """XRANGE or XREVRANGE of the room's stream (READ), each message redacted or not, in one
        round trip; in the command's order."""
        args: list[object] = [command, start, end, "" if count is None else count]
        reply = await self.run("READ", self.keys(room, "stream", "redacted"), args)
        return records.stored_tail(room, reply)

    async def sweep(self) -> None:
        """Forget rooms empty for room_idle_seconds, a few at a time (FORGET checks each again),
        and count the bounds: the presence task's round."""
        idle_ms = int(self.settings.room_idle_seconds * 1000)
        names: list[str] = []
        if idle_ms:
            since = now_ms() - idle_ms
            idle = await self.call(lambda client: client.zrangebyscore(self.globals[0], "-inf", since, 0, SWEPT))
            names = [name.decode() for name in idle]
        reply = await self.run_rooms("FORGET", None, [idle_ms], names)
        self.counted(reply[1:4])

    def counted(self, counts: list[Any]) -> None:
        """A reply's three counts: rooms, history bytes, say ids."""
        rooms, history_bytes, say_ids = (int(count) for count in counts)
        settings = self.settings
        self.bounds = (
            Bound("rooms", rooms, settings.max_rooms),
            Bound("history_bytes", history_bytes, settings.history_max_bytes),
            Bound("say_ids", say_ids, settings.dedup_max),
        )


def forbidden(what: str, room: str, ms_left: int) -> Forbidden:
    """A ban's or a mute's refusal, saying for how long (``ms_left``: the key's PTTL; -1, none)."""
    if ms_left < 0:
        return Forbidden(f"{what} room {room} until a moderator ends it")
    return Forbidden(f"{what} room {room} for {math.ceil(ms_left / 1000)} more seconds")


def now_ms() -> int:
    return time.time_ns() // 1_000_000
