"""What the ``/chat/ws`` tests through the app share: an app, members in a room, lines said."""

from __future__ import annotations

from typing import Any

from asgi_chat import ChatApp, Settings, create_app
from tests.rooms_support import Frame, RoomsClient, opened, presence_of

ROOM = "lobby"


def rooms_app(**settings: Any) -> ChatApp:
    """An app of its own; no rate limit nor output budget unless a test asks for one (tests send
    and replay in bursts), and presence sent at once, one frame per change, unless a test asks
    for a window."""
    unlimited = {"rate_per_second": 0, "output_bytes_per_second": 0, "address_output_bytes_per_second": 0}
    return create_app(Settings(**{**unlimited, "presence_interval": 0, **settings}))


async def in_room(app: ChatApp, *users: str, room: str = ROOM) -> list[RoomsClient]:
    """One connection per user, each joined to ``room`` live only, in order; every presence
    event the earlier ones got for the later ones read."""
    clients = await opened(app, *users)
    for n, client in enumerate(clients):
        await client.join(room)
        for earlier in clients[:n]:
            assert await earlier.expect("presence") == presence_of(room, join=(users[n],))
    return clients


async def say_lines(
    client: RoomsClient, texts: list[str], room: str = ROOM, others: list[Frame] | None = None
) -> list[Frame]:
    """``client`` (a member of ``room``) says each line in turn; the ``msg`` frames it got back.

    Any other frame that comes meanwhile goes to ``others``; without ``others``, none may come.
    """
    echoes: list[Frame] = []
    for text in texts:
        await client.say(room, text)
        before, _ = await client.until("ack")
        echoes += [frame for frame in before if frame["type"] == "msg"]
        rest = [frame for frame in before if frame["type"] != "msg"]
        if others is None:
            assert not rest, rest
        else:
            others.extend(rest)
    return echoes


def lines(first: int, last: int) -> list[str]:
    return [f"line {n}" for n in range(first, last + 1)]


def offsets(frames: list[Frame]) -> list[int]:
    assert all(frame["type"] == "msg" for frame in frames), frames
    return [frame["offset"] for frame in frames]


async def next_is_live(reader: RoomsClient, writer: RoomsClient, offset: int, room: str = ROOM) -> None:
    """Nothing else is on its way to ``reader``: a line said now is its very next frame."""
    await writer.say(room, "live")
    if reader is writer:  # its line and the ack, in either order
        frames = sorted(await reader.frames(2), key=lambda frame: str(frame["type"]))
        assert [frame["type"] for frame in frames] == ["ack", "msg"], frames
        frame = frames[1]
    else:
        await writer.until("ack")
        frame = await reader.frame()
    assert (frame["type"], frame["offset"], frame["text"]) == ("msg", offset, "live"), frame


async def error_of(client: RoomsClient, **request: Any) -> Frame:
    await client.request(**request)
    return await client.expect("error")


async def still_open(client: RoomsClient, room: str = ROOM) -> Frame:
    """The connection works on: a line said in ``room`` comes back (its ``msg``)."""
    await client.say(room, "still here")
    (echo,), _ = await client.until("ack")
    assert echo["text"] == "still here"
    return echo
