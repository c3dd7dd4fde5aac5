"""Clients that speak ``asgi-chat.v1``: one over ApplicationCommunicator, one over a real socket.

Both send requests as JSON objects and read frames back as dicts, with the same few verbs:
``request`` (any frame), ``hello``, ``join``, ``say``; ``frame`` (the next one), ``expect`` (the
next one, of a given type), ``until`` (read up to the first frame of a type). Every read is
bounded by the suite's one ``TIMEOUT``; none is a sleep.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from asgiref.typing import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from asgi_chat.endpoints.protocol import SUBPROTOCOL
from tests.helpers import TIMEOUT, WebSocketClient

Frame = dict[str, Any]


class AnyUid:
    """Equal to any uid, a non-empty string: a guest's is the server's choice (``guest:`` and 16
    characters), so a test that knows only a name compares its uid so. A test that knows the uid
    (a welcome's, a token's ``sub``) passes the person as shown instead."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<any uid>"


class AnyBool:
    """Equal to true or false: whether a person is a guest, where the test does not decide it."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, bool)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<any bool>"


Who = str | Mapping[str, Any]  # a name (any uid, guest or not), or a person as shown


def shown(who: Who) -> dict[str, Any]:
    """A person as frames show them (``{"uid", "user", "guest"}``): given whole, or by name only."""
    if isinstance(who, str):
        return {"uid": AnyUid(), "user": who, "guest": AnyBool()}
    return {"uid": who["uid"], "user": who["user"], "guest": who["guest"]}


def presence_of(room: str, join: tuple[Who, ...] = (), leave: tuple[Who, ...] = ()) -> Frame:
    """A batched ``presence`` frame: who joined and who left ``room`` in one window, each a name
    (compared with any uid) or a person as shown (a welcome frame will do: its ``uid``, ``user``
    and ``guest``)."""
    return {
        "type": "presence",
        "room": room,
        "join": [shown(who) for who in join],
        "leave": [shown(who) for who in leave],
    }


class Frames:
    """The protocol's verbs over any transport: subclasses move text, this turns it into frames."""

    def __init__(self) -> None:
        self.epochs: dict[str, str] = {}  # room -> the epoch its last joined frame gave

    async def send_text(self, text: str) -> None:
        raise NotImplementedError

    async def receive_text(self) -> str:
        raise NotImplementedError

    async def request(self, kind: str, **fields: object) -> None:
        await self.send_text(json.dumps({"type": kind, **fields}, ensure_ascii=False))

    async def frame(self) -> Frame:
        frame = json.loads(await self.receive_text())
        assert isinstance(frame, dict), frame
        return frame

    async def frames(self, count: int) -> list[Frame]:
        return [await self.frame() for _ in range(count)]

    async def expect(self, kind: str) -> Frame:
        frame = await self.frame()
        assert frame["type"] == kind, f"expected a {kind} frame, got {frame}"
        return frame

    async def until(self, kind: str) -> tuple[list[Frame], Frame]:
        """The frames before the first one of type ``kind``, and that one."""
        before: list[Frame] = []
        while (frame := await self.frame())["type"] != kind:
            before.append(frame)
        return before, frame

    async def hello(self, user: str) -> Frame:
        await self.request("hello", user=user)
        return await self.expect("welcome")

    async def join(self, room: str, **fields: object) -> Frame:
        """Join ``room`` (``since=...``, ``history=...``); the ``joined`` frame."""
        await self.request("join", room=room, **fields)
        joined = await self.expect("joined")
        self.epochs[room] = joined["epoch"]
        return joined

    async def say(self, room: str, text: str, **fields: object) -> None:
        await self.request("say", room=room, text=text, **fields)


