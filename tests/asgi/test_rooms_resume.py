"""``/chat/ws`` through the app: resume (exact, trimmed, limited, reset), the store's clock (dedup
and idle rooms), and a slow consumer resuming after its 1013."""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest

from asgi_chat import ChatApp, Settings, create_app
from asgi_chat.engine import frames
from asgi_chat.engine.people import Person
from asgi_chat.engine.stores.memory import OVERHEAD, MemoryStore
from tests.asgi.rooms_helpers import ROOM, in_room, lines, next_is_live, rooms_app, say_lines
from tests.rooms_support import Frame, RoomsClient, greeted, opened, presence_of

# --- resume ------------------------------------------------------------------------------------------


async def test_resume_after_a_lost_connection_replays_exactly_what_was_missed() -> None:
    app = rooms_app()
    writer, reader = await in_room(app, "writer", "reader")
    epoch = reader.epochs[ROOM]
    assert epoch == writer.epochs[ROOM]
    said = await say_lines(writer, lines(1, 3))
    assert await reader.frames(3) == said
    await reader.disconnect(1006)
    await writer.expect("presence")
    said += await say_lines(writer, lines(4, 7))
    (again,) = await opened(app, "reader")
    joined = await again.join(ROOM, since={"epoch": epoch, "offset": 3})
    assert (joined["epoch"], joined["offset"]) == (epoch, 7)
    assert await again.frames(4) == said[3:]  # 4 to 7, each once, in order, no gap
    await writer.expect("presence")
    await next_is_live(again, writer, 8)


async def resume(
    app: ChatApp, writer: RoomsClient, since: dict[str, Any], room: str = ROOM
) -> tuple[Frame, RoomsClient]:
    """A new connection of "reader" that joins ``room`` with ``since``: its ``joined``, and it."""
    (reader,) = await opened(app, "reader")
    joined = await reader.join(room, since=since)
    assert await writer.expect("presence") == presence_of(room, join=("reader",))
    return joined, reader


def gap(first: int, last: int, reason: str) -> Frame:
    return {"type": "gap", "room": ROOM, "from": first, "to": last, "reason": reason}


