"""``Client``: what you call. Each method records what it wants and waits for the answer.

The connection itself is the runner's (runner.py): a method never touches the socket beyond
sending what the runner's ledger says is due, so an answer may come on a later connection than
the request did, and the caller of ``say`` or ``history`` does not notice the drop in between.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..endpoints.protocol import MAX_WHOLE
from .backoff import Backoff
from .errors import Closed, Refused
from .events import Ack, Event, History, Joined, Members, Message
from .inbox import TRANSIENT
from .runner import Runner, State


class Client:
    """A client of ``asgi-chat.v1`` that loses nothing across dropped connections (docs/client.md).

    ``token`` is sent in ``hello``; ``get_token``, when given, is awaited for a token before the
    first connection, before each expiry the server announces (sent in a ``refresh`` on the live
    connection) and after the server closes with 4001 (token expired). ``backoff``
    says how long to wait between tries, and how many in a row may fail.
    """

    def __init__(
        self,
        url: str,
        *,
        user: str,
        token: str | None = None,
        get_token: Callable[[], Awaitable[str]] | None = None,
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        backoff = backoff or Backoff()
        self._runner = Runner(url, user, token, get_token, backoff, open_timeout, rng or random.Random())

    @property
    def state(self) -> State:
        return self._runner.state

    @property
    def name(self) -> str | None:
        """Your name as the server normalised it (None before the first welcome)."""
        return self._runner.inbox.name

    @property
    def url(self) -> str:
        return self._runner.url

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Start, and return once the server has welcomed you; raises :class:`Closed` when it
        never will (a refused name, a final close code, the tries run out)."""
        await self._runner.start()

    async def close(self) -> None:
        """Close the connection (1000) and stop: pending requests raise :class:`Closed`, the
        event iterator ends after the events already received."""
        await self._runner.stop()

    # --- what you ask for -------------------------------------------------------------------------

    async def join(self, room: str, *, history: int | None = None, presence: bool = True) -> Joined:
        """Be in ``room`` from now on, on every connection: the first ``joined`` event (it is yielded
        too, as each rejoin's is). ``history``: also the last so many messages; ``presence=False``:
        no presence events from this room."""
        self._check_open()
        entry = self._runner.rooms.add(room, history, presence)
        await self._runner.flush_if_connected()
        return await entry.first

    async def say(self, room: str, text: str) -> int:
        """Publish ``text`` in ``room`` exactly once; its offset. Waits for the ack across reconnects
        (the same id is resent), and raises :class:`Refused` if the server refuses it."""
        self._runner.rooms.require(room)
        reply = await self._ask(room, {"type": "say", "id": uuid.uuid4().hex, "room": room, "text": text})
        assert isinstance(reply, Ack), reply
        return reply.offset

    async def history(self, room: str, *, before: int = MAX_WHOLE, limit: int = 100) -> tuple[Message, ...]:
        """The latest ``limit`` (at most 100) retained messages of ``room`` below offset ``before``.
        These are not events: they do not move the room's position, nor go through ``async for``."""
        self._runner.rooms.require(room)
        frame = {"type": "history", "id": uuid.uuid4().hex, "room": room, "before": before, "limit": limit}
        reply = await self._ask(room, frame)
        assert isinstance(reply, History), reply
        return reply.messages

    async def members(self, room: str) -> Members:
        """Who is in ``room`` now, on every server process."""
        self._runner.rooms.require(room)
        reply = await self._ask(room, {"type": "presence", "id": uuid.uuid4().hex, "room": room})
        assert isinstance(reply, Members), reply
        return reply

    async def leave(self, room: str) -> None:
        """Leave ``room``: no rejoin after a reconnect, and its requests not sent yet are refused."""
        entry, joined_here = self._runner.rooms.remove(room)
        left = Refused("not_joined", f"you left room {room}")
        if not entry.first.done():
            entry.first.set_exception(left)
        ws = self._runner.ws
        # Requests this connection sent before the leave are answered first (the server takes them
        # in order); the others never will be.
        sent_here = self._runner.connection if ws is not None and joined_here else None
        self._runner.requests.refuse_room(room, sent_here, left)
        if ws is None or not joined_here:
            return  # not in it on this connection: nothing to tell the server
        frame = {"type": "leave", "id": uuid.uuid4().hex, "room": room}
        request = self._runner.requests.add(room, frame, resend=False)
        request.connection = self._runner.connection
        await self._runner.send(ws, frame)
        await request.reply  # its left frame, or the end of this connection: either way, out

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        """The next event; after the client closed, StopAsyncIteration, or :class:`Closed` when the
        server closed it for good (so a bot does not end silently)."""
        event = await self._runner.events.get()
        if event is None:
            self._runner.events.put_nowait(None)  # the end stays the end, for every later call
            if self._runner.failure is not None:
                raise self._runner.failure
            raise StopAsyncIteration
        return event

    async def _ask(self, room: str, frame: dict[str, Any]) -> Event:
        """Send ``frame`` (now, or on the next connection) and wait for its answer; a transient
        refusal is asked again with the same id, after ``retry_ms`` or a backoff delay."""
        failures = 0
        while True:
            self._check_open()
            request = self._runner.requests.add(room, frame)
            try:
                await self._runner.flush_if_connected()
                return await request.reply
            except Refused as refused:
                if refused.code not in TRANSIENT or self._runner.backoff.exhausted(failures):
                    raise
                await asyncio.sleep(self._retry_delay(refused, failures))
                failures += 1
            finally:
                self._runner.requests.discard(request)  # answered, refused or cancelled: never resent

    def _retry_delay(self, refused: Refused, failures: int) -> float:
        """What the server asked for (``slow_down``'s ``retry_ms``), else a backoff delay."""
        if refused.retry_ms is not None:
            return refused.retry_ms / 1000
        return self._runner.backoff.delay(failures, self._runner.rng)

    def _check_open(self) -> None:
        if self._runner.state is State.CLOSED:
            raise self._runner.failure or Closed(None, "the client was closed")
