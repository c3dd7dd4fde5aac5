"""Moderation across workers: two apps sharing one redis-server stand for two processes.

A moderator on one worker acts on a user whose connections are on the other: the kick, the ban
(across a reconnect), the mute, the redaction (live, in history, in a resume) and the disconnect
must all reach them there. tests/asgi/test_rooms_moderation.py has each action on one process.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.asgi.test_rooms_moderation import person
from tests.asgi.test_rooms_redis import started
from tests.identity_support import SECRET
from tests.redis_support import RedisServer
from tests.rooms_support import Frame, RoomsClient

pytestmark = pytest.mark.redis

ROOM = "lobby"


async def until(client: RoomsClient, kind: str) -> Frame:
    """The next frame of ``kind``, passing over lines and presence (which come when they come)."""
    while (frame := await client.frame())["type"] != kind:
        # A moderator's own live "redacted" may come after its "moderated" reply, from its worker's feed.
        assert frame["type"] in ("presence", "msg", "redacted"), frame
    return frame


async def act(moderator: RoomsClient, action: str, **fields: Any) -> Frame:
    await moderator.request(action, id=f"m-{action}", **fields)
    return await until(moderator, "moderated")


async def test_every_action_reaches_the_user_on_the_other_worker(redis_server: RedisServer) -> None:
    async with (
        started(redis_server.url, jwt_secret=SECRET) as (a, _),
        started(redis_server.url, jwt_secret=SECRET) as (b, _),
    ):
        meg = await person(a, "meg", moderator=True)
        alice = await person(b, "alice")
        bob = await person(b, "bob")
        # A line each, then the redaction of alice's: live on b, and in history and a resume.
        await alice.say(ROOM, "the bad one", id="a1")
        assert (await until(alice, "ack"))["offset"] == 1
        await act(meg, "redact", room=ROOM, offset=1)
        assert await until(bob, "redacted") == {"type": "redacted", "room": ROOM, "offset": 1, "by": "meg"}
        await bob.request("history", room=ROOM, before=2, limit=5)
        assert (await until(bob, "history"))["messages"][0]["redacted"] is True

        await act(meg, "mute", room=ROOM, uid="alice", seconds=600)
        await alice.say(ROOM, "muted?")
        assert (await until(alice, "error"))["code"] == "forbidden"
        await act(meg, "unmute", room=ROOM, uid="alice")

        await act(meg, "ban", room=ROOM, uid="alice", seconds=600, reason="flooding")
        assert (await until(alice, "kicked"))["by"] == "meg"
        again = await person(a, "alice", room=None)  # another connection, on the other worker
        await again.request("join", room=ROOM)
        assert (await until(again, "error"))["code"] == "forbidden"
        await act(meg, "unban", room=ROOM, uid="alice")
        assert (await again.join(ROOM))["room"] == ROOM

        await act(meg, "disconnect", uid="bob", reason="account closed")
        while (message := await bob.ws.output())["type"] != "websocket.close":  # what was on its way
            assert message["type"] == "websocket.send", message
        assert (message["code"], message["reason"]) == (4403, "account closed")
