"""``/chat/ws`` through the app: presence, say (delivery and dedup) and history.

Where a test must show that something was *not* sent, it sends a line after it and checks that
this line is the next frame: an event to wait on, rather than a silence to wait out.
"""

from __future__ import annotations

import time

import pytest

from tests.asgi.rooms_helpers import ROOM, in_room, lines, next_is_live, offsets, rooms_app, say_lines
from tests.rooms_support import Frame, RoomsClient, greeted, opened, presence_of, shown, tab_of

# --- presence --------------------------------------------------------------------------------------


async def test_presence_counts_users_not_connections() -> None:
    app = rooms_app()
    (zed,) = await opened(app, "zed")
    amy_1, amy = await greeted(app, "amy")
    amy_2 = await tab_of(app, amy)  # amy's second tab: her guest token, her uid
    first = await zed.join(ROOM)
    assert (first["offset"], first["presence"]) == (0, ["zed"])  # a new room: no message, the joiner present
    assert (await amy_1.join(ROOM))["presence"] == ["amy", "zed"]  # sorted, the joiner included
    assert await zed.expect("presence") == presence_of(ROOM, join=(amy,))
    joined = await amy_2.join(ROOM)
    assert (joined["presence"], joined["count"]) == (["amy", "zed"], 2)  # amy's second tab is still one amy
    assert joined["members"][0] == shown(amy)
    await next_is_live(zed, amy_2, 1)  # so zed heard no second join: its next frame is this line
    assert offsets([await amy_1.frame()]) == [1]  # nor did amy's first tab hear of a join of its own
    await amy_1.disconnect(1001)  # one tab of two closed: amy is still here
    await next_is_live(zed, amy_2, 2)  # zed's next frame is this line, not a leave
    await next_is_live(amy_2, zed, 3)
    await amy_2.disconnect(1006)  # the last tab: amy has left
    assert await zed.expect("presence") == presence_of(ROOM, leave=(amy,))
    bob = await RoomsClient(app).open("Bob")
    assert (await bob.join(ROOM))["presence"] == ["Bob", "zed"]
    await zed.expect("presence")
    await bob.request("leave", room=ROOM)  # a leave request is announced like a close
    await bob.expect("left")
    assert await zed.expect("presence") == presence_of(ROOM, leave=("Bob",))
    await next_is_live(zed, zed, 4)


async def test_a_closed_connection_leaves_every_room_it_was_in() -> None:
    app = rooms_app()
    watcher, leaver = await opened(app, "watcher", "leaver")
    for room in ("one", "two"):
        await watcher.join(room)
        await leaver.join(room)
        assert await watcher.expect("presence") == presence_of(room, join=("leaver",))
    await leaver.disconnect()
    leaves = await watcher.frames(2)
    assert sorted(frame["room"] for frame in leaves) == ["one", "two"]
    assert leaves == [presence_of(frame["room"], leave=("leaver",)) for frame in leaves]


# --- say -------------------------------------------------------------------------------------------


async def test_a_line_reaches_every_member_the_sender_included_and_no_one_else() -> None:
    app = rooms_app()
    ada, welcome = await greeted(app, "ada")
    await ada.join(ROOM)
    bob, cy = await in_room(app, "bob", "cy")
    for _ in range(2):
        await ada.expect("presence")
    (outsider,) = await in_room(app, "outsider", room="elsewhere")
    before = time.time_ns() // 1_000_000
    await ada.say(ROOM, "hello, room", id="s-1")
    frames = sorted(await ada.frames(2), key=lambda frame: str(frame["type"]))
    after = time.time_ns() // 1_000_000
    ack, msg = frames
    assert ack == {"type": "ack", "room": ROOM, "offset": 1, "id": "s-1"}
    assert msg == {
        "type": "msg",
        "room": ROOM,
        "offset": 1,
        "ts": msg["ts"],
        "user": "ada",
        "uid": welcome["uid"],  # who said it: the uid its welcome gave, and whether a guest
        "guest": welcome["guest"],
        "text": "hello, room",
        "id": "s-1",
    }
    assert type(msg["ts"]) is int  # integer milliseconds since the Unix epoch, server time
    assert before <= msg["ts"] <= after
    assert await bob.expect("msg") == msg
    assert await cy.expect("msg") == msg
    await next_is_live(outsider, outsider, 1, room="elsewhere")  # its own room's offsets, nothing of lobby's
    await bob.say(ROOM, "no id")
    assert list(await ada.expect("msg")) == ["type", "room", "offset", "ts", "user", "uid", "guest", "text"]


