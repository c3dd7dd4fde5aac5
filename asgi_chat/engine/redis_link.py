"""One Redis link per process: the command connections and the one pub/sub listener that the
tutorial chat's broker (brokers/redis.py) and the rooms' store (stores/redis.py) share.

::

    broker: PUBLISH ─────────┬─▶ client: a pool of command connections ──▶ Redis
    store: scripts, XRANGE ──┘                                                │
                                                     one pub/sub connection   │
    broker.received ◀── asgi_chat:dbN ─────────┬── listener ◀─────────────────┘
    store.received  ◀── asgi_chat:dbN:room:R ──┘

Written once, for both: connecting with timeouts and without retries inside redis-py; one
listener that reconnects with capped, jittered exponential backoff; the idle PING that tells a
silent Redis from a quiet chat; the health both report; one log line when Redis goes down and one
when it is back. Each message is handed to whoever subscribed its channel, and so is each
confirmation of a subscription, told apart: the first, or ``again`` after a reconnection, when
what was published meanwhile is missed (the store catches up from its streams; the broker's
delivery across processes is at-most-once and does not).

Every connection subscribes the link's own channel first (``asgi_chat:dbN:process:<random id>``,
on which nothing is published): its confirmation is what "connected" means, whether anyone else
has subscribed yet or not, and it comes before every other confirmation of the same connection.

The link is shared, so ``open`` counts its users and the last ``close`` stops it: the hub, which
opens and closes its broker with its first and last member on a server without lifespan, never
takes the rooms' subscriptions with it.

What stays two is what each does with what it hears, and why it needs Redis at all: the broker
relays chat lines at most once (brokers/redis.py), the store keeps numbered history that holes are
filled from (stores/redis.py). Everything about the connection is here, once.

Handing on is sequential, in the listener: a store that catches up a room from its stream holds
the next message (of any channel) back meanwhile, each of its commands bounded by ``timeout``.
That is the price of one pub/sub connection per process; the order per channel is Redis's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from typing import Any, Final, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, AuthorizationError, RedisError

from .link_policy import Timing, backoff_delay, describe, redact_url

logger = logging.getLogger("asgi_chat")

SETTING: Final = "ASGI_CHAT_STATE_URL"  # where the URL comes from, for the messages that say what to fix


class LinkUnavailable(Exception):
    """Redis cannot be reached now; the message says which URL (password hidden) and what to check."""


class Subscriber(Protocol):
    """Whoever subscribed a channel. Either method may raise :class:`LinkUnavailable` (Redis failed
    it while it handled the message): that is an outage, and the link reconnects and confirms again."""

    async def confirmed(self, channel: str, again: bool) -> None:
        """Redis confirmed the subscription to ``channel``: ``again`` after a reconnection."""

    async def received(self, channel: str, data: bytes) -> None:
        """A message published on ``channel``."""


async def cancel_all(tasks: tuple[asyncio.Task[None], ...]) -> None:
    """Cancel ``tasks`` and wait for them to end, cancelling again any that carried on.

    One cancellation may not be enough: redis-py writes through ``asyncio.wait_for``, which on
    Python 3.11 swallows a cancellation that arrives as the write completes (bpo-42130, fixed in 3.12).
    """
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.1)


def redis_client(url: str, timing: Timing) -> Redis:
    """A client for ``url`` with the link's timeouts; a URL it cannot use is a ValueError."""
    try:
        return Redis.from_url(
            url,
            socket_connect_timeout=timing.timeout,
            socket_timeout=timing.timeout,
            # No retries inside redis-py: a retried PUBLISH (or append) may be a duplicate, and
            # the listener owns reconnection, so that backoff and logging happen in one place.
            retry=Retry(NoBackoff(), 0),
            client_name="asgi_chat",  # how it shows in CLIENT LIST
        )
    except ValueError as exc:
        expected = "redis://[[user]:password@]host[:port][/db]"
        raise ValueError(f"{SETTING}={redact_url(url)}: {exc}; expected {expected}") from None


