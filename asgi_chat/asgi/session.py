"""The WebSocket session: an explicit state machine over ASGI's ``receive`` and ``send``
(drawn, and held as data, in states.py).

The session is the one place that calls the server's ``send``, always awaited start to finish
by the task that called it: a server's ``send`` may rely on ``asyncio.current_task()`` (a wait
bounded by ``asyncio.timeout()`` or an anyio cancel scope). Endpoints await
:meth:`Session.send_text` and friends; the chat engine's fan-out awaits :meth:`Session.send_event`
for each recipient of a line. Both check the state, count deliveries and turn a gone peer into
:class:`Disconnected` here, and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Final

from asgiref.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    WebSocketCloseEvent,
    WebSocketResponseBodyEvent,
    WebSocketResponseStartEvent,
    WebSocketScope,
    WebSocketSendEvent,
)

from .errors import CloseCode, Disconnected, ProtocolError, Refusal
from .hooks import Counters, Guard, Tally
from .responses import Response, denial
from .states import MORE_BODY, TRANSITIONS, State

logger = logging.getLogger("asgi_chat")

# How long a close may wait for the server to take it. A stalled peer keeps the server's write
# buffer full, and some servers make every send (the close too) wait for room in it.
CLOSE_TIMEOUT: Final = 1.0
# A receive that returns within this long did not wait for the client: its message was queued.
QUEUED_WITHIN: Final = 0.001

# The scope extension of a server that takes an HTTP response in place of accept (asgiref's
# extensions.rst, "Websocket Denial Response").
DENIAL_RESPONSE: Final = "websocket.http.response"


class Session:
    """One WebSocket connection as the app sees it. Endpoints talk to this, never to raw ASGI."""

    # Slots: a server may hold thousands of idle sessions, and each saves its attribute dict.
    __slots__ = ("_guard", "_metrics", "_receive", "_send", "close_code", "close_reason", "scope", "state")

    def __init__(
        self,
        scope: WebSocketScope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        guard: Guard | None = None,
        metrics: Counters | None = None,
    ) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self._guard = guard  # asked about every data message received (hooks.py)
        self._metrics: Counters = metrics or Tally()
        self.state = State.CONNECTING
        self.close_code: int | None = None  # the code this session ended with, either side's
        self.close_reason = ""

    def _advance(self, direction: str, message_type: str) -> None:
        next_state = TRANSITIONS.get((self.state, direction, message_type))
        if next_state is None:
            raise ProtocolError(self.state.name, direction, message_type)
        self._enter(next_state)

    def _enter(self, state: State) -> None:
        # The open-connection gauge follows the state machine, so no path can forget it.
        if state is not self.state:
            self._metrics.connections += (state is State.OPEN) - (self.state is State.OPEN)
        self.state = state

    async def wait_connect(self) -> None:
        """Take the server's ``websocket.connect``; a client gone before it raises Disconnected."""
        message = await self._receive()
        self._advance("received", message["type"])
        if message["type"] == "websocket.disconnect":
            self._record_close(message["code"], message.get("reason") or "")
            raise Disconnected(message["code"])

    async def accept(self, subprotocol: str | None = None) -> None:
        await self._transmit({"type": "websocket.accept", "subprotocol": subprotocol, "headers": []})

    @property
    def can_deny(self) -> bool:
        """Whether the server takes an HTTP response in place of accept (:data:`DENIAL_RESPONSE`)."""
        return DENIAL_RESPONSE in (self.scope.get("extensions") or {})

    async def refuse(self, refusal: Refusal) -> None:
        """End the connection for ``refusal``, in the most telling way the state and server allow.

        Before accept, on a server that takes one: an HTTP response with the refusal's status and
        its reason as the body (:func:`denial`), so that a client sees why. Otherwise a close:
        after accept a close frame with the code and reason, before it the server's bare 403.
        """
        if self.state is State.HANDSHAKE and self.can_deny:
            await self.deny(denial(refusal), refusal.code, refusal.reason)
        else:
            await self.close(refusal.code, refusal.reason)

    async def deny(self, response: Response, code: int, reason: str) -> None:
        """Answer the handshake with ``response`` instead of accepting it; a no-op once closed.

        ``code`` and ``reason`` are what a close would have said: no frame carries them, but the
        session ended with them. Bounded by ``CLOSE_TIMEOUT``, like :meth:`close`.
        """
        if self.state is State.CLOSED:
            return
        self._record_close(code, reason)
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.start_response(response.status, response.header_list())
                await self.send_body(response.body)
        except (Disconnected, TimeoutError):
            self._enter(State.CLOSED)

    async def start_response(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        # A plain int, as for close codes (see close): an HTTPStatus member is an IntEnum.
        start: WebSocketResponseStartEvent = {
            "type": "websocket.http.response.start",
            "status": int(status),
            "headers": list(headers),
        }
        await self._transmit(start)

    async def send_body(self, body: bytes, more_body: bool = False) -> None:
        part: WebSocketResponseBodyEvent = {
            "type": "websocket.http.response.body",
            "body": body,
            "more_body": more_body,
        }
        await self._transmit(part)

    async def receive_message(self) -> str | bytes:
        """The next data message, text as ``str`` and binary as ``bytes``.

        Raises :class:`Disconnected` when the peer has gone, and whatever the inbound guard
        raises (:class:`MessageTooBig`, :class:`PolicyViolation` for the rate) for a message
        over the limits.
        """
        asked = time.monotonic()
        message = await self._receive()
        # Returned at once: the message was waiting for the app, not the app for the message. A
        # rate guard must not count the app's own delay against the client (ops/security.py).
        queued = time.monotonic() - asked < QUEUED_WITHIN
        self._advance("received", message["type"])
        if message["type"] == "websocket.disconnect":
            self._record_close(message["code"], message.get("reason") or "")
            raise Disconnected(message["code"])
        assert message["type"] == "websocket.receive"  # the only other type TRANSITIONS allows here
        # ASGI: "Exactly one of bytes or text must be non-None. One or both keys may be present."
        text, data = message.get("text"), message.get("bytes")
        payload: str | bytes
        if isinstance(text, str) and data is None:
            payload = text
        elif isinstance(data, bytes) and text is None:
            payload = data
        else:
            detail = "not exactly one of text/bytes"
            raise ProtocolError(self.state.name, "received", message["type"], detail)
        self._metrics.messages_received += 1
        if self._guard is not None:
            self._guard.admit(payload, queued)
        return payload

    async def send_text(self, text: str) -> None:
        await self._transmit({"type": "websocket.send", "text": text, "bytes": None})

    async def send_bytes(self, data: bytes) -> None:
        await self._transmit({"type": "websocket.send", "bytes": data, "text": None})

    async def send_event(self, event: WebSocketSendEvent) -> None:
        """Send a prepared ``websocket.send`` event: the fan-out shares one among all recipients.

        :meth:`send_text` minus the table lookup, since this runs once per recipient of every
        line: the one transition a data send may take is OPEN -> OPEN (TRANSITIONS).
        """
        if self.state is not State.OPEN:
            if self.state is not State.CLOSED:
                self._advance("sent", event["type"])  # raises the ProtocolError that names the state
            raise Disconnected(self.close_code or CloseCode.ABNORMAL)
        try:
            await self._send(event)
        except (OSError, RuntimeError) as exc:
            raise self._gone() from exc
        self._metrics.messages_delivered += 1

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close (or, before accept, refuse) the connection; a no-op once closed.

        Bounded by ``CLOSE_TIMEOUT``: a peer that stopped reading must not keep the app waiting.
        """
        if self.state is State.CLOSED:
            return
        self._record_close(code, reason)
        # ASGI: "code (int)". A plain int, not the CloseCode member: daphne (autobahn) checks
        # type(code) == int and fails the connection on an IntEnum.
        close: WebSocketCloseEvent = {"type": "websocket.close", "code": int(code), "reason": reason}
        try:
            await asyncio.wait_for(self._transmit(close), CLOSE_TIMEOUT)
        except (Disconnected, TimeoutError):
            self._enter(State.CLOSED)
        except Exception:
            if close["code"] == CloseCode.NORMAL:
                raise
            await self._close_normally(close)

    async def _close_normally(self, refused: WebSocketCloseEvent) -> None:
        """Close with 1000 after the server refused ``refused``'s code (and kept the connection).

        RFC 6455 7.4.1 lets an endpoint close with 1003, 1008, 1009, 1011 or 1013, but daphne
        hands the code to autobahn's sendClose, which takes only 1000 or 3000-4999 and raises
        on anything else. 1000 is the one code every server accepts; the reason still goes
        along (daphne drops reasons anyway).
        """
        logger.debug("the server refused close code %d; closing with 1000", refused["code"])
        normal: WebSocketCloseEvent = {"type": "websocket.close", "code": 1000, "reason": refused["reason"]}
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):  # the peer is gone after all
            await asyncio.wait_for(self._send(normal), CLOSE_TIMEOUT)

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """The app is done with the connection: whatever state it was in, it is CLOSED now.

        ASGI: once the application returns, the server closes the connection (with 403 before
        accept, 1000 after); nothing more goes through this session, and the open-connection
        gauge must say so even when an endpoint ended by an unexpected exception.
        """
        self._enter(State.CLOSED)

    async def _transmit(self, message: ASGISendEvent) -> None:
        if self.state is State.CLOSED and message["type"] != "websocket.close":
            raise Disconnected(self.close_code or CloseCode.ABNORMAL)
        self._advance("sent", _kind(message))
        try:
            await self._send(message)
        except (OSError, RuntimeError) as exc:
            raise self._gone() from exc
        if message["type"] == "websocket.send":
            self._metrics.messages_delivered += 1

    def _gone(self) -> Disconnected:
        """A send raised: the peer is gone. That is a disconnect, not a crash.

        ASGI 2.4: a send to a closed connection raises a server-specific OSError; uvicorn's
        legacy ``websockets`` implementation raises RuntimeError instead.
        """
        self._enter(State.CLOSED)
        self._record_close(CloseCode.ABNORMAL, "")
        return Disconnected(CloseCode.ABNORMAL)

    def _record_close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason


def _kind(message: ASGISendEvent) -> str:
    """The message's name in TRANSITIONS: its type, or MORE_BODY for a body with more to follow."""
    if message["type"] == "websocket.http.response.body" and message.get("more_body", False):
        return MORE_BODY
    return message["type"]