async def test_a_resent_say_id_is_acked_with_the_first_offset_and_not_published_again() -> None:
    app = rooms_app()
    ada, bob = await in_room(app, "ada", "bob")
    await ada.say(ROOM, "once", id="k")
    first = next(frame for frame in await ada.frames(2) if frame["type"] == "msg")
    assert (await bob.expect("msg")) == first
    await ada.say(ROOM, "once", id="k")
    assert await ada.expect("ack") == {"type": "ack", "room": ROOM, "offset": 1, "id": "k"}  # no msg before it
    await ada.say(ROOM, "a different text, the same id", id="k")  # the id decides, not the text
    assert await ada.expect("ack") == {"type": "ack", "room": ROOM, "offset": 1, "id": "k"}
    await next_is_live(bob, ada, 2)  # and neither reached bob
    await next_is_live(ada, ada, 3)


async def test_a_client_that_lost_its_connection_before_the_ack_can_resend() -> None:
    app = rooms_app()
    (bob,) = await in_room(app, "bob")
    ada, welcome = await greeted(app, "ada")
    await ada.join(ROOM)
    await bob.expect("presence")
    await ada.say(ROOM, "did it arrive?", id="k")
    await ada.disconnect(1006)  # before reading the ack
    assert (await bob.expect("msg"))["text"] == "did it arrive?"
    assert await bob.expect("presence") == presence_of(ROOM, leave=("ada",))
    again = await tab_of(app, welcome)  # the same user (her guest token: her uid), a new connection
    await again.join(ROOM)
    await bob.expect("presence")
    await again.say(ROOM, "did it arrive?", id="k")
    assert await again.expect("ack") == {"type": "ack", "room": ROOM, "offset": 1, "id": "k"}
    await next_is_live(bob, bob, 2)


async def test_a_say_id_is_one_users_in_one_room() -> None:
    app = rooms_app()
    ada, bob = await in_room(app, "ada", "bob")
    await ada.join("other")
    await bob.join("other")
    await ada.expect("presence")
    await ada.say(ROOM, "ada in lobby", id="k")
    assert (await ada.until("ack"))[1]["offset"] == 1
    await bob.say(ROOM, "bob in lobby, the same id", id="k")  # another user's id
    assert (await bob.until("ack"))[1]["offset"] == 2
    await ada.say("other", "ada in other, the same id", id="k")  # another room
    assert (await ada.until("ack"))[1]["offset"] == 1
    other = await bob.expect("msg")
    assert (other["room"], other["offset"], other["text"]) == ("other", 1, "ada in other, the same id")


# --- history -----------------------------------------------------------------------------------------


async def test_history_pages_back_through_the_room() -> None:
    app = rooms_app()
    (writer,) = await in_room(app, "writer")
    said = await say_lines(writer, lines(1, 10))
    by_offset = {frame["offset"]: frame for frame in said}

    async def page(before: int, limit: int) -> list[Frame]:
        await writer.request("history", room=ROOM, before=before, limit=limit, id="h")
        reply = await writer.expect("history")
        assert set(reply) == {"type", "room", "messages", "id"}
        assert reply["room"] == ROOM
        return list(reply["messages"])

    assert await page(11, 3) == [by_offset[n] for n in (8, 9, 10)]  # the latest 3 before 11, ascending
    assert await page(8, 3) == [by_offset[n] for n in (5, 6, 7)]  # "load earlier": before the first shown
    assert await page(5, 100) == [by_offset[n] for n in (1, 2, 3, 4)]
    assert await page(2, 1) == [by_offset[1]]
    assert await page(1, 100) == []
    assert await page(0, 1) == []
    assert await page(1000, 2) == [by_offset[9], by_offset[10]]


