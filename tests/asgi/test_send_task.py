"""A server's ``send`` runs start to finish in one task, whatever it relies on that task for.

A server may bound a send's wait for room with ``asyncio.timeout()`` or an anyio cancel scope,
both of which cancel ``asyncio.current_task()`` when the time is up, or simply expect the task
that entered its ``send`` to be the one that leaves it. Each test below serves three members of
a chat (the tutorial's on ``/ws/{id}``, then an ``asgi-chat.v1`` room on ``/chat/ws``) with such
a ``send`` and stalls one of them, so that a line's fan-out meets a send that has to wait. Were
that send started in one task (the one running the fan-out: the hub's listener, or the sender's
reader) and finished in another, the timeout would cancel the wrong task: the chat goes silent
for everyone, and the stalled member is never let go.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import anyio
import pytest
from asgiref.typing import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope

from asgi_chat import ChatApp, Settings, create_app
from tests.helpers import TIMEOUT, WebSocketClient
from tests.rooms_support import RoomsClient, presence_of

Style = Literal["asyncio.timeout", "same task", "anyio cancel scope"]
STYLES: tuple[Style, ...] = ("asyncio.timeout", "same task", "anyio cancel scope")
GIVE_UP = 0.2  # seconds a timing-out send waits for room before it fails (the peer is gone, as the app sees it)
ROOM = "lobby"


class TaskBoundSend:
    """One connection's ``send`` as such a server has it: while ``stalled``, each data send waits
    until ``room`` is set, in the given ``style``:

    - ``asyncio.timeout``: within ``asyncio.timeout(GIVE_UP)``; then TimeoutError, an OSError;
    - ``anyio cancel scope``: within ``anyio.fail_after(GIVE_UP)``, the same with anyio;
    - ``same task``: for as long as it takes, and notes in ``strays`` a send that ends in
      another task than the one it began in.
    """

    def __init__(self, style: Style) -> None:
        self.style = style
        self.stalled = False
        self.room = asyncio.Event()
        self.strays: list[str] = []

    def serve(self, app: ASGI3Application) -> ASGI3Application:
        async def served(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
            async def task_bound_send(message: ASGISendEvent) -> None:
                if message["type"] == "websocket.send" and self.stalled:
                    await self._wait_for_room(message)
                await send(message)

            await app(scope, receive, task_bound_send)

        return served

    async def _wait_for_room(self, message: ASGISendEvent) -> None:
        if self.style == "asyncio.timeout":
            async with asyncio.timeout(GIVE_UP):
                await self.room.wait()
        elif self.style == "anyio cancel scope":
            with anyio.fail_after(GIVE_UP):
                await self.room.wait()
        else:
            began = asyncio.current_task()
            await self.room.wait()
            if asyncio.current_task() is not began:
                self.strays.append(f"{message} began in {began} and ended in {asyncio.current_task()}")


def chat_app() -> ChatApp:
    return create_app(Settings(rate_per_second=0, presence_interval=0))  # a presence frame per change


@pytest.mark.parametrize("style", STYLES)
async def test_the_tutorial_chat_with_a_stalled_member_on_a_task_bound_send(style: Style) -> None:
    app = chat_app()
    sends = [TaskBoundSend(style) for _ in range(3)]
    talker, stalled, other = (WebSocketClient(s.serve(app), f"/ws/{n}") for n, s in enumerate(sends, 1))
    for client in (talker, stalled, other):
        await client.accept()
    sends[1].stalled = True

    await talker.send("one")  # its fan-out meets #2's send, which has to wait
    assert await talker.receive_many(2) == ["You wrote: one", "Client #1 says: one"]
    assert await other.receive_many(1) == ["Client #1 says: one"]
    if style == "same task":
        sends[1].room.set()  # room again: the waiting send finishes, in the task it began in
        assert await stalled.receive_many(1) == ["Client #1 says: one"]
    else:
        await stalled.finished()  # its send gave up: to the app, #2 is gone
        assert await talker.receive_many(1) == ["Client #2 left the chat"]
        assert await other.receive_many(1) == ["Client #2 left the chat"]

    await talker.send("two")  # the chat goes on
    assert await talker.receive_many(2) == ["You wrote: two", "Client #1 says: two"]
    assert await other.receive_many(1) == ["Client #1 says: two"]
    if style == "same task":
        assert await stalled.receive_many(1) == ["Client #1 says: two"]
    assert sends[1].strays == []
    for client in (talker, stalled, other):
        client.leave()
    for client in (talker, stalled, other):
        await client.finished()


@pytest.mark.parametrize("style", STYLES)
async def test_a_room_with_a_stalled_member_on_a_task_bound_send(style: Style) -> None:
    app = chat_app()
    sends = [TaskBoundSend(style) for _ in range(3)]
    talker, stalled, other = [RoomsClient(s.serve(app)) for s in sends]
    for client, user in zip((talker, stalled, other), ("ada", "bob", "cy"), strict=True):
        await client.open(user)
        await client.join(ROOM)
    await talker.frames(2)  # bob's and cy's presence
    await stalled.frames(1)  # cy's
    sends[1].stalled = True

    await talker.say(ROOM, "one")  # its fan-out meets bob's send, which has to wait
    assert [frame["type"] for frame in await talker.frames(2)] == ["msg", "ack"]
    assert (await other.expect("msg"))["text"] == "one"
    if style == "same task":
        sends[1].room.set()  # room again: the waiting send finishes, in the task it began in
        assert (await stalled.expect("msg"))["text"] == "one"
    else:
        await stalled.ws.finished()  # its send gave up: to the app, bob is gone
        for client in (talker, other):
            assert await client.expect("presence") == presence_of(ROOM, leave=("bob",))

    await talker.say(ROOM, "two")  # the room goes on
    assert [frame["type"] for frame in await talker.frames(2)] == ["msg", "ack"]
    assert (await other.expect("msg"))["text"] == "two"
    if style == "same task":
        assert (await stalled.expect("msg"))["text"] == "two"
    assert sends[1].strays == []
    for client in (talker, stalled, other):
        client.ws.leave()
    for client in (talker, stalled, other):
        await asyncio.wait_for(client.ws.finished(), TIMEOUT)
