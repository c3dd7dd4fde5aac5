"""``asgi-chat.v1`` on the Redis store (issue 12), through two apps in one event loop that share
one real redis-server: two ``create_app`` instances stand for two processes wherever the point is
not a process's death (tests/e2e/test_rooms_redis.py has those). Outages are real: the server is
killed and started again empty, flushed, or its pub/sub connections killed.

Every member's frames are checked against the protocol's invariant (:func:`delivered`): ``msg``
offsets strictly increase, and wherever one is not the previous plus one, the gaps just before it
name together exactly the offsets skipped. Where a test must show that something was *not* sent,
a line is said after it and must be the very next frame (:func:`next_msg_is`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis

from asgi_chat import ChatApp, Settings, create_app
from asgi_chat.engine.link_policy import Timing
from asgi_chat.engine.redis_link import RedisLink
from asgi_chat.engine.stores.redis import RedisStore
from tests.helpers import TIMEOUT, wait_until
from tests.redis_support import RedisServer
from tests.rooms_support import Frame, RoomsClient, Who, greeted, presence_of, shown, tab_of

pytestmark = pytest.mark.redis

ROOM = "lobby"
# Outages noticed and waited out in tenths of a second, as in tests/asgi/test_redis.py.
FAST = Timing(timeout=0.5, idle_ping=0.1, backoff_first=0.05, backoff_cap=0.2)
# Every process of a deployment signs guest tokens with one secret: a guest keeps its uid on any.
SECRET = "one secret for every process of the test deployment"


@asynccontextmanager
async def started(url: str, **settings: Any) -> AsyncIterator[tuple[ChatApp, RedisStore]]:
    """An app whose rooms live in the Redis at ``url`` (its tutorial chat in memory), and its store."""
    # A presence frame per change; one secret for guest tokens, as every process of a deployment has.
    config = Settings(**{"rate_per_second": 0, "presence_interval": 0, "secret": SECRET, **settings})
    store = RedisStore(RedisLink(url, FAST), config)
    app = create_app(config, store=store)
    await app.startup()
    try:
        yield app, store
    finally:
        await app.shutdown()


async def member(app: ChatApp, user: str, room: str = ROOM, **join: object) -> tuple[RoomsClient, Frame]:
    """A new connection of ``user``, joined to ``room``: it, and its ``joined`` frame."""
    client = await RoomsClient(app).open(user)
    return client, await client.join(room, **join)


async def answer(
    client: RoomsClient, text: str, room: str = ROOM, into: list[Frame] | None = None, **fields: object
) -> Frame:
    """``client`` says ``text``: its ``ack`` or ``error``; what comes before it (its own line,
    presence) is passed over, or added to ``into``."""
    await client.say(room, text, **fields)
    while (frame := await client.frame())["type"] not in ("ack", "error"):
        if into is not None:
            into.append(frame)
    return frame


async def next_msg_is(client: RoomsClient, offset: int, text: str) -> None:
    """The very next frame ``client`` gets is this line: no presence, no second announcement and
    no duplicate came before it."""
    frame = await client.frame()
    assert (frame["type"], frame.get("offset"), frame.get("text")) == ("msg", offset, text), frame


def presence(user: Who, event: str) -> Frame:
    return presence_of(ROOM, **{event: (user,)})


def reset(epoch: str, offset: int) -> Frame:
    """A ``gap`` ``reset``: the next line the member gets is ``offset + 1`` of ``epoch``."""
    return {"type": "gap", "room": ROOM, "reason": "reset", "epoch": epoch, "offset": offset}


async def read_until(client: RoomsClient, text: str) -> list[Frame]:
    """Every frame up to and including the ``msg`` of ``text``, presence frames left out."""
    frames: list[Frame] = []
    while not frames or (frames[-1]["type"], frames[-1].get("text")) != ("msg", text):
        frame = await client.frame()
        if frame["type"] != "presence":
            frames.append(frame)
    return frames


def delivered(frames: list[Frame], previous: int) -> list[int]:
    """The ``msg`` offsets in ``frames`` (one member's, in one room, after it was at ``previous``),
    once the invariant holds: strictly increasing, each jump named exactly by the gaps before it."""
    offsets: list[int] = []
    covered = previous
    for frame in frames:
        if frame["type"] == "gap":
            assert frame["reason"] in ("trimmed", "limit", "lost"), frame
            assert frame["from"] == covered + 1, (frame, covered)
            assert frame["to"] >= frame["from"], frame
            covered = frame["to"]
        else:
            assert frame["type"] == "msg", frame
            assert frame["offset"] == covered + 1, (frame, covered)
            offsets.append(frame["offset"])
            covered = frame["offset"]
    return offsets


# --- one room, two processes -----------------------------------------------------------------------


async def test_one_uid_on_two_apps_is_one_presence_announced_once(redis_server: RedisServer) -> None:
    async with started(redis_server.url) as (a, _), started(redis_server.url) as (b, _):
        talker, _ = await member(a, "talker")
        watcher_a, _ = await member(a, "watcher-a")
        watcher_b, _ = await member(b, "watcher-b")
        assert await talker.expect("presence") == presence("watcher-a", "join")
        watchers = (talker, watcher_a, watcher_b)
        for watcher in watchers[:2]:
            assert await watcher.expect("presence") == presence("watcher-b", "join")

        ada_a, ada = await greeted(a, "ada")
        joined = await ada_a.join(ROOM)
        assert joined["presence"] == ["ada", "talker", "watcher-a", "watcher-b"]  # across both apps
        for watcher in watchers:
            assert await watcher.expect("presence") == presence(ada, "join")
        ada_b = await tab_of(b, ada)  # ada's second tab (her guest token: her uid), on the other process
        joined = await ada_b.join(ROOM)
        assert joined["presence"] == ["ada", "talker", "watcher-a", "watcher-b"]
        assert shown(ada) in joined["members"]
        assert joined["count"] == 4
        assert (await answer(talker, "one"))["offset"] == 1
        for watcher in (watcher_a, watcher_b, ada_a, ada_b):
            await next_msg_is(watcher, 1, "one")  # so no second join was announced, on either app

        await ada_a.disconnect()  # one of two tabs: ada is still here, on b
        assert (await answer(talker, "two"))["offset"] == 2
        for watcher in (watcher_a, watcher_b, ada_b):
            await next_msg_is(watcher, 2, "two")  # not a leave

        await ada_b.disconnect()  # the last one
        for watcher in (watcher_a, watcher_b):
            assert await watcher.expect("presence") == presence(ada, "leave")
        assert (await answer(talker, "three"))["offset"] == 3
        for watcher in (watcher_a, watcher_b):
            await next_msg_is(watcher, 3, "three")  # announced exactly once, by one process
        _, joined = await member(b, "late")
        assert joined["presence"] == ["late", "talker", "watcher-a", "watcher-b"]  # ada gone from Redis too


async def test_a_say_id_resent_to_the_other_app_gets_the_first_offset_and_no_second_msg(
    redis_server: RedisServer,
) -> None:
    async with started(redis_server.url) as (a, _), started(redis_server.url) as (b, _):
        watcher_a, _ = await member(a, "watcher-a")
        watcher_b, _ = await member(b, "watcher-b")
        ada_a, ada = await greeted(a, "ada")
        await ada_a.join(ROOM)
        ada_b = await tab_of(b, ada)  # the tab that resends (her uid): its first connection went elsewhere
        await ada_b.join(ROOM)
        assert await answer(ada_a, "did it arrive?", id="k") == {"type": "ack", "room": ROOM, "offset": 1, "id": "k"}
        assert await answer(ada_b, "did it arrive?", id="k") == {"type": "ack", "room": ROOM, "offset": 1, "id": "k"}
        assert (await answer(ada_b, "next", id="k2"))["offset"] == 2
        for watcher in (watcher_a, watcher_b):
            await read_until(watcher, "did it arrive?")
            await next_msg_is(watcher, 2, "next")  # the resend published nothing
        bob_b, _ = await member(b, "bob")  # the id is ada's, not everyone's
        assert (await answer(bob_b, "did it arrive?", id="k"))["offset"] == 3
        other_ada, _ = await member(b, "ada")  # nor another ada's: a namesake, another uid
        assert (await answer(other_ada, "did it arrive?", id="k"))["offset"] == 4


# --- people: presence and say ids per uid, across processes ---------------------------------------


async def test_two_people_of_one_name_on_two_apps_are_two_presences_each_told_of_the_other(
    redis_server: RedisServer,
) -> None:
    async with started(redis_server.url) as (a, _), started(redis_server.url) as (b, _):
        alice_a, alice = await greeted(a, "Alice")
        alice_b, other_alice = await greeted(b, "Alice")  # another guest of the same name: another uid
        assert alice["uid"] != other_alice["uid"]
        await alice_a.join(ROOM)
        joined = await alice_b.join(ROOM)
        assert (joined["presence"], joined["count"]) == (["Alice", "Alice"], 2)
        assert sorted(joined["members"], key=lambda member: member["uid"]) == sorted(
            [shown(alice), shown(other_alice)], key=lambda member: member["uid"]
        )
        assert await alice_a.expect("presence") == presence(other_alice, "join")  # through Redis
        tab = await tab_of(b, alice)  # the first Alice's second tab, on the other app: no news
        assert (await tab.join(ROOM))["count"] == 2
        assert (await answer(alice_b, "one"))["offset"] == 1
        for member_ in (alice_a, tab):
            await next_msg_is(member_, 1, "one")
        await alice_b.disconnect()
        for member_ in (alice_a, tab):
            assert await member_.expect("presence") == presence(other_alice, "leave")
        await alice_a.disconnect()  # her other tab, on b, is still there: no leave
        _, joined = await member(a, "late")
        assert joined["members"] == [shown(alice), joined["members"][1]]  # Alice (sorted by name), late
        assert joined["presence"] == ["Alice", "late"]


async def test_msg_history_and_replay_carry_the_speakers_uid_and_guest_flag(redis_server: RedisServer) -> None:
    async with started(redis_server.url) as (a, _), started(redis_server.url) as (b, _):
        writer, who = await greeted(a, "writer")
        await writer.join(ROOM)
        reader, _ = await member(b, "reader")
        await writer.say(ROOM, "hello", id="k")
        before, _ = await writer.until("ack")
        (echo,) = [frame for frame in before if frame["type"] == "msg"]  # after the reader's presence
        (live,) = [frame for frame in await read_until(reader, "hello") if frame["type"] == "msg"]
        assert live == echo
        assert (echo["user"], echo["uid"], echo["guest"]) == ("writer", who["uid"], who["guest"])
        assert list(echo) == ["type", "room", "offset", "ts", "user", "uid", "guest", "text", "id"]
        late, _ = await member(b, "late", history=5)  # the replay, read from the stream
        assert await late.frame() == echo
        await late.request("history", room=ROOM, before=2, limit=5)
        assert (await late.expect("history"))["messages"] == [echo]


# --- Redis loses everything ------------------------------------------------------------------------


async def test_after_flushall_resuming_is_a_reset_and_members_get_reset_before_the_new_epoch(
    redis_server: RedisServer,
) -> None:
    async with started(redis_server.url) as (a, _), started(redis_server.url) as (b, _):
        writer, joined = await member(a, "writer")
        old = joined["epoch"]
        reader, joined = await member(b, "reader")
        assert joined["epoch"] == old
        for n in (1, 2, 3):
            assert (await answer(writer, f"line {n}"))["offset"] == n
        assert delivered(await read_until(reader, "line 3"), 0) == [1, 2, 3]
        await reader.disconnect()

        async with Redis.from_url(redis_server.url) as admin:
            await admin.flushall()
        again, joined = await member(b, "reader", since={"epoch": old, "offset": 3})
        new = joined["epoch"]
        assert new != old
        assert joined["offset"] == 0
        assert await again.frame() == reset(new, 0)  # the position belongs to a history that is gone
        await writer.say(ROOM, "new 1")
        frames, ack = await writer.until("ack")  # its own line comes before its ack
        assert ack["offset"] == 1
        await next_msg_is(again, 1, "new 1")
        # The writer stayed joined through the flush: told before the first line of the new epoch.
        frames = [frame for frame in frames if frame["type"] != "presence"]
        assert frames == [reset(new, 0), frames[1]], frames  # live: the new epoch follows from 1
        assert (frames[1]["type"], frames[1]["text"]) == ("msg", "new 1")


async def test_a_live_reset_says_where_the_new_epoch_starts_and_a_resume_from_there_misses_nothing(
    redis_server: RedisServer,
) -> None:
    # A member that joined at top 5 and stayed through the flush: its joined frame's top says
    # nothing of the new epoch, whose lines start again at 1. The reset's offset does: a client
    # that takes its position from it (then from each line) resumes exactly; one that kept 5
    # would have skipped the new epoch's lines 3 to 5 without a gap.
    async with started(redis_server.url) as (a, _), started(redis_server.url) as (b, _):
        writer, _ = await member(a, "writer")
        for n in range(1, 6):
            assert (await answer(writer, f"old {n}"))["offset"] == n
        reader, joined = await member(b, "reader")
        old = joined["epoch"]
        assert joined["offset"] == 5

        async with Redis.from_url(redis_server.url) as admin:
            await admin.flushall()
        for n in (1, 2):
            assert (await answer(writer, f"new {n}"))["offset"] == n
        frames = await read_until(reader, "new 2")
        new = frames[0]["epoch"]
        assert new != old
        assert frames[0] == reset(new, 0), frames  # the next line is 1 of the new epoch
        position = frames[0]["offset"]
        assert delivered(frames[1:], position) == [1, 2]  # from the reset's offset on, each line once

        await reader.disconnect()
        for n in (3, 4, 5):
            assert (await answer(writer, f"new {n}"))["offset"] == n
        again, joined = await member(b, "reader", since={"epoch": new, "offset": 2})
        assert (joined["epoch"], joined["offset"]) == (new, 5)
        assert delivered(await read_until(again, "new 5"), 2) == [3, 4, 5]  # what it missed, once

        # A position from before the flush, resumed now: a reset in the join's replay, whose
        # offset is the top (5), the same on this store as on the memory store: live lines only.
        late, joined = await member(a, "late", since={"epoch": old, "offset": 5})
        assert (joined["epoch"], joined["offset"]) == (new, 5)
        assert await late.frame() == reset(new, 5)
        assert (await answer(writer, "new 6"))["offset"] == 6
        await next_msg_is(late, 6, "new 6")


async def test_redis_down_say_and_join_are_unavailable_then_back_empty_members_get_reset(
    redis_server: RedisServer,
) -> None:
    async with started(redis_server.url) as (a, store_a), started(redis_server.url) as (b, store_b):
        writer, joined = await member(a, "writer")
        old = joined["epoch"]
        reader, _ = await member(b, "reader")
        assert (await answer(writer, "before"))["offset"] == 1
        await read_until(reader, "before")

        redis_server.kill()
        # Not a silent drop: the line cannot be numbered, and its sender is told so at once.
        failed = await answer(writer, "during", id="d")
        assert (failed["type"], failed["code"], failed["id"]) == ("error", "unavailable", "d")
        newcomer = await RoomsClient(a).open("newcomer")
        await newcomer.request("join", room=ROOM, id="j")
        assert (await newcomer.expect("error"))["code"] == "unavailable"
        await writer.request("join", room="elsewhere", id="j2")  # a room no member here serves yet
        assert (await writer.expect("error"))["code"] == "unavailable"
        await newcomer.request("say", room=ROOM, text="x")  # the failed join left it outside the room
        assert (await newcomer.expect("error"))["code"] == "not_joined"
        await wait_until(lambda: not store_a.healthy and not store_b.healthy)

        loop = asyncio.get_running_loop()
        restarted = loop.time()
        redis_server.start()  # empty: the tests' Redis keeps nothing on disk
        passed: list[Frame] = []  # what the writer gets before its ack: its own line comes first
        reply = await answer(writer, "after", id="a", into=passed)
        while reply["type"] == "error":  # members stayed connected, and retry
            assert reply["code"] == "unavailable", reply
            await wait_until(lambda: store_a.healthy)
            reply = await answer(writer, "after", id="a", into=passed)
        assert (reply["type"], reply["offset"]) == ("ack", 1)  # offset 1 of a new epoch
        assert loop.time() - restarted < TIMEOUT
        resets: list[Frame] = []
        for frames in ([frame for frame in passed if frame["type"] != "presence"], await read_until(reader, "after")):
            assert [frame["type"] for frame in frames] == ["gap", "msg"], frames  # nothing of "during"
            assert (frames[0]["reason"], frames[0]["offset"]) == ("reset", 0), frames
            assert frames[0]["epoch"] != old, frames
            resets.append(frames[0])
        assert resets[0] == resets[1]
        _, joined = await member(b, "late")
        assert joined["epoch"] == resets[0]["epoch"]  # the epoch now in force


# --- the pub/sub connection drops mid-burst --------------------------------------------------------

BURST = 300
CUT_AT = 50  # the line after whose ack the pub/sub connections are killed
A_USER = "redis://a:pw@"  # process a's own ACL user, for a test to cut off a alone


async def burst_with_a_pubsub_kill(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, cut: str = "connect", **settings: Any
) -> tuple[list[Frame], int]:
    """Process a has a reader, process b a sender that says BURST lines, all queued at once. After
    line CUT_AT, mid-burst, Redis kills every pub/sub connection, and a is kept from catching up
    until the burst is over: with ``cut="connect"`` it cannot connect at all (so what it missed
    can only come from the stream, when it is back), with ``cut="read"`` it resubscribes at once
    but may not read the room (every catch-up and hole fill it tries fails). The reader's frames
    up to the last line, and the first offset the stream still holds."""
    caplog.set_level(logging.WARNING, "asgi_chat")
    async with Redis.from_url(redis_server.url) as admin:
        await admin.acl_setuser("a", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"], commands=["+@all"])
        async with (
            started(redis_server.url.replace("redis://", A_USER), **settings) as (a, store_a),
            started(redis_server.url, **settings) as (b, _),
        ):
            reader, _ = await member(a, "reader")
            sender, _ = await member(b, "sender")
            for n in range(1, BURST + 1):
                await sender.say(ROOM, f"line {n}", id=str(n))
            for n in range(1, BURST + 1):
                _, ack = await sender.until("ack")
                assert ack["offset"] == n
                if n == CUT_AT:
                    if cut == "connect":  # a's connections stay, a new one is refused
                        await admin.acl_setuser("a", enabled=False)
                    else:  # the scripts and XRANGE refused (NOPERM), SUBSCRIBE allowed
                        await admin.acl_setuser("a", enabled=True, commands=["-evalsha", "-eval", "-xrange"])
                    assert await admin.client_kill_filter(_type="pubsub") == 2
                    await wait_until(lambda: not store_a.healthy)
            if cut == "connect":
                assert not store_a.healthy  # still cut off: a heard nothing of the rest of the burst
            else:  # a came back (and tried to catch up) after the burst: its catch-up failed
                await wait_until(lambda: came_up(caplog, A_USER) >= 1)
                await admin.acl_setuser("a", enabled=True, commands=["+@all"])
            await admin.acl_setuser("a", enabled=True)
            frames = await read_until(reader, f"line {BURST}")  # nothing said since: a caught up by itself
            first = await oldest_offset(admin)
            assert (await answer(sender, "live again"))["offset"] == BURST + 1
            await next_msg_is(reader, BURST + 1, "live again")
            return frames, first


async def oldest_offset(admin: Redis) -> int:
    """The first offset the room's stream still holds (engine/stores/lua.py lists the keys)."""
    entries: Any = await admin.xrange(f"asgi_chat:db0:room:{ROOM}:stream", count=1)
    return int(entries[0][0].split(b"-")[0])


def came_up(caplog: pytest.LogCaptureFixture, user: str) -> int:
    """How many times the link whose URL starts with ``user`` logged that Redis was back."""
    shown = user.replace(":pw@", ":***@")
    return sum(record.getMessage().startswith(f"Redis up again at {shown}") for record in caplog.records)


async def test_a_pubsub_drop_mid_burst_is_filled_from_the_stream_without_a_hole(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    frames, _ = await burst_with_a_pubsub_kill(redis_server, caplog)
    assert delivered(frames, 0) == list(range(1, BURST + 1))  # no hole, no duplicate
    assert [frame["text"] for frame in frames] == [f"line {n}" for n in range(1, BURST + 1)]


async def test_a_catch_up_that_fails_is_tried_again_not_given_up_or_called_lost(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    frames, _ = await burst_with_a_pubsub_kill(redis_server, caplog, cut="read")
    assert delivered(frames, 0) == list(range(1, BURST + 1))  # every line retained: no gap "lost"


async def test_a_pubsub_drop_the_stream_cannot_fill_is_a_lost_gap_with_exact_bounds(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # MAXLEN ~ 10 trims whole stream nodes (100 entries by default): at least 10 are kept, and
    # the stream's first entry after the burst says exactly where what is kept begins.
    frames, first = await burst_with_a_pubsub_kill(redis_server, caplog, history_messages=10)
    offsets = delivered(frames, 0)
    (gap,) = [frame for frame in frames if frame["type"] == "gap"]
    heard = [offset for offset in offsets if offset < gap["from"]]  # live before the drop
    assert heard == list(range(1, gap["from"]))
    assert gap == {"type": "gap", "room": ROOM, "from": heard[-1] + 1, "to": first - 1, "reason": "lost"}
    assert offsets[len(heard) :] == list(range(first, BURST + 1))  # then everything the stream held
    assert CUT_AT <= heard[-1] < first - 1 < BURST - 10


async def test_a_member_that_joined_in_the_new_epoch_gets_no_reset(redis_server: RedisServer) -> None:
    async with started(redis_server.url) as (a, _), started(redis_server.url) as (b, _):
        old_member, joined = await member(a, "old")
        old = joined["epoch"]
        writer, _ = await member(b, "writer")
        assert (await answer(writer, "line 1"))["offset"] == 1
        await read_until(old_member, "line 1")
        async with Redis.from_url(redis_server.url) as admin:
            await admin.flushall()
        fresh, joined = await member(a, "fresh", history=10)  # on the process that still serves the old epoch
        assert joined["epoch"] != old
        assert joined["offset"] == 0
        assert (await answer(writer, "new 1"))["offset"] == 1
        assert [frame["type"] for frame in await read_until(old_member, "new 1")] == ["gap", "msg"]
        await next_msg_is(fresh, 1, "new 1")  # not a reset first: it joined with the epoch now in force
