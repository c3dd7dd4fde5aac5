"""Publishing to a room from any process, without HTTP and without a server: a Celery task, a cron job.

::

    from asgi_chat.publish import publish

    published = publish("redis://localhost:6379/0", "lobby", "the nightly build passed", idempotency_key="build-812")
    print(published.offset, published.new)

The line goes through the very step a say takes on a Redis deployment (``ASGI_CHAT_STATE_URL``
``redis://``): the APPEND script of engine/stores/lua.py, run by engine/stores/scripts.py, which
assigns the room's next offset, keeps the message in the room's history (trimmed to the same
bounds), remembers its idempotency key and publishes it on the room's channel, in one atomic
step. Every server process with members in the room hears it there and delivers it in offset
order, as it delivers a say; nothing else is needed: no server process, no subscription here.

What it shares with the servers, so that it is one of them for the room:

- the Redis URL and its database: the keys and the channel start with the same
  ``asgi_chat:dbN:`` prefix (engine/redis_link.py's ``RedisLink.prefix``);
- the bounds (``history_messages``, ``history_max_bytes``, ``dedup_seconds``, ``dedup_max``,
  ``max_rooms``, ``room_idle_seconds``), read from the same ``ASGI_CHAT_*`` variables
  (ops/settings.py's :func:`~asgi_chat.ops.settings.from_env`): run the task with the servers'
  environment, or pass ``settings``;
- a room that does not exist yet is made, within ``max_rooms``: the store's APPEND alone would
  make it past the cap (a server's say always follows a join, whose ENTER keeps the cap), so a
  small script of this module takes the room's slot first, the rooms empty longest giving way at
  the cap as for a join; with none empty, :class:`~asgi_chat.engine.stores.RoomLimit`. A room made
  here is empty since now, and so is an empty room each line is published to: with no member,
  the idle sweep forgets it ``room_idle_seconds`` after its last line.

Who says it: by default :data:`SYSTEM` (uid ``system``, name ``system``); ``user=`` and ``uid=``
publish as the person ``uid`` (named ``user``, by default their uid; a ``user`` without a ``uid``
is refused, as by the HTTP API). A uid muted in the room is refused
(:class:`~asgi_chat.engine.stores.Forbidden`), as its say would be.

Idempotency keys have a namespace of their own, the HTTP API's (web/api_endpoints.py): a key
``K`` is the say id ``"api:" + sha256(K)`` (:func:`say_id_of`), 68 characters, longer than any
say id a WebSocket client may send (64, endpoints/protocol.py's ``MAX_ID_CHARS``), so no key ever
meets a say id, whoever the sender (the system included); and a key used through the API and here
is one publish. It is deduplicated per uid like every say id (records.py's ``say_field``): a key
used again in the room by the same uid within ``dedup_seconds`` (and while fewer than
``dedup_max`` newer ids were remembered) publishes nothing and returns the first offset with
``new=False``. The message's ``msg`` carries that say id as its ``id`` (the digest, never the key).
With ``ASGI_CHAT_DEDUP_SECONDS=0`` nothing is remembered, keys or say ids.

Three ways to call it, each opening its connections and closing them before it returns:
:func:`publish` (plain code: runs its own event loop, so not from inside one),
:func:`apublish` (``await`` it in a coroutine), and :class:`Publisher`, which keeps one
connection for many calls (``with`` for plain code, ``async with`` in a coroutine). A Redis that
cannot be reached raises :class:`~asgi_chat.engine.stores.StoreUnavailable`; nothing retries on
its own (a retried append after a lost reply is a duplicate unless it carries a key).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, Final

from .endpoints.fields import ROOM_NAME
from .endpoints.protocol import MAX_ID_CHARS
from .engine.people import Person
from .engine.redis_link import RedisLink
from .engine.stores import RoomLimit, records
from .engine.stores.bounds import ROOM_KEYS, bounded
from .engine.stores.scripts import ATTEMPTS, Scripts, now_ms
from .ops.settings import Settings, from_env

__all__ = ["SYSTEM", "Published", "Publisher", "apublish", "publish", "say_id_of"]

SYSTEM: Final = Person("system", "system")
ROOM_NAME_HELP: Final = "a room name is 1 to 64 of a-z, 0-9, _ and -, starting with a letter or digit"

# The room's slot, taken before APPEND for a room the deployment does not hold yet (see above); a
# room held already, if empty, is silent since now (APPEND leaves its score: a say has members).
# KEYS and ARGV as every bounded script takes them (bounds.py); its own ARGV: the room limit.
# Returns {'ok'}, {'full'}, or {'need', rooms...} (idle rooms to forget, whose keys were not passed).
MAKE_ROOM: Final = bounded(
    4,
    """
