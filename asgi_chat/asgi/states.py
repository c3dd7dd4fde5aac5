"""The WebSocket session's states, and every move between them, as data.

::

    CONNECTING --receive connect--> HANDSHAKE --send accept--> OPEN --send/receive data--> OPEN
        |                            |     |                     |
        | receive disconnect         |     | send close (403)    | send close, receive disconnect,
        v                            |     v                     v a send that raises, or the app returns
      CLOSED <-----------------------|-----+---------------------+
      ^ ^   |                        |
      | +---+ receive disconnect     | send http.response.start
      |   (the server's answer to    v
      |    our close, to a reader  RESPONDING --send http.response.body, more_body--> RESPONDING
      |    still waiting)            |
      +------------------------------+ send http.response.body (the last: more_body false)

``http.response`` stands for ``websocket.http.response``: ASGI's "WebSocket Denial Response"
extension, an HTTP response of the app's own in place of accept (see :meth:`Session.deny`).

Every (state, message) pair not drawn above raises :class:`ProtocolError`, which names both. The
one exception is a send after CLOSED: with a reader and a writer on one connection, either may
learn first that the peer is gone, so a late send raises :class:`Disconnected`, like the server.
"""

from __future__ import annotations

import enum
from typing import Final

# How TRANSITIONS names a response body with more to follow (``more_body`` true): unlike the last
# one, it leaves the response open.
MORE_BODY: Final = "websocket.http.response.body (more_body)"


class State(enum.Enum):
    CONNECTING = "waiting for websocket.connect"
    HANDSHAKE = "connect received, not yet accepted"
    OPEN = "accepted"
    RESPONDING = "refusing with an HTTP response"
    CLOSED = "closed"


# (state, direction, message type) -> next state: the drawing above, as data.
TRANSITIONS: Final[dict[tuple[State, str, str], State]] = {
    (State.CONNECTING, "received", "websocket.connect"): State.HANDSHAKE,
    (State.CONNECTING, "received", "websocket.disconnect"): State.CLOSED,
    # Only a server that skipped websocket.connect leaves the app closing here: refuse it.
    (State.CONNECTING, "sent", "websocket.close"): State.CLOSED,
    (State.HANDSHAKE, "sent", "websocket.accept"): State.OPEN,
    (State.HANDSHAKE, "sent", "websocket.close"): State.CLOSED,
    # The extension: "These messages cannot be followed by any other websocket messages as the
    # server should send a HTTP response and then close the connection."
    (State.HANDSHAKE, "sent", "websocket.http.response.start"): State.RESPONDING,
    (State.RESPONDING, "sent", MORE_BODY): State.RESPONDING,
    (State.RESPONDING, "sent", "websocket.http.response.body"): State.CLOSED,
    (State.OPEN, "received", "websocket.receive"): State.OPEN,
    (State.OPEN, "received", "websocket.disconnect"): State.CLOSED,
    (State.OPEN, "sent", "websocket.send"): State.OPEN,
    (State.OPEN, "sent", "websocket.close"): State.CLOSED,
    # ASGI: disconnect is "sent to the application when ... the server closing the connection".
    # When one task closes (shutdown, the slow-consumer policy) while another waits in receive,
    # that receive gets the disconnect; granian delivers it at shutdown.
    (State.CLOSED, "received", "websocket.disconnect"): State.CLOSED,
}