class RedisLink:
    """The command client and the pub/sub listener of one process; see the module docstring."""

    def __init__(self, url: str, timing: Timing | None = None) -> None:
        self.url = url
        self.shown_url = redact_url(url)
        self.timing = timing or Timing()
        self.client = redis_client(url, self.timing)  # a pool: each command on a connection of its own
        # Pub/sub ignores the database number, so every channel name carries it.
        self.prefix = f"asgi_chat:db{self.client.connection_pool.connection_kwargs.get('db', 0)}"
        self._own = f"{self.prefix}:process:{secrets.token_hex(8)}"
        self._routes: dict[str, Subscriber] = {}  # channel -> who subscribed it
        self._again: set[str] = set()  # channels whose next confirmation is a resubscription
        self._users = 0
        self._listener: asyncio.Task[None] | None = None
        self._pubsub: PubSub | None = None  # while connected
        self._healthy = False
        self._connections = 0  # confirmed since the first open: each after the first ends an outage
        self._last_error: BaseException | None = None
        self._waiting: list[asyncio.Future[None]] = []  # opens waiting for an attempt to succeed or fail

    @property
    def healthy(self) -> bool:
        """True while the pub/sub connection is confirmed (so commands, too, should succeed)."""
        return self._healthy

    # --- life cycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """One more user (the first starts the listener), once Redis can be reached.

        While it cannot, this waits for one connection attempt (bounded by ``open_timeout``) and
        raises :class:`LinkUnavailable` if that fails; the user is not counted then.
        """
        self._users += 1
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="asgi_chat redis listener")
        if not self._healthy:
            await self._next_attempt()
        if not self._healthy:
            error = self._unavailable()
            await self.close()
            raise error

    async def close(self) -> None:
        """One user fewer; the last stops the listener and closes every connection."""
        if not self._users:
            return
        self._users -= 1
        if self._users:
            return
        if self._listener is not None:
            await cancel_all((self._listener,))
        await self.client.aclose()
        self._listener, self._pubsub, self._healthy, self._connections = None, None, False, 0
        self._routes.clear()

    async def _next_attempt(self) -> None:
        outcome = asyncio.get_running_loop().create_future()
        self._waiting.append(outcome)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timing.open_timeout):
                    await outcome
        finally:
            if outcome in self._waiting:
                self._waiting.remove(outcome)

    def _settled(self) -> None:
        """A connection attempt succeeded or failed: wake the opens waiting for one."""
        waiting, self._waiting = self._waiting, []
        for outcome in waiting:
            if not outcome.done():
                outcome.set_result(None)

    def _unavailable(self) -> LinkUnavailable:
        error = self._last_error
        if isinstance(error, AuthenticationError | AuthorizationError):
            advice = f"check the user name and password in {SETTING}"
        else:
            options = self.client.connection_pool.connection_kwargs
            where = f"{options.get('host', '?')}:{options.get('port', '?')}"
            advice = f"is redis-server running and reachable at {where}? check {SETTING}"
        reason = describe(error) if error is not None else f"no answer in {self.timing.open_timeout:g} s"
        return LinkUnavailable(f"cannot use Redis at {self.shown_url} ({reason}): {advice}")

    # --- subscriptions ------------------------------------------------------------------------

    async def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        """Hand ``channel``'s messages to ``subscriber`` from now on, resubscribing after every
        reconnection. Returns once SUBSCRIBE is sent: Redis's confirmation reaches
        ``subscriber.confirmed``. :class:`LinkUnavailable` while Redis cannot be reached."""
        pubsub = self._pubsub
        if pubsub is None:
            raise LinkUnavailable(f"not connected to Redis at {self.shown_url}")
        self._routes[channel] = subscriber
        try:
            await pubsub.subscribe(channel)
        except (RedisError, OSError) as error:
            self._routes.pop(channel, None)
            raise LinkUnavailable(f"Redis at {self.shown_url}: {describe(error)}") from None

    async def unsubscribe(self, channel: str) -> None:
        """No more of ``channel``'s messages. Never raises: an outage has unsubscribed it already."""
        if self._routes.pop(channel, None) is None:
            return
        self._again.discard(channel)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    # --- the listener -------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Follow every subscribed channel until the last close; every failure is an outage to wait out."""
        attempt = 0
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    self._again = set(self._routes)
                    await pubsub.subscribe(self._own, *self._routes)
                    self._pubsub = pubsub
                    await self._relay(pubsub)
            except Exception as error:  # nothing but close() may end this loop: see encode/broadcaster
                self._pubsub = None
                if self._healthy:
                    attempt = 0  # that connection worked: the next outage starts with short waits
                self._went_down(error)
            await asyncio.sleep(
                backoff_delay(attempt, self.timing.backoff_first, self.timing.backoff_cap, random.random())
            )
            attempt += 1

    async def _relay(self, pubsub: PubSub) -> None:
        """Hand on what Redis sends; raise once Redis is silent.

        Silence may be an idle chat or a dead peer that never sent a FIN (a host gone, a stopped
        server). After ``idle_ping`` seconds of it we PING; no reply within ``timeout`` is death.
        """
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            message = await pubsub.get_message(timeout=self.timing.idle_ping)
            now = loop.time()
            if message is not None:
                await self._receive(message)
                heard = loop.time()  # silence counts from here: a subscriber may have waited on Redis
            elif now - heard > self.timing.idle_ping + self.timing.timeout:
                raise TimeoutError(f"no reply from Redis for {now - heard:.1f} s")
            else:
                await pubsub.ping()

    async def _receive(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], _text(message.get("channel"))
        if kind == "subscribe" and channel == self._own:
            await self._came_up()
            return
        subscriber = self._routes.get(channel)
        if subscriber is None:  # a PING's reply, or a channel unsubscribed meanwhile
            return
        if kind == "subscribe":
            again = channel in self._again
            self._again.discard(channel)
            await subscriber.confirmed(channel, again)
        elif kind == "message":
            await subscriber.received(channel, message["data"])

    async def _came_up(self) -> None:
        self._connections += 1
        if self._connections > 1:  # a connection after the first only ever follows an outage
            # Logged at the outage's level, so whoever saw the outage sees its end.
            logger.warning("Redis up again at %s", self.shown_url)
            # A command connection from before the outage would fail its first command, and nothing
            # retries one (a PUBLISH or a script run twice is a duplicate): those idle start afresh.
            with contextlib.suppress(RedisError, OSError):
                await self.client.connection_pool.disconnect(inuse_connections=False)
        self._healthy = True
        self._settled()

    def _went_down(self, error: BaseException) -> None:
        self._last_error = error
        if self._healthy:
            self._healthy = False
            logger.warning(
                "Redis down at %s: %s; this process's clients still hear each other, rooms answer"
                " unavailable; reconnecting",
                self.shown_url,
                describe(error),
                exc_info=not isinstance(error, RedisError | OSError | LinkUnavailable),  # a bug, not an outage
            )
        self._settled()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else ""