local room = ARGV[FIXED + 1]
if redis.call('EXISTS', key(room, 1)) == 1 or redis.call('ZSCORE', ROOMS, room) then
  redis.call('ZADD', ROOMS, 'XX', 'GT', now, room)  -- an empty room is silent since now; a busy one stays
  return {'ok'}
end
local refused = make_room(tonumber(ARGV[4]))
if refused then return refused end
redis.call('ZADD', ROOMS, 'NX', now, room)
keep(KEEP, ROOMS)
return {'ok'}
""",
)


@dataclass(frozen=True, slots=True)
class Published:
    """Where a line went: its room, the room's epoch, its offset; ``new`` is False when its
    idempotency key had been used already (nothing published, the first offset returned)."""

    room: str
    epoch: str
    offset: int
    new: bool


def say_id_of(idempotency_key: str) -> str:
    """The say id an idempotency key publishes under: the HTTP API's (web/api_endpoints.py's
    ``api_say_id``), longer than any WebSocket say id."""
    return "api:" + hashlib.sha256(idempotency_key.encode()).hexdigest()


def _person(user: str | None, uid: str | None) -> Person:
    """Who speaks, as the HTTP API chooses: :data:`SYSTEM`, or the person ``uid`` (named ``user``,
    by default their uid); a name alone does not say who it is."""
    if uid is None:
        if user is not None:
            raise ValueError("user needs a uid: the person's name alone does not say who it is")
        return SYSTEM
    if not uid or user == "":
        raise ValueError("uid and user must not be empty")
    return Person(uid, user or uid)


class Publisher:
    """One connection to the deployment's Redis for many publishes; see the module docstring.

    ``url``: the servers' ``ASGI_CHAT_STATE_URL`` (default: ``settings.state_url``); ``settings``:
    the bounds (default: :func:`~asgi_chat.ops.settings.from_env`, the ``ASGI_CHAT_*`` variables).
    """

    def __init__(self, url: str | None = None, *, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else from_env()
        self.url = url if url is not None else self.settings.state_url
        if self.url.partition("://")[0].lower() not in ("redis", "rediss"):
            raise ValueError("publishing needs the servers' ASGI_CHAT_STATE_URL: redis:// or rediss://")
        self._link: RedisLink | None = None
        self._scripts: Scripts | None = None
        self._make_room: Any = None
        self._runner: asyncio.Runner | None = None

    # --- async ------------------------------------------------------------------------------

    async def __aenter__(self) -> Publisher:
        await self.aopen()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aopen(self) -> None:
        """Make the client (its connections open on first use); idempotent."""
        if self._link is None:
            self._link = RedisLink(self.url)  # its client only: no listener, no subscription
            self._scripts = Scripts(self._link, self.settings)
            self._make_room = self._link.client.register_script(MAKE_ROOM)

    async def aclose(self) -> None:
        """Close every connection; idempotent."""
        link, self._link, self._scripts = self._link, None, None
        if link is not None:
            await link.client.aclose()

    async def apublish(
        self,
        room: str,
        text: str,
        *,
        user: str | None = None,
        uid: str | None = None,
        idempotency_key: str | None = None,
    ) -> Published:
        """Publish ``text`` to ``room`` as :data:`SYSTEM` or the person ``user``/``uid``."""
        if not ROOM_NAME.fullmatch(room):
            raise ValueError(ROOM_NAME_HELP)
        limit = self.settings.max_text_chars
        if not text or (limit and len(text) > limit):
            raise ValueError(f"text must be 1 to {limit or 'any number of'} characters (ASGI_CHAT_MAX_TEXT_CHARS)")
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_ID_CHARS:
            raise ValueError(f"an idempotency key is 1 to {MAX_ID_CHARS} characters, as the HTTP API's")
        person = _person(user, uid)
        await self.aopen()
        scripts = self._scripts
        assert scripts is not None
        await self._room(scripts, room)
        say_id = None if idempotency_key is None else say_id_of(idempotency_key)
        # As the store's append remembers a say id (stores/redis.py): per uid, unless dedup is off.
        say = records.say_field(room, person.uid, say_id) if say_id is not None and self.settings.dedup_seconds else ""
        body = records.body(now_ms(), person, text, say_id)
        epoch, offset, new = await scripts.append(room, person.uid, body, say)
        return Published(room, epoch, offset, new)

    async def _room(self, scripts: Scripts, room: str) -> None:
        """The room's slot among ``max_rooms``, taken unless the deployment holds the room."""
        others: list[str] = []
        for _ in range(ATTEMPTS):
            names = list(dict.fromkeys([room, *others]))
            keys = scripts.globals + [key for name in names for key in scripts.keys(name, *ROOM_KEYS)]
            args: list[object] = [now_ms(), scripts.prefix, scripts.keep_ms, self.settings.max_rooms, *names]
            reply = await scripts.call(partial(self._run_make_room, keys, args))
            if reply[0] == b"ok":
                return
            if reply[0] == b"full":
                break
            others = [name.decode() for name in reply[1:]]
        raise RoomLimit(f"all {self.settings.max_rooms} rooms the deployment may hold have members")

    async def _run_make_room(self, keys: list[str], args: list[object], client: Any) -> Any:
        return await self._make_room(keys=keys, args=args, client=client)

    # --- sync -------------------------------------------------------------------------------

    def __enter__(self) -> Publisher:
        self._runner = asyncio.Runner()
        self._runner.run(self.aopen())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            try:
                runner.run(self.aclose())
            finally:
                runner.close()

    def publish(
        self,
        room: str,
        text: str,
        *,
        user: str | None = None,
        uid: str | None = None,
        idempotency_key: str | None = None,
    ) -> Published:
        """:meth:`apublish`, from plain code, inside ``with Publisher(...)``."""
        if self._runner is None:
            raise RuntimeError("Publisher.publish runs inside `with Publisher(...)`; in a coroutine, await apublish")
        return self._runner.run(self.apublish(room, text, user=user, uid=uid, idempotency_key=idempotency_key))


async def apublish(
    url: str | None,
    room: str,
    text: str,
    *,
    user: str | None = None,
    uid: str | None = None,
    idempotency_key: str | None = None,
    settings: Settings | None = None,
) -> Published:
    """Publish one line on a connection of its own, closed before it returns (``url`` None:
    ``ASGI_CHAT_STATE_URL``)."""
    async with Publisher(url, settings=settings) as publisher:
        return await publisher.apublish(room, text, user=user, uid=uid, idempotency_key=idempotency_key)


def publish(
    url: str | None,
    room: str,
    text: str,
    *,
    user: str | None = None,
    uid: str | None = None,
    idempotency_key: str | None = None,
    settings: Settings | None = None,
) -> Published:
    """:func:`apublish` from plain code (a Celery task, a cron job): runs an event loop of its own,
    so it cannot be called from inside a running one."""
    coroutine = apublish(url, room, text, user=user, uid=uid, idempotency_key=idempotency_key, settings=settings)
    return asyncio.run(coroutine)
