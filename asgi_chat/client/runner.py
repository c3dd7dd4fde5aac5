"""The runner: one WebSocket at a time, and the loop that keeps the protocol's promise across them.

One task owns the connection: it connects, says hello, rejoins every room with ``since`` its last
position, resends every request not answered yet (a say with its same id), then reads frames
until the connection ends; then it asks backoff.py whether and when to try again. The client's
methods (client.py) never touch the socket themselves: they record what they want in the ledger
(ledger.py: a room to be in, a request to be answered) and wait for the answer, and whichever
connection is up sends it. So a drop between a say and its ack changes nothing for the caller of
``say``: the runner resends it with the same id, the server publishes it once (it dedups by id),
and the ack arrives.

States (:class:`State`)::

    DISCONNECTED ──start()──▶ CONNECTING ──welcome, rooms rejoined, requests resent──▶ CONNECTED
                                 ▲   │                                                     │
                                 │   └── a final close code, or the tries run out ──▶ CLOSED
                                 └───────────── the connection ended: backoff ─────────────┘
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from ..endpoints.protocol import SUBPROTOCOL
from .backoff import Backoff, Verdict, handshake_verdict, refresh_in, verdict
from .errors import BadFrame, Closed, Refused
from .events import Disconnected, Error, Event, Refreshed, Welcome, parse_frame
from .inbox import TRANSIENT, Inbox, Reconnect
from .ledger import Requests, Rooms

logger = logging.getLogger("asgi_chat.client")

# A history page is up to 100 messages of up to 4,000 characters (ASGI_CHAT_MAX_TEXT_CHARS),
# each up to 4 bytes in UTF-8: more than websockets' default limit of 1 MiB per message.
MAX_FRAME_BYTES = 16 * 2**20
# After a refresh was answered, the next waits at least this long (seconds), whatever the new
# token's expiry: a get_token that hands out the same token again is not asked in a tight loop.
MIN_REFRESH_GAP = 0.5


class State(enum.Enum):
    DISCONNECTED = "disconnected"  # not started yet
    CONNECTING = "connecting"  # opening a connection, or waiting out a backoff before the next try
    CONNECTED = "connected"  # welcomed, rooms rejoined, unanswered requests resent: requests go at once
    CLOSED = "closed"  # for good: you closed it, or the server said not to come back


@dataclass
class _Drop:
    """How one connection ended: its close code (None if it never opened), why, and what next."""

    code: int | None
    reason: str
    next: Verdict
    up: float | None = None  # seconds between its welcome and its end (None: never welcomed)


def chat_url(url: str) -> str:
    """``url`` as the WebSocket to open: a server's bare address means its ``/chat/ws``."""
    parts = urlsplit(url)
    path = parts.path if parts.path not in ("", "/") else "/chat/ws"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class Runner:
    """The connection loop and what it shares with the client: state, ledger, events."""

    def __init__(
        self,
        url: str,
        user: str,
        token: str | None,
        get_token: Callable[[], Awaitable[str]] | None,
        backoff: Backoff,
        open_timeout: float,
        rng: random.Random,
    ) -> None:
        self.url = chat_url(url)
        self.user = user
        self.backoff = backoff
        self.open_timeout = open_timeout
        self.rng = rng
        self.state = State.DISCONNECTED
        self.rooms = Rooms()
        self.requests = Requests()
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()  # None: the end
        self.ws: ClientConnection | None = None
        self.connection = 0  # numbers the connections: what was sent on which
        self.failure: Closed | None = None  # why it stopped for good, when the server stopped it
        self.inbox = Inbox(self.rooms, self.requests, self.events)
        self._token = token
        self._get_token = get_token
        self._guest = False  # True: _token is a guest token the server handed out in a welcome
        self._ready: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the loop; return once the server has welcomed us, or raise :class:`Closed`."""
        if self._task is not None:
            raise RuntimeError(f"a client connects once; this one is {self.state.value}")
        self._ready = asyncio.get_running_loop().create_future()
        self.state = State.CONNECTING
        self._task = asyncio.create_task(self._run(), name=f"asgi_chat.client {self.user}")
        await self._ready

    async def stop(self) -> None:
        if self.state is not State.CLOSED:
            self.finish(None)
        if self.ws is not None:
            await self.ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        try:
            await self._reconnecting()
        except Exception as error:  # a bug of ours: say so, and let every waiter go
            logger.exception("the client's connection loop failed")
            self.finish(Closed(None, f"the client failed: {error!r}"))

    async def _reconnecting(self) -> None:
        failures = 0  # tries in a row that did not give a stable connection
        while True:
            self.state = State.CONNECTING
            drop = await self._connect_once()
            if self.state is State.CLOSED:
                return
            if drop.up is not None and drop.up >= self.backoff.stable:
                failures = 0
            if drop.next is Verdict.REFRESH and self._get_token is not None:
                self._token = None  # ask get_token for a new one before the next hello
            elif drop.next is not Verdict.RETRY:
                self._give_up(drop.code, drop.reason)
                return
            if self.backoff.exhausted(failures):
                self._give_up(drop.code, f"{drop.reason} (gave up after {failures} tries)")
                return
            delay = self.backoff.delay(failures, self.rng)
            failures += 1
            logger.info("connection ended (%s, %s): trying again in %.2f s", drop.code, drop.reason, delay)
            self.events.put_nowait(Disconnected(drop.code, drop.reason, delay))
            await asyncio.sleep(delay)

    def _give_up(self, code: int | None, reason: str) -> None:
        logger.info("connection ended for good (%s, %s)", code, reason)
        self.events.put_nowait(Disconnected(code, reason, None))
        self.finish(Closed(code, reason))

    async def _connect_once(self) -> _Drop:
        if self._token is None and self._get_token is not None:
            try:
                self._token = await self._get_token()
            except Exception as error:  # the token service may be down for a moment, like the chat
                return _Drop(None, f"get_token failed: {error!r}", Verdict.RETRY)
        try:
            async with connect(
                self.url,
                subprotocols=[Subprotocol(SUBPROTOCOL)],
                open_timeout=self.open_timeout,
                max_size=MAX_FRAME_BYTES,
            ) as ws:
                return await self._serve(ws)
        except InvalidStatus as refused:
            status, body = refused.response.status_code, refused.response.body or b""
            return _Drop(None, f"HTTP {status}: {body.decode(errors='replace').strip()}", handshake_verdict(status))
        except (OSError, TimeoutError, InvalidHandshake, BadFrame, Reconnect) as error:
            return _Drop(None, str(error) or type(error).__name__, Verdict.RETRY)
        except Closed as refused:  # hello refused (a bad name): it would be refused again
            return _Drop(None, refused.reason, Verdict.STOP)

    async def _serve(self, ws: ClientConnection) -> _Drop:
        """One connection, from hello to its end."""
        loop = asyncio.get_running_loop()
        welcomed_at: float | None = None
        self.connection += 1
        self.rooms.new_connection()
        refresher: asyncio.Task[None] | None = None
        try:
            welcome = await self._hello(ws)
            welcomed_at = loop.time()
            self.ws = ws
            if welcome.expires is not None and self._get_token is not None:
                refresher = asyncio.create_task(self._refreshing(ws, welcome.expires), name=f"refresh {self.user}")
            await self.flush()  # every room rejoined, every request resent: then, at once, CONNECTED
            self.state = State.CONNECTED
            async for text in ws:
                self.inbox.receive(text)
        except ConnectionClosed:
            pass
        except Reconnect as reconnect:
            await ws.close()
            return _Drop(None, str(reconnect), Verdict.RETRY, _since(loop, welcomed_at))
        finally:
            if refresher is not None:
                refresher.cancel()  # its connection is gone: the next one's welcome starts another
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher
            self.ws = None
            if self.state is State.CONNECTED:
                self.state = State.CONNECTING
            self.requests.connection_ended()
            # Requests of rooms left meanwhile: no later connection will send them.
            self.requests.refuse_orphans(self.rooms.get, Refused("not_joined", "you left the room"))
        code, reason = int(ws.close_code or 1006), ws.close_reason or ""
        return _Drop(code, reason, verdict(code, reason), _since(loop, welcomed_at))

    async def _refreshing(self, ws: ClientConnection, expires: int) -> None:
        """Keep this connection's token fresh: ``refresh_in`` before each expiry (backoff.py), a
        new token from ``get_token`` sent in a ``refresh``; its ``refreshed`` says the next expiry.
        A token refused ends the connection (4401, the server's): nothing more to do here. A
        get_token that fails, or a "not now", is tried again after a backoff delay; if the token
        expires meanwhile, the server's 4001 and the reconnect with a new token take over."""
        assert self._get_token is not None
        delay, failures = refresh_in(expires, time.time()), 0
        while True:
            await asyncio.sleep(delay)
            try:
                token = await self._get_token()
                answer = await self._refresh(ws, token)
            except Refused as refused:
                if refused.code not in TRANSIENT:
                    return  # unauthorized: the server closes with 4401, and the client stops
                delay = self._refresh_retry(refused.retry_ms, failures)
            except Exception as error:  # the token service may be down for a moment
                logger.warning("get_token failed, the refresh is tried again: %r", error)
                delay = self._refresh_retry(None, failures)
            else:
                self._token = token  # and in the next hello too, should this connection drop
                if answer.expires is None:
                    return  # a token that never expires
                delay, failures = max(refresh_in(answer.expires, time.time()), MIN_REFRESH_GAP), 0
                continue
            failures += 1

    def _refresh_retry(self, retry_ms: int | None, failures: int) -> float:
        return retry_ms / 1000 if retry_ms is not None else self.backoff.delay(failures, self.rng)

    async def _refresh(self, ws: ClientConnection, token: str) -> Refreshed:
        """Send ``refresh`` with ``token`` and wait for its answer (raises :class:`Refused`)."""
        request_id = uuid.uuid4().hex
        answer: asyncio.Future[Refreshed] = asyncio.get_running_loop().create_future()
        self.inbox.refreshes[request_id] = answer
        try:
            await self.send(ws, {"type": "refresh", "id": request_id, "token": token})
            return await answer
        finally:
            self.inbox.refreshes.pop(request_id, None)

    async def _hello(self, ws: ClientConnection) -> Welcome:
        frame: dict[str, Any] = {"type": "hello", "user": self.user}
        if self._token is not None:
            frame["token"] = self._token  # identity (issue 19); a server without it ignores the field
        await self.send(ws, frame)
        async with asyncio.timeout(self.open_timeout):
            while True:
                event = parse_frame(str(await ws.recv()))
                if isinstance(event, Welcome):
                    break
                if isinstance(event, Error) and event.code in TRANSIENT:  # the server's trouble: later
                    raise Reconnect(f"hello: {event.code}: {event.message}")
                if isinstance(event, Error) and event.code == "unauthorized" and self._guest:
                    # The server's own guest token, refused (its ASGI_CHAT_SECRET changed): come
                    # back as a new guest, as docs/identity.md has the page do.
                    self._token, self._guest = None, False
                    raise Reconnect(f"guest token refused ({event.message}): coming back as a new guest")
                if isinstance(event, Error):  # a name or a token refused: it would be refused again
                    raise Closed(None, f"hello refused: {event.code}: {event.message}")
        self.inbox.name, self.inbox.uid = event.user, event.uid
        if event.token is not None:
            # A guest's token: presented in every later hello, so that a reconnect is the same
            # guest, whose say ids the server remembers (it dedups them per user and room).
            self._token, self._guest = event.token, True
        self.events.put_nowait(event)
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        return event

    async def flush(self) -> None:
        """Send what this connection owes the server, one frame at a time (joins first, then the
        requests of rooms joined), until nothing is due. Each frame is chosen and marked sent with
        no await in between, so two flushes never send one twice, a join or say made meanwhile is
        sent too, and a flush whose connection ended meanwhile stops: the next connection's flush
        sends the rest. (The server handles a connection's requests in order, so a say sent after
        its room's join is handled after it.)"""
        ws = self.ws
        while ws is not None and ws is self.ws and (frame := self._next_due()) is not None:
            await self.send(ws, frame)

    def _next_due(self) -> dict[str, Any] | None:
        """The next frame the current connection owes the server, marked as sent; None if none."""
        room = next(self.rooms.unsent(), None)
        if room is not None:
            request_id = uuid.uuid4().hex
            self.rooms.sending_join(room, request_id)
            fields = room.position.join_fields(room.history)
            if not room.presence:
                fields["presence"] = False
            return {"type": "join", "id": request_id, "room": room.name, **fields}
        request = next(self.requests.unsent(self.connection, self.rooms.sent_join), None)
        if request is not None:
            request.connection = self.connection
            return request.frame
        return None

    async def flush_if_connected(self) -> None:
        if self.state is State.CONNECTED:  # while CONNECTING, the runner's flush sends it
            await self.flush()

    async def send(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        """Send ``frame``; a connection that is gone is the runner's business, not the sender's."""
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(frame, ensure_ascii=False))

    def finish(self, failure: Closed | None) -> None:
        """CLOSED: every waiter is told, and the iterator ends (raising ``failure`` if any)."""
        self.state = State.CLOSED
        self.failure = failure
        error = failure or Closed(None, "the client was closed")
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        self.rooms.fail(error)
        self.requests.fail(error)
        self.events.put_nowait(None)


def _since(loop: asyncio.AbstractEventLoop, welcomed_at: float | None) -> float | None:
    return None if welcomed_at is None else loop.time() - welcomed_at
