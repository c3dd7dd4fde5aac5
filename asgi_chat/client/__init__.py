"""``asgi_chat.client``: a Python client of the ``asgi-chat.v1`` rooms chat (docs/client.md).

::

    async with Client("ws://127.0.0.1:8000", user="bot") as chat:
        await chat.join("lobby")
        async for event in chat:
            if isinstance(event, Message) and event.text == "ping":
                await chat.say("lobby", "pong")

It keeps the protocol's promise for its user across dropped connections and server restarts:
every message once, in offset order, or a :class:`Gap` saying exactly which were lost; each say
published once. ``python -m asgi_chat.client URL --user NAME --room ROOM`` is a terminal chat
built on it. It needs the standard library and ``websockets`` only (``uvicorn[standard]``
brings it).
"""

from __future__ import annotations

from .backoff import Backoff
from .client import Client
from .errors import BadFrame, ClientError, Closed, Refused
from .events import (
    Ack,
    Disconnected,
    Error,
    Event,
    Gap,
    History,
    Joined,
    Left,
    Members,
    Message,
    Presence,
    Refreshed,
    Unknown,
    Welcome,
    parse_frame,
)
from .runner import State

__all__ = [
    "Ack",
    "Backoff",
    "BadFrame",
    "Client",
    "ClientError",
    "Closed",
    "Disconnected",
    "Error",
    "Event",
    "Gap",
    "History",
    "Joined",
    "Left",
    "Members",
    "Message",
    "Presence",
    "Refreshed",
    "Refused",
    "State",
    "Unknown",
    "Welcome",
    "parse_frame",
]
