"""Moderation on the Redis store: kick, ban, mute, redact and disconnect, for every process that
shares the Redis (:class:`Moderated`, a part of :class:`~asgi_chat.engine.stores.redis.RedisStore`).

::

    kick ──▶ KICK (Lua: the ban key, every presence entry of the uid, its leave, "k", one step)
    redact ──▶ REDACT (Lua: the room's redacted hash, "r", one step)
    disconnect ──▶ PUBLISH on the deployment's control channel: "x"
    every process (the link's listener) ──▶ the listener: kicked, redacted, disconnected

A ban and a mute are keys of their own (``room:R:ban:<sha1 of uid>``, ``room:R:mute:<...>``) that
expire when they end (PX): ENTER reads the ban and APPEND the mute, each as one more key of the
script (lua.py), so a join or a say costs no round trip more, and refuses before changing anything
(:class:`~asgi_chat.engine.stores.Forbidden`, saying for how long). A redacted message keeps its
entry in the stream: every read (WINDOW, READ) marks it, and it reads as ``frames.redacted_msg``.

Each process that serves a kicked uid's room drops the uid's connections here from its feed (their
exits then do nothing) and runs EXIT for its own entry: a presence refresh of the uid that crossed
the kick on its way to Redis would otherwise have put the uid back. What the control channel
carries is at most once, as pub/sub is: a disconnect published while a process is cut off from
Redis does not reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from ..link_policy import describe
from ..people import Person
from ..redis_link import LinkUnavailable, RedisLink
from . import Forbidden, StoreListener, StoreSettings, StoreUnavailable
from .feed import Feed
from .scripts import Scripts


def _json(fields: dict[str, str]) -> str:
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class Moderated:
    """The Redis store's moderation: what it asks of Redis, and what it hears back."""

    link: RedisLink
    settings: StoreSettings
    process: str
    _scripts: Scripts
    _listener: StoreListener | None
    _served: dict[str, Feed]
    _control_ready: asyncio.Event
    _enter: Callable[[str, Person, int], Awaitable[None]]  # RedisStore's: be present (ENTER)

    @property
    def control(self) -> str:
        """The deployment's channel: what concerns every process, not one room (``x``: disconnect)."""
        return f"{self.link.prefix}:control"

    # --- asked ------------------------------------------------------------------------------

    async def kick(self, room: str, uid: str, by: str, reason: str, ban_seconds: float = 0) -> None:
        told = _json({"uid": uid, "by": by, "reason": reason})
        args: list[object] = [uid, _ms(ban_seconds) if ban_seconds > 0 else 0, told]
        reply = await self._scripts.run_rooms("KICK", room, args, [], self._scripts.held(room, "ban", uid))
        self._scripts.counted(reply[1:4])

    async def unban(self, room: str, uid: str) -> None:
        key = self._scripts.held(room, "ban", uid)
        await self._scripts.call(lambda client: client.delete(key))

    async def mute(self, room: str, uid: str, seconds: float) -> None:
        key = self._scripts.held(room, "mute", uid)
        await self._scripts.call(lambda client: client.set(key, uid, px=_ms(seconds)))

    async def unmute(self, room: str, uid: str) -> None:
        key = self._scripts.held(room, "mute", uid)
        await self._scripts.call(lambda client: client.delete(key))

    async def redact(self, room: str, offset: int, by: str) -> bool:
        if offset < 1:
            return False
        keys = self._scripts.keys(room, "meta", "stream", "redacted")
        args: list[object] = [offset, by, self._scripts.keep_ms, f"{self._scripts.prefix}{room}"]
        return bool(await self._scripts.run("REDACT", keys, args))

    async def disconnect(self, uid: str, reason: str) -> None:
        told = "x " + _json({"uid": uid, "reason": reason})
        await self._scripts.call(lambda client: client.publish(self.control, told))

    # --- heard ------------------------------------------------------------------------------

    async def _follow_control(self) -> None:
        """Subscribe to the control channel and wait until Redis confirms it (at ``open``)."""
        try:
            await self.link.subscribe(self.control, _Control(self))
            async with asyncio.timeout(self.link.timing.open_timeout):
                await self._control_ready.wait()
        except (LinkUnavailable, TimeoutError) as error:
            await self.link.unsubscribe(self.control)
            await self.link.close()
            where = self.link.shown_url
            raise StoreUnavailable(f"cannot subscribe to {self.control} at {where}: {describe(error)}") from None

    async def _unfollow_control(self) -> None:
        await self.link.unsubscribe(self.control)
        self._control_ready.clear()

    def _heard_control(self, data: str) -> None:
        kind, rest = data.split(" ", 1)
        if kind == "x" and self._listener is not None:  # "x {"uid","reason"}"
            fields = json.loads(rest)
            self._listener.disconnected(fields["uid"], fields["reason"])

    async def _moderated(self, room: str, kind: str, rest: str) -> bool:
        """A room's moderation message (``k``, ``r``) told to the listener; False for any other."""
        if kind == "r":  # "r <offset> <by>"
            offset, by = rest.split(" ", 1)
            if self._listener is not None:
                self._listener.redacted(room, int(offset), by)
            return True
        if kind != "k":
            return False
        fields = json.loads(rest)  # {"uid","by","reason"}
        uid, feed = fields["uid"], self._served.get(room)
        had = feed is not None and feed.drop(uid)
        if self._listener is not None:
            self._listener.kicked(room, uid, fields["by"], fields["reason"])
        if had:  # a refresh that crossed the kick may have put the uid back: out again (else nothing)
            await self._exit(room, uid)
        if feed is not None:
            await self._unserved(room, feed)
        return True

    # --- shared with the store's presence ----------------------------------------------------

    async def _refresh(self, room: str, served: Feed, person: Person) -> None:
        """Be present again as ``person`` (no limit: the room is ours already), unless kicked: if
        the kick came meanwhile, the refresh may have put the uid back, and goes."""
        if served.people.get(person.uid) is not person:  # kicked (or renamed) since the round began
            return
        with contextlib.suppress(Forbidden):  # banned: its kick is on its way here
            await self._enter(room, person, 0)
        if not served.users[person.uid]:
            await self._exit(room, person.uid)

    async def _exit(self, room: str, uid: str) -> None:
        """This process's entry of ``uid`` out of the room; its leave told if it was the uid's last.
        Unreachable now: the entry expires, and a process alive announces the leave then."""
        with contextlib.suppress(StoreUnavailable):
            reply = await self._scripts.run_rooms("EXIT", room, [f"{self.process} {uid}", uid], [])
            self._scripts.counted(reply[1:4])

    async def _unserved(self, room: str, feed: Feed) -> None:
        """No connection here in the room any more: its feed goes, and the subscription."""
        if not feed.users and self._served.get(room) is feed:
            del self._served[room]
            await self.link.unsubscribe(f"{self._scripts.prefix}{room}")


class _Control:
    """Who follows the control channel for the store (a redis_link.Subscriber)."""

    def __init__(self, store: Moderated) -> None:
        self.store = store

    async def confirmed(self, channel: str, again: bool) -> None:
        self.store._control_ready.set()

    async def received(self, channel: str, data: bytes) -> None:
        self.store._heard_control(data.decode())
