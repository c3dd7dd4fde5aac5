"""The WebSocket session: an explicit state machine over ASGI's ``receive`` and ``send``.

::

    CONNECTING --receive connect--> HANDSHAKE --send accept--> OPEN --send/receive data--> OPEN
        |                                |                       |
        | receive disconnect             | send close (403)      | send close, or receive disconnect
        v                                v                       v
      CLOSED <---------------------------+-----------------------+
        ^   |
        +---+ receive disconnect (the server's answer to our close, to a reader still waiting)

Every (state, message) pair not drawn above raises :class:`ProtocolError`, which names both. The
one exception is a send after CLOSED: with a reader and a writer on one connection, either may
learn first that the peer is gone, so a late send raises :class:`Disconnected`, like the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from typing import Final

from asgiref.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    WebSocketCloseEvent,
    WebSocketScope,
    WebSocketSendEvent,
)

from .errors import CloseCode, Disconnected, ProtocolError
from .metrics import Metrics
from .security import InboundGuard

logger = logging.getLogger("asgi_chat")

# How long a close may wait for the server to take it. A stalled peer keeps the server's write
# buffer full, and some servers make every send (the close too) wait for room in it.
CLOSE_TIMEOUT: Final = 1.0


class State(enum.Enum):
    CONNECTING = "waiting for websocket.connect"
    HANDSHAKE = "connect received, not yet accepted"
    OPEN = "accepted"
    CLOSED = "closed"


# (state, direction, message type) -> next state: the drawing above, as data.
TRANSITIONS: Final[dict[tuple[State, str, str], State]] = {
    (State.CONNECTING, "received", "websocket.connect"): State.HANDSHAKE,
    (State.CONNECTING, "received", "websocket.disconnect"): State.CLOSED,
    # Only a server that skipped websocket.connect leaves the app closing here: refuse it.
    (State.CONNECTING, "sent", "websocket.close"): State.CLOSED,
    (State.HANDSHAKE, "sent", "websocket.accept"): State.OPEN,
    (State.HANDSHAKE, "sent", "websocket.close"): State.CLOSED,
    (State.OPEN, "received", "websocket.receive"): State.OPEN,
    (State.OPEN, "received", "websocket.disconnect"): State.CLOSED,
    (State.OPEN, "sent", "websocket.send"): State.OPEN,
    (State.OPEN, "sent", "websocket.close"): State.CLOSED,
    # ASGI: disconnect is "sent to the application when ... the server closing the connection".
    # When one task closes (shutdown, the slow-consumer policy) while another waits in receive,
    # that receive gets the disconnect; granian delivers it at shutdown.
    (State.CLOSED, "received", "websocket.disconnect"): State.CLOSED,
}


class Session:
    """One WebSocket connection as the app sees it. Endpoints talk to this, never to raw ASGI."""

    # Slots: a server may hold thousands of idle sessions, and each saves its attribute dict.
    __slots__ = ("_guard", "_metrics", "_receive", "_send", "asgi_send", "close_code", "close_reason", "scope", "state")

    def __init__(
        self,
        scope: WebSocketScope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        guard: InboundGuard | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        # The server's send, for the hub's hot path only (hub.Member): data messages to a session
        # in OPEN, which the state machine would pass through unchanged.
        self.asgi_send = send
        self._guard = guard
        self._metrics = metrics or Metrics()
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

    async def receive_message(self) -> str | bytes:
        """The next data message, text as ``str`` and binary as ``bytes``.

        Raises :class:`Disconnected` when the peer has gone, and whatever the inbound guard
        raises (:class:`MessageTooBig`, :class:`PolicyViolation` for the rate) for a message
        over the limits.
        """
        message = await self._receive()
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
            self._guard.admit(payload)
        return payload

    async def send_text(self, text: str) -> None:
        await self._transmit({"type": "websocket.send", "text": text, "bytes": None})

    async def send_bytes(self, data: bytes) -> None:
        await self._transmit({"type": "websocket.send", "bytes": data, "text": None})

    async def send_event(self, event: WebSocketSendEvent) -> None:
        """Send a prepared ``websocket.send`` event: the hub shares one event among all recipients."""
        await self._transmit(event)

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

    def abandon(self) -> None:
        """Mark the session CLOSED without sending anything, for an app that is done with it.

        The peer may be gone without the session having seen it (the hub's sends bypass the
        session), or the server will close the connection once the app returns: either way,
        nothing more goes through this session, and the open-connection gauge must say so.
        """
        self._enter(State.CLOSED)

    async def _transmit(self, message: ASGISendEvent) -> None:
        if self.state is State.CLOSED and message["type"] != "websocket.close":
            raise Disconnected(self.close_code or CloseCode.ABNORMAL)
        self._advance("sent", message["type"])
        try:
            await self._send(message)
            if message["type"] == "websocket.send":
                self._metrics.messages_delivered += 1
        except (OSError, RuntimeError) as exc:
            # ASGI 2.4: a send to a closed connection raises a server-specific OSError. uvicorn's
            # legacy `websockets` implementation raises RuntimeError instead. Either way the peer
            # is gone: that is a disconnect, not a crash.
            self._enter(State.CLOSED)
            self._record_close(CloseCode.ABNORMAL, "")
            raise Disconnected(CloseCode.ABNORMAL) from exc

    def _record_close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