async def test_history_holds_only_what_is_retained() -> None:
    app = rooms_app(history_messages=4)
    (writer,) = await in_room(app, "writer")
    said = await say_lines(writer, lines(1, 10))
    await writer.request("history", room=ROOM, before=11, limit=100)
    assert (await writer.expect("history"))["messages"] == said[-4:]  # 7 to 10: the latest 4
    await writer.request("history", room=ROOM, before=9, limit=100)
    assert offsets((await writer.expect("history"))["messages"]) == [7, 8]
    await writer.request("history", room=ROOM, before=7, limit=100)
    assert (await writer.expect("history"))["messages"] == []


@pytest.mark.parametrize(
    ("history", "replayed"),
    [
        (3, [6, 7, 8]),  # the latest 3
        (0, []),
        (1, [8]),
        (100, [1, 2, 3, 4, 5, 6, 7, 8]),  # all there is
    ],
)
async def test_join_with_history_replays_the_latest_k_then_goes_live(history: int, replayed: list[int]) -> None:
    app = rooms_app()
    (writer,) = await in_room(app, "writer")
    said = await say_lines(writer, lines(1, 8))
    (reader,) = await opened(app, "reader")
    joined = await reader.join(ROOM, history=history)
    assert (joined["offset"], joined["presence"]) == (8, ["reader", "writer"])
    assert await reader.frames(len(replayed)) == [said[n - 1] for n in replayed]
    await writer.expect("presence")
    await next_is_live(reader, writer, 9)  # no gap, no repeat: straight on to the live line


async def test_join_with_history_of_a_trimmed_room_gives_what_is_retained_without_a_gap() -> None:
    app = rooms_app(history_messages=3)
    (writer,) = await in_room(app, "writer")
    await say_lines(writer, lines(1, 8))
    (reader,) = await opened(app, "reader")
    await reader.join(ROOM, history=5)
    assert offsets(await reader.frames(3)) == [6, 7, 8]
    await writer.expect("presence")
    await next_is_live(reader, writer, 9)


async def test_a_live_only_join_replays_nothing() -> None:
    app = rooms_app()
    (writer,) = await in_room(app, "writer")
    await say_lines(writer, lines(1, 5))
    (reader,) = await opened(app, "reader")
    assert (await reader.join(ROOM))["offset"] == 5
    await writer.expect("presence")
    await next_is_live(reader, writer, 6)


async def test_a_say_id_is_one_uids_a_namesake_using_it_says_a_line_of_its_own() -> None:
    """Two people called ada (two uids): the second one's say with the first one's id is
    published, not taken for the first one's (dedup is per uid: nobody pre-empts another's ids)."""
    app = rooms_app()
    first, ada = await greeted(app, "ada")
    second, other_ada = await greeted(app, "ada")
    assert other_ada["uid"] != ada["uid"]
    await first.join(ROOM)
    await second.join(ROOM)
    assert await first.expect("presence") == presence_of(ROOM, join=(other_ada,))
    await first.say(ROOM, "the first ada's line", id="k")
    assert (await first.until("ack"))[1]["offset"] == 1
    assert (await second.expect("msg"))["uid"] == ada["uid"]
    await second.say(ROOM, "the other ada's line, the same id", id="k")
    (echo,), ack = await second.until("ack")
    assert (ack["offset"], echo["offset"], echo["uid"], echo["text"]) == (
        2,
        2,
        other_ada["uid"],
        "the other ada's line, the same id",
    )
    assert (await first.expect("msg"))["uid"] == other_ada["uid"]


async def test_history_and_a_replay_say_who_said_each_line_name_uid_and_guest() -> None:
    app = rooms_app()
    writer, who = await greeted(app, "writer")
    await writer.join(ROOM)
    await writer.say(ROOM, "kept", id="k")
    (echo,), _ = await writer.until("ack")
    assert (echo["user"], echo["uid"], echo["guest"]) == ("writer", who["uid"], who["guest"])
    (reader,) = await opened(app, "reader")
    await reader.join(ROOM, history=5)
    assert await reader.frame() == echo  # the replay: the frame as it was said
    await reader.request("history", room=ROOM, before=2, limit=5)
    assert (await reader.expect("history"))["messages"] == [echo]