@pytest.mark.parametrize(
    ("settings", "since", "expected"),
    [
        # Everything retained: exactly (since, top].
        ({}, 0, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        ({}, 6, [7, 8, 9, 10]),
        ({}, 10, []),  # at the top: nothing missed
        # history_messages=4 keeps 7 to 10: what is gone is one trimmed gap, with exact bounds.
        ({"history_messages": 4}, 1, [gap(2, 6, "trimmed"), 7, 8, 9, 10]),
        ({"history_messages": 4}, 0, [gap(1, 6, "trimmed"), 7, 8, 9, 10]),
        ({"history_messages": 4}, 5, [gap(6, 6, "trimmed"), 7, 8, 9, 10]),
        ({"history_messages": 4}, 6, [7, 8, 9, 10]),  # just retained: no gap
        # replay_max=3: more than 3 to replay skips the oldest part, announced as a limit gap.
        ({"replay_max": 3}, 1, [gap(2, 7, "limit"), 8, 9, 10]),
        ({"replay_max": 3}, 7, [8, 9, 10]),
        ({"replay_max": 3}, 6, [gap(7, 7, "limit"), 8, 9, 10]),
        # Both: the trimmed part first, then the limit part, then the newest 2.
        ({"history_messages": 5, "replay_max": 2}, 1, [gap(2, 5, "trimmed"), gap(6, 8, "limit"), 9, 10]),
    ],
)
async def test_resume_replays_what_is_missed_or_says_exactly_what_is_not(
    settings: dict[str, Any], since: int, expected: list[int | Frame]
) -> None:
    app = rooms_app(**settings)
    (writer,) = await in_room(app, "writer")
    said = await say_lines(writer, lines(1, 10))
    joined, reader = await resume(app, writer, {"epoch": writer.epochs[ROOM], "offset": since})
    assert (joined["epoch"], joined["offset"], joined["presence"]) == (writer.epochs[ROOM], 10, ["reader", "writer"])
    frames = await reader.frames(len(expected))
    assert frames == [item if isinstance(item, dict) else said[item - 1] for item in expected]
    await next_is_live(reader, writer, 11)


@pytest.mark.parametrize(
    "since",
    [
        {"epoch": "not-this-rooms", "offset": 3},  # another history
        {"epoch": "", "offset": 0},
        {"epoch": "same", "offset": 11},  # above the top: a position this history never had
        {"epoch": "same", "offset": 10**12},
    ],
)
async def test_resume_from_another_history_is_a_reset_then_live_only(since: dict[str, Any]) -> None:
    app = rooms_app()
    (writer,) = await in_room(app, "writer")
    epoch = writer.epochs[ROOM]
    await say_lines(writer, lines(1, 10))
    if since["epoch"] == "same":
        since = {**since, "epoch": epoch}
    joined, reader = await resume(app, writer, since)
    assert (joined["epoch"], joined["offset"]) == (epoch, 10)
    # offset: what the next line follows, the top (10), so live only
    assert await reader.frame() == {"type": "gap", "room": ROOM, "reason": "reset", "epoch": epoch, "offset": 10}
    await next_is_live(reader, writer, 11)  # nothing replayed


async def test_a_restarted_server_has_new_epochs_so_an_old_position_reads_as_reset() -> None:
    before = rooms_app()
    (writer,) = await in_room(before, "writer")
    await say_lines(writer, lines(1, 3))
    old = writer.epochs[ROOM]
    after = rooms_app()  # the memory store's restart: everything forgotten
    (writer,) = await in_room(after, "writer")
    await say_lines(writer, lines(1, 5))  # offsets 1 to 5 again, in another history
    new = writer.epochs[ROOM]
    assert new != old
    _, reader = await resume(after, writer, {"epoch": old, "offset": 3})
    assert await reader.frame() == {"type": "gap", "room": ROOM, "reason": "reset", "epoch": new, "offset": 5}
    await next_is_live(reader, writer, 6)


async def test_the_process_wide_byte_budget_trims_the_oldest_line_of_any_room() -> None:
    # Every line here has the same size: equal room name lengths, texts and ts digits, and one
    # writer, a guest (its uid: "guest:" and 16 characters of base64url).
    guest = Person("guest:" + "x" * 16, "writer", guest=True)
    size = sys.getsizeof(frames.msg(ROOM, 1, time.time_ns() // 1_000_000, guest, "line 1", None)) + OVERHEAD
    app = rooms_app(history_max_bytes=4 * size)
    writer, welcome = await greeted(app, "writer")
    assert (len(welcome["uid"]), welcome["uid"].isascii(), welcome["guest"]) == (len(guest.uid), True, True)
    await writer.join(ROOM)
    await writer.join("other")
    said = await say_lines(writer, lines(1, 3))
    said_other = await say_lines(writer, lines(1, 2), room="other")  # the fifth line: lobby's first goes
    _, reader = await resume(app, writer, {"epoch": writer.epochs[ROOM], "offset": 0})
    assert await reader.frames(3) == [gap(1, 1, "trimmed"), *said[1:]]
    await reader.join("other", since={"epoch": writer.epochs["other"], "offset": 0})
    await writer.expect("presence")
    assert await reader.frames(2) == said_other  # the newer room keeps all of its lines
    await next_is_live(reader, writer, 4)


# --- time: dedup and idle rooms, on the store's clock ------------------------------------------------


class Clock:
    """The memory store's monotonic clock, moved by hand: time passes without a sleep."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def clocked_app(clock: Clock, **settings: Any) -> ChatApp:
    config = Settings(**{"rate_per_second": 0, **settings})
    return create_app(config, store=MemoryStore(config, clock=clock))


async def test_a_say_id_is_remembered_for_dedup_seconds() -> None:
    clock = Clock()
    (ada,) = await in_room(clocked_app(clock, dedup_seconds=10), "ada")
    await ada.say(ROOM, "once", id="k")
    assert (await ada.until("ack"))[1]["offset"] == 1
    clock.now += 9.9
    await ada.say(ROOM, "once", id="k")
    assert await ada.expect("ack") == {"type": "ack", "room": ROOM, "offset": 1, "id": "k"}  # within the window
    clock.now += 0.2
    await ada.say(ROOM, "once", id="k")  # the window has passed: a new line
    frames = sorted(await ada.frames(2), key=lambda frame: str(frame["type"]))
    assert [(frame["type"], frame["offset"]) for frame in frames] == [("ack", 2), ("msg", 2)]


async def test_an_idle_empty_room_is_forgotten_so_a_position_in_it_reads_as_reset() -> None:
    clock = Clock()
    app = clocked_app(clock, room_idle_seconds=100)
    (ada,) = await opened(app, "ada")
    old = (await ada.join("old"))["epoch"]
    await say_lines(ada, lines(1, 3), room="old")
    await ada.request("leave", room="old")
    await ada.until("left")
    clock.now += 101  # "old" has been empty and silent for 101 s
    await ada.join("other")  # entering any room forgets the idle ones: "old" has gone
    joined = await ada.join("old", since={"epoch": old, "offset": 3})
    assert (joined["offset"], joined["epoch"] != old) == (0, True)  # a new room, a new history
    reset = {"type": "gap", "room": "old", "reason": "reset", "epoch": joined["epoch"], "offset": 0}
    assert await ada.frame() == reset


async def test_an_idle_empty_room_joined_again_is_a_new_room() -> None:
    clock = Clock()
    (ada,) = await opened(clocked_app(clock, room_idle_seconds=100), "ada")
    old = (await ada.join("old"))["epoch"]
    await say_lines(ada, lines(1, 3), room="old")
    await ada.request("leave", room="old")
    await ada.until("left")
    clock.now += 101  # empty and silent for longer than room_idle_seconds: forgotten
    joined = await ada.join("old", since={"epoch": old, "offset": 3})
    assert (joined["offset"], joined["epoch"] != old) == (0, True)


# --- a slow consumer ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "burst"),
    [
        ({"outbox_max_messages": 4, "send_timeout": 0}, 20),  # its outbox overflows
        ({"send_timeout": 0.2}, 3),  # one send stays blocked too long (the watchdog)
    ],
)
async def test_a_slow_consumer_is_dropped_with_1013_and_resuming_recovers_everything_once(
    limits: dict[str, Any], burst: int
) -> None:
    app = rooms_app(**limits)
    talker, slow = await in_room(app, "talker", "slow")
    said = await say_lines(talker, lines(1, 3))
    assert await slow.frames(3) == said
    slow.stop_reading()  # a frozen tab: from now on every send to it blocks
    others: list[Frame] = []
    said += await say_lines(talker, lines(4, 3 + burst), others=others)  # the talker is never held up
    code, reason = await slow.closed()  # at the overflow, or within the send timeout
    assert code == 1013
    assert reason.startswith("slow consumer: ")
    if not others:  # the watchdog's drop comes after the burst
        others.append(await talker.expect("presence"))
    assert others == [presence_of(ROOM, leave=("slow",))]
    assert app.ctx.metrics.slow_consumer_disconnects == 1
    top = 3 + burst
    joined, back = await resume(app, talker, {"epoch": slow.epochs[ROOM], "offset": 3})  # its last offset
    assert joined["offset"] == top
    assert await back.frames(burst) == said[3:]  # what its discarded outbox held, and the rest: once each
    await next_is_live(back, talker, top + 1)