class RoomsClient(Frames):
    """``/chat/ws`` through the app, over the suite's fake server (``tests.helpers.WebSocketClient``).

    :meth:`stop_reading`: every later ``websocket.send`` of the app to this client never returns
    (a tab whose TCP buffers are full), while a close still comes through. ``paused_sends = N``:
    each of the next N sends first waits one turn of the event loop, as a real server's send does
    while the connection's write buffer is above its high-water mark (uvicorn: ``await
    self.writable.wait()``): the client is reading, its buffer is only full for a moment.
    """

    def __init__(self, app: ASGI3Application, subprotocols: tuple[str, ...] = (SUBPROTOCOL,), **scope: Any) -> None:
        super().__init__()
        self.paused_sends = 0
        self.ws = WebSocketClient(self._pausable(app), "/chat/ws", subprotocols=subprotocols, **scope)

    def _pausable(self, app: ASGI3Application) -> ASGI3Application:
        async def pausable(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
            async def send_or_pause(message: ASGISendEvent) -> None:
                if message["type"] == "websocket.send" and self.paused_sends > 0:
                    self.paused_sends -= 1
                    await asyncio.sleep(0)  # the buffer drains: room again at the next turn of the loop
                await send(message)

            await app(scope, receive, send_or_pause)

        return pausable

    def stop_reading(self) -> None:
        self.ws.mode = "block"

    async def open(self, user: str | None = None) -> RoomsClient:
        """Connect and be accepted with exactly ``asgi-chat.v1``; then say hello as ``user``."""
        answer = await self.ws.connect()
        assert answer == {"type": "websocket.accept", "subprotocol": SUBPROTOCOL, "headers": []}, answer
        if user is not None:
            await self.hello(user)
        return self

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def receive_text(self) -> str:
        return await self.ws.receive()

    async def closed(self) -> tuple[int, str]:
        """The app's close (code, reason), and the app's end."""
        close = await self.ws.receive_close()
        await self.ws.finished()
        return close

    async def nothing(self) -> bool:
        """A silence window (see WebSocketClient.nothing): only where there is no event to wait on."""
        return await self.ws.nothing()

    async def disconnect(self, code: int = 1000) -> None:
        await self.ws.disconnect(code)


async def opened(app: ASGI3Application, *users: str) -> list[RoomsClient]:
    """One connection per user, each accepted and past hello."""
    return [await RoomsClient(app).open(user) for user in users]


async def greeted(app: ASGI3Application, user: str) -> tuple[RoomsClient, Frame]:
    """A connection past hello as ``user`` (a guest: the server picks its uid), and its welcome."""
    client = await RoomsClient(app).open()
    return client, await client.hello(user)


async def tab_of(app: ASGI3Application, welcome: Frame) -> RoomsClient:
    """Another connection of the person ``welcome`` greeted (a second tab, a reconnect): a guest
    presents the token its welcome gave, and keeps its uid."""
    client = await RoomsClient(app).open()
    await client.request("hello", user=welcome["user"], token=welcome["token"])
    assert (await client.expect("welcome"))["uid"] == welcome["uid"]
    return client


class WireRoomsClient(Frames):
    """``/chat/ws`` on a real server, through a real ``websockets`` client."""

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__()
        self.ws = ws

    @classmethod
    async def connect(cls, url: str, user: str | None = None) -> WireRoomsClient:
        ws = await connect(f"{url}/chat/ws", subprotocols=[Subprotocol(SUBPROTOCOL)], open_timeout=TIMEOUT)
        assert ws.subprotocol == SUBPROTOCOL
        client = cls(ws)
        if user is not None:
            await client.hello(user)
        return client

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def receive_text(self) -> str:
        message = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        assert isinstance(message, str), message
        return message

    def kill(self) -> None:
        """Drop the TCP connection without a close frame: a lost connection, as the server sees it."""
        self.ws.transport.abort()

    async def close(self) -> None:
        await self.ws.close()

    async def closed(self) -> tuple[int | None, str | None]:
        """Wait for the server's close: (code, reason) as received (None: no close frame)."""
        try:
            message = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        except ConnectionClosed as closing:
            received = closing.rcvd
            return (received.code, received.reason) if received else (None, None)
        raise AssertionError(f"expected a close, got a message: {message!r}")
