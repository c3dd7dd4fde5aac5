"""The memory room store (engine/stores/memory.py, issue 11): offsets, history bounded per room and
by the process's byte budget, dedup, idle expiry, the room limit, presence, and its two reads
(``window`` for a join, ``before`` for "load earlier").

Time is a fake clock the test moves; the wall clock for ``ts`` is a constant.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import pytest

from asgi_chat import Settings
from asgi_chat.engine import frames
from asgi_chat.engine.people import Person
from asgi_chat.engine.replay import TRIMMED, Gap, Stored, plan
from asgi_chat.engine.stores import RoomLimit
from asgi_chat.engine.stores.memory import OVERHEAD, MemoryStore
from tests.store_support import Unmoderated

WALL_MS = 1_700_000_000_000


def person(name: str, uid: str | None = None, guest: bool = False) -> Person:
    """``name``'s person: uid ``u:<name>`` unless told, so that a uid never equals a name by chance."""
    return Person(f"u:{name}" if uid is None else uid, name, guest)


def people(*names: str) -> list[Person]:
    return [person(name) for name in names]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Listener(Unmoderated):
    """Everything the store tells the rooms engine, in order."""

    messages: list[tuple[str, Stored]] = field(default_factory=list)
    presences: list[tuple[str, Person, str]] = field(default_factory=list)
    others: list[tuple[Any, ...]] = field(default_factory=list)

    def message(self, room: str, stored: Stored) -> None:
        self.messages.append((room, stored))

    def presence(self, room: str, person: Person, event: str) -> None:
        self.presences.append((room, person, event))

    def gap(self, room: str, first: int, last: int, reason: str) -> None:
        self.others.append(("gap", room, first, last, reason))

    def reset(self, room: str, epoch: str, offset: int) -> None:
        self.others.append(("reset", room, epoch, offset))


async def open_store(clock: Clock | None = None, **settings: Any) -> tuple[MemoryStore, Listener]:
    counter = itertools.count(1)
    store = MemoryStore(
        Settings(**settings),
        clock=clock or Clock(),
        wall_ms=lambda: WALL_MS,
        epochs=lambda: f"epoch-{next(counter)}",
    )
    listener = Listener()
    await store.open(listener)
    return store, listener


async def retained(store: MemoryStore, room: str) -> list[int]:
    window = await store.window(room, 0, 1 << 30)
    offsets = [stored.offset for stored in window.newest]
    # what window says agrees with itself: contiguous, ending at top, starting at first
    assert offsets == list(range(window.first, window.top + 1))
    return offsets


async def say(store: MemoryStore, room: str, count: int, user: Person | None = None, text: str = "line") -> list[int]:
    who = user or person("ada")
    return [(await store.append(room, who, f"{text} {n}", None))[0] for n in range(count)]


# --- offsets and messages -----------------------------------------------------------------


async def test_offsets_count_from_1_in_each_room_independently() -> None:
    store, listener = await open_store()
    await store.enter("a", person("ada"))
    await store.enter("b", person("bob"))
    results = [
        await store.append("a", person("ada"), "1", None),
        await store.append("a", person("ada"), "2", None),
        await store.append("b", person("bob"), "3", None),
        await store.append("a", person("ada"), "4", None),
        await store.append("b", person("bob"), "5", None),
    ]
    assert results == [(1, True), (2, True), (1, True), (3, True), (2, True)]
    assert [(room, stored.offset) for room, stored in listener.messages] == [
        ("a", 1),
        ("a", 2),
        ("b", 1),
        ("a", 3),
        ("b", 2),
    ]
    assert [(window.top, window.first) for window in [await store.window(r, 0, 0) for r in "ab"]] == [(3, 1), (2, 1)]


async def test_a_message_is_its_msg_frame_encoded_once_and_published_within_append() -> None:
    store, listener = await open_store()
    await store.enter("a", person("ada"))
    await store.append("a", person("Åsa"), "héllo", "s1")
    [(room, stored)] = listener.messages
    assert room == "a"
    assert stored.frame == frames.msg("a", 1, WALL_MS, person("Åsa"), "héllo", "s1")
    assert stored.size == sys.getsizeof(stored.frame) + OVERHEAD  # what the str holds
    assert (await store.window("a", 0, 10)).newest == (stored,)
    assert (store.bytes, store.retained) == (stored.size, 1)


async def test_a_message_counts_what_its_str_holds_4_bytes_a_character_with_one_emoji() -> None:
    """CPython stores a str at 1, 2 or 4 bytes a character, by its widest: one emoji in a long
    line makes every character of the frame 4 bytes, where UTF-8 would count almost 1."""
    store, listener = await open_store()
    await store.enter("a", person("ada"))
    await store.append("a", person("ada"), "x" * 4000, None)
    await store.append("a", person("ada"), "\N{GRINNING FACE}" + "x" * 3999, None)
    plain, emoji = (stored for _, stored in listener.messages)
    assert len(plain.frame) == len(emoji.frame)
    assert len(emoji.frame.encode()) - len(plain.frame.encode()) == 3  # UTF-8: 3 bytes more, yet
    assert plain.size < len(plain.frame) + OVERHEAD + 100  # 1 byte a character, plus a header
    assert emoji.size > 4 * len(emoji.frame)  # 4 bytes a character
    assert store.bytes == plain.size + emoji.size


class StackListener(Listener):
    """A listener that notes, for each message, whether the store's ``append`` is on the stack."""

    def __init__(self) -> None:
        super().__init__()
        self.within_append: list[bool] = []

    def message(self, room: str, stored: Stored) -> None:
        frame: FrameType | None = sys._getframe()
        while frame is not None and frame.f_code is not MemoryStore.append.__code__:
            frame = frame.f_back
        self.within_append.append(frame is not None)
        super().message(room, stored)


async def test_append_hands_its_message_over_on_a_step_of_its_own_never_from_within() -> None:
    """A say travels one way: append does not call back into the engine (engine -> store ->
    engine); the listener hears the message on a step of the store's own, before append returns."""
    store, _ = await open_store()
    listener = StackListener()
    await store.open(listener)
    await store.enter("a", person("ada"))
    assert await store.append("a", person("ada"), "hello", "s1") == (1, True)
    assert [stored.offset for _, stored in listener.messages] == [1]  # heard by the time append returns
    assert await store.append("a", person("ada"), "again", None) == (2, True)
    assert listener.within_append == [False, False]


async def test_appends_made_at_once_are_heard_in_offset_order() -> None:
    store, listener = await open_store()
    await store.enter("a", person("ada"))
    results = await asyncio.gather(*(store.append("a", person("ada"), f"line {n}", None) for n in range(10)))
    assert results == [(n, True) for n in range(1, 11)]  # numbered in the order they were made
    assert [stored.offset for _, stored in listener.messages] == list(range(1, 11))


async def test_a_say_cancelled_before_its_step_ran_is_not_published() -> None:
    store, listener = await open_store()
    await store.enter("a", person("ada"))
    say = asyncio.create_task(store.append("a", person("ada"), "never", None))
    await asyncio.sleep(0)  # one turn: the say has scheduled its step, which runs at the next
    say.cancel()
    with pytest.raises(asyncio.CancelledError):
        await say
    assert await store.append("a", person("ada"), "next", None) == (1, True)
    assert [stored.offset for _, stored in listener.messages] == [1]


async def test_a_text_with_no_utf8_takes_no_offset() -> None:
    """The frame is encoded before the offset is assigned: a lone surrogate (which a JSON client
    sends as ``"\\ud800"``) fails the say, and the next one gets the next offset, with no hole."""
    store, listener = await open_store(dedup_seconds=600)
    await store.enter("a", person("ada"))
    assert await store.append("a", person("ada"), "one", None) == (1, True)
    with pytest.raises(UnicodeEncodeError):
        await store.append("a", person("ada"), "lone \ud800 surrogate", "s1")
    assert await store.append("a", person("ada"), "two", "s1") == (2, True)  # its say id was not taken either
    assert [stored.offset for _, stored in listener.messages] == [1, 2]
    assert await retained(store, "a") == [1, 2]
    assert (store.retained, store.bytes) == (2, sum(stored.size for _, stored in listener.messages))


async def test_an_empty_room_has_top_0_and_first_1() -> None:
    store, _ = await open_store()
    assert await store.enter("a", person("ada")) == people("ada")
    window = await store.window("a", 0, 10)
    assert (window.epoch, window.top, window.first, window.newest) == ("epoch-1", 0, 1, ())


async def test_each_room_gets_its_own_epoch() -> None:
    store = MemoryStore(Settings())  # the real random epochs
    await store.enter("a", person("ada"))
    await store.enter("b", person("ada"))
    epochs = {(await store.window(room, 0, 0)).epoch for room in "ab"}
    assert len(epochs) == 2
    assert all(len(epoch) >= 16 for epoch in epochs)


# --- history per room -----------------------------------------------------------------------


async def test_a_room_keeps_exactly_history_messages() -> None:
    store, _ = await open_store(history_messages=3)
    await store.enter("a", person("ada"))
    kept: list[list[int]] = []
    for _ in range(6):
        await say(store, "a", 1)
        kept.append(await retained(store, "a"))
    assert kept == [[1], [1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6]]
    window = await store.window("a", 0, 100)
    assert (window.top, window.first) == (6, 4)  # trimming moves first
    assert store.retained == 3
    assert store.bytes == sum(stored.size for stored in window.newest)


async def test_trimming_one_room_leaves_the_others_alone() -> None:
    store, _ = await open_store(history_messages=2)
    for room in "ab":
        await store.enter(room, person("ada"))
    await say(store, "a", 2)
    await say(store, "b", 5)
    assert (await retained(store, "a"), await retained(store, "b")) == ([1, 2], [4, 5])


async def test_history_messages_0_keeps_everything() -> None:
    store, _ = await open_store(history_messages=0, history_max_bytes=0)
    await store.enter("a", person("ada"))
    await say(store, "a", 1500)
    assert len(await retained(store, "a")) == 1500


# --- the byte budget ------------------------------------------------------------------------


async def test_the_byte_budget_trims_the_process_s_oldest_messages_whichever_room_holds_them() -> None:
    size = sys.getsizeof(frames.msg("a", 1, WALL_MS, person("ada"), "line", None)) + OVERHEAD  # each one below
    budget = 4 * size + size // 2  # room for 4 messages, not 5
    store, listener = await open_store(history_messages=0, history_max_bytes=budget)
    for room in "abc":
        await store.enter(room, person("ada"))
    appended: list[tuple[str, int]] = []
    for room in "aaabbcbcc":
        offset, _ = await store.append(room, person("ada"), "line", None)
        appended.append((room, offset))
        assert store.bytes <= budget
        newest = appended[-4:]  # exactly the process's 4 newest, across rooms
        for name in "abc":
            assert await retained(store, name) == [n for owner, n in newest if owner == name]
    assert {stored.size for _, stored in listener.messages} == {size}
    assert (store.bytes, store.retained) == (4 * size, 4)


async def test_what_the_byte_budget_trims_is_a_trimmed_gap_for_a_resume() -> None:
    store, _ = await open_store(history_messages=0, history_max_bytes=2000)
    for room in "ab":
        await store.enter(room, person("ada"))
    await say(store, "a", 3)
    before = await store.window("a", 0, 100)
    await say(store, "b", 20)  # far more than the budget: a's three go first
    window = await store.window("a", 0, 100)
    assert (before.first, window.first, window.top, window.newest) == (1, 4, 3, ())
    assert plan(window, (window.epoch, 1)).gaps == (Gap(2, 3, TRIMMED),)
    assert store.bytes <= 2000


async def test_a_message_larger_than_the_whole_budget_is_not_kept() -> None:
    store, listener = await open_store(history_max_bytes=OVERHEAD + 10)
    await store.enter("a", person("ada"))
    assert await store.append("a", person("ada"), "x" * 100, None) == (1, True)
    assert len(listener.messages) == 1  # still published
    window = await store.window("a", 0, 10)
    assert (window.top, window.first, window.newest, store.bytes, store.retained) == (1, 2, (), 0, 0)


async def test_the_global_order_stays_bounded_when_rooms_trim_themselves() -> None:
    """Rooms that trim by history_messages leave their entries in the global order behind; the
    order is compacted so they stay within a quarter of what is retained (plus a constant)."""
    store, _ = await open_store(history_messages=2, history_max_bytes=0)
    rooms = [f"r{n}" for n in range(40)]
    for room in rooms:
        await store.enter(room, person("ada"))
    longest = 0
    for _ in range(60):
        for room in rooms:
            await store.append(room, person("ada"), "line", None)
            assert len(store._order) <= store.retained + store.retained // 4 + 1024
            longest = max(longest, len(store._order))
    assert store.retained == 80
    assert longest > 1000  # it did grow to the bound, and was compacted (60 x 40 = 2400 appends)
    for room in rooms:
        assert await retained(store, room) == [59, 60]


async def test_after_compaction_the_budget_still_trims_the_oldest_retained_first() -> None:
    def size(room: str, offset: int) -> int:
        return sys.getsizeof(frames.msg(room, offset, WALL_MS, person("ada"), "line", None)) + OVERHEAD

    rooms = [f"r{n}" for n in range(10)]
    # Room for the last message of each of the ten rooms, and one byte short of one more.
    store, _ = await open_store(history_messages=1, history_max_bytes=10 * size("r0", 200) + size("new", 1) - 1)
    for room in rooms:
        await store.enter(room, person("ada"))
    for _ in range(200):  # 2000 appends, each room keeping its last: compacted on the way
        for room in rooms:
            await store.append(room, person("ada"), "line", None)
    assert len(store._order) < 2000
    assert store.retained == 10
    await store.enter("new", person("ada"))
    await store.append("new", person("ada"), "line", None)  # one over: r0's message, the oldest retained, goes
    assert await retained(store, "r0") == []
    assert [await retained(store, room) for room in rooms[1:]] == [[200]] * 9
    assert await retained(store, "new") == [1]


# --- dedup ----------------------------------------------------------------------------------


async def test_a_say_id_used_again_returns_the_first_offset_and_publishes_nothing() -> None:
    store, listener = await open_store(dedup_seconds=600)
    await store.enter("a", person("ada"))
    assert await store.append("a", person("ada"), "hello", "s1") == (1, True)
    assert await store.append("a", person("ada"), "other", "s2") == (2, True)
    published = len(listener.messages)
    assert await store.append("a", person("ada"), "hello", "s1") == (1, False)
    assert await store.append("a", person("ada"), "changed text, same id", "s1") == (1, False)
    assert len(listener.messages) == published  # the listener was not called
    assert await retained(store, "a") == [1, 2]
    assert (await store.window("a", 0, 0)).top == 2


async def test_a_say_id_is_per_user_and_room() -> None:
    store, _ = await open_store()
    for room, user in (("a", "ada"), ("a", "bob"), ("b", "ada")):
        await store.enter(room, person(user))
    assert await store.append("a", person("ada"), "x", "s1") == (1, True)
    assert await store.append("a", person("bob"), "x", "s1") == (2, True)  # another user
    assert await store.append("b", person("ada"), "x", "s1") == (1, True)  # another room
    assert await store.append("a", person("bob"), "x", "s1") == (2, False)


async def test_a_say_without_id_is_never_a_duplicate() -> None:
    store, _ = await open_store()
    await store.enter("a", person("ada"))
    assert [await store.append("a", person("ada"), "same", None) for _ in range(3)] == [(1, True), (2, True), (3, True)]


async def test_a_say_id_is_forgotten_after_dedup_seconds() -> None:
    clock = Clock()
    store, listener = await open_store(clock, dedup_seconds=600)
    await store.enter("a", person("ada"))
    await store.append("a", person("ada"), "x", "s1")
    clock.now += 599.9
    assert await store.append("a", person("ada"), "x", "s1") == (1, False)
    clock.now += 0.1  # 600 s after the first
    assert await store.append("a", person("ada"), "x", "s1") == (2, True)
    assert len(listener.messages) == 2
    assert await store.append("a", person("ada"), "x", "s1") == (2, False)  # the new one is remembered in turn


async def test_an_id_reused_in_a_room_created_anew_does_not_keep_other_ids_alive() -> None:
    """The dedup window is swept oldest first, so an id remembered again must move to the end:
    assigned in place, it would stay in front and shield the expired ids behind it."""
    clock = Clock()
    store, _ = await open_store(clock, dedup_seconds=600, room_idle_seconds=10)
    start = clock.now
    await store.enter("a", person("ada"))
    await store.append("a", person("ada"), "x", "k")  # (a, ada, k) expires at start + 600
    await store.exit("a", person("ada"))
    clock.now = start + 1
    await store.enter("b", person("ada"))
    await store.append("b", person("ada"), "y", "j")  # (b, ada, j) expires at start + 601
    clock.now = start + 20
    await store.enter("a", person("ada"))  # a is forgotten and created anew
    assert await store.append("a", person("ada"), "x again", "k") == (1, True)  # (a, ada, k) now expires at start + 620
    clock.now = start + 605  # j was used 604 s ago, more than dedup_seconds
    assert await store.append("b", person("ada"), "y again", "j") == (2, True)


async def test_a_room_created_anew_does_not_know_the_old_room_s_ids() -> None:
    clock = Clock()
    store, _ = await open_store(clock, dedup_seconds=600, room_idle_seconds=10)
    await store.enter("a", person("ada"))
    await store.append("a", person("ada"), "x", "s1")
    await store.append("a", person("ada"), "y", "s2")
    await store.exit("a", person("ada"))
    clock.now += 11
    await store.enter("a", person("ada"))
    assert await store.append("a", person("ada"), "y", "s2") == (1, True)


async def test_at_most_dedup_max_ids_are_remembered() -> None:
    store, _ = await open_store(dedup_max=3)  # ASGI_CHAT_DEDUP_MAX
    await store.enter("a", person("ada"))
    for n in range(4):
        await store.append("a", person("ada"), "x", f"s{n}")
    assert len(store._dedup) == 3
    assert await store.append("a", person("ada"), "x", "s3") == (4, False)  # the newest three are remembered
    assert await store.append("a", person("ada"), "x", "s0") == (5, True)  # the oldest was forgotten


# --- idle rooms and the room limit ------------------------------------------------------------


async def test_an_empty_room_is_forgotten_after_room_idle_seconds() -> None:
    clock = Clock()
    store, _ = await open_store(clock, room_idle_seconds=100)
    await store.enter("a", person("ada"))
    await say(store, "a", 3)
    old = await store.window("a", 0, 10)
    await store.exit("a", person("ada"))
    clock.now += 99.9
    await store.enter("b", person("bob"))  # any enter sweeps: not yet
    assert store.retained == 3
    clock.now += 0.1
    await store.enter("b", person("bob"))  # now: a's history and bytes are released, though nobody entered a
    assert (store.retained, store.bytes) == (0, 0)
    await store.enter("a", person("ada"))
    new = await store.window("a", 0, 10)
    assert (old.epoch, old.top) == ("epoch-1", 3)
    assert (new.epoch, new.top, new.first, new.newest) == ("epoch-3", 0, 1, ())  # a new epoch: reset
    assert await store.append("a", person("ada"), "x", None) == (1, True)


async def test_a_room_entered_again_before_expiry_keeps_its_history_and_its_clock_restarts() -> None:
    clock = Clock()
    store, _ = await open_store(clock, room_idle_seconds=100)
    await store.enter("a", person("ada"))
    await say(store, "a", 2)
    await store.exit("a", person("ada"))
    clock.now += 90
    await store.enter("a", person("ada"))
    await store.exit("a", person("ada"))
    clock.now += 90  # 180 s since the first exit, 90 since the last
    await store.enter("a", person("ada"))
    window = await store.window("a", 0, 10)
    assert (window.epoch, window.top, len(window.newest)) == ("epoch-1", 2, 2)


async def test_a_room_with_members_is_never_forgotten() -> None:
    clock = Clock()
    store, _ = await open_store(clock, room_idle_seconds=100)
    await store.enter("a", person("ada"))
    await store.enter("a", person("bob"))
    await say(store, "a", 2)
    await store.exit("a", person("bob"))  # ada is still there
    clock.now += 10**6
    await store.enter("b", person("bob"))
    window = await store.window("a", 0, 10)
    assert (window.epoch, window.top, len(window.newest)) == ("epoch-1", 2, 2)


async def test_room_idle_seconds_0_never_forgets() -> None:
    clock = Clock()
    store, _ = await open_store(clock, room_idle_seconds=0)
    await store.enter("a", person("ada"))
    await say(store, "a", 1)
    await store.exit("a", person("ada"))
    clock.now += 10**9
    await store.enter("a", person("ada"))
    assert (await store.window("a", 0, 0)).epoch == "epoch-1"


async def test_max_rooms_refuses_a_new_room_only_while_every_room_has_members() -> None:
    """More on the cap, and why it is no lockout: test_memory_store_rooms.py."""
    store, listener = await open_store(max_rooms=2, room_idle_seconds=100)
    await store.enter("a", person("ada"))
    await store.enter("b", person("ada"))
    with pytest.raises(RoomLimit):
        await store.enter("c", person("ada"))
    assert ("c", person("ada"), "join") not in listener.presences
    assert await store.enter("a", person("bob")) == people("ada", "bob")  # rooms that exist may still be entered
    await say(store, "b", 1)
    await store.exit("b", person("ada"))  # empty, with history: idle, it gives way to a new room
    assert await store.enter("c", person("ada")) == people("ada")
    with pytest.raises(RoomLimit):
        await store.enter("b", person("ada"))


async def test_max_rooms_0_is_no_limit() -> None:
    store, _ = await open_store(max_rooms=0)
    for n in range(50):
        await store.enter(f"r{n}", person("ada"))
    assert len(store._rooms) == 50


# --- presence -------------------------------------------------------------------------------


async def test_presence_counts_connections_and_announces_only_the_first_and_the_last() -> None:
    store, listener = await open_store()
    assert await store.enter("a", person("bob")) == people("bob")
    assert await store.enter("a", person("ada")) == people("ada", "bob")  # sorted, the joiner included
    assert await store.enter("a", person("ada")) == people("ada", "bob")  # a second tab: one presence
    assert listener.presences == [("a", person("bob"), "join"), ("a", person("ada"), "join")]
    await store.exit("a", person("ada"))
    assert listener.presences[2:] == []  # one tab of two left: still present
    assert await store.enter("a", person("cy")) == people("ada", "bob", "cy")
    await store.exit("a", person("ada"))
    await store.exit("a", person("bob"))
    assert listener.presences[2:] == [
        ("a", person("cy"), "join"),
        ("a", person("ada"), "leave"),
        ("a", person("bob"), "leave"),
    ]
    assert await store.enter("a", person("ada")) == people("ada", "cy")


async def test_presence_is_per_room() -> None:
    store, listener = await open_store()
    await store.enter("a", person("ada"))
    assert await store.enter("b", person("ada")) == people("ada")
    await store.exit("a", person("ada"))
    assert listener.presences == [
        ("a", person("ada"), "join"),
        ("b", person("ada"), "join"),
        ("a", person("ada"), "leave"),
    ]
    assert store._rooms["b"].users == {"u:ada": 1}


# --- people: presence and say ids per uid ----------------------------------------------------------


async def test_two_people_of_one_name_are_two_presences_each_announced() -> None:
    store, listener = await open_store()
    alice, other_alice = person("Alice", uid="u1"), person("Alice", uid="guest:x", guest=True)
    assert await store.enter("a", alice) == [alice]
    assert await store.enter("a", other_alice) == [other_alice, alice]  # sorted by name, then uid
    assert listener.presences == [("a", alice, "join"), ("a", other_alice, "join")]
    await store.exit("a", other_alice)
    assert listener.presences[2:] == [("a", other_alice, "leave")]  # hers, not the first Alice's
    assert await store.present("a") == [alice]


async def test_one_uid_on_two_connections_is_one_presence_shown_as_it_entered_last() -> None:
    store, listener = await open_store()
    ada, renamed = person("ada", uid="u1"), person("Ada L.", uid="u1")  # her token's name changed, not her uid
    await store.enter("a", ada)
    assert await store.enter("a", renamed) == [renamed]  # one presence
    assert listener.presences == [("a", ada, "join")]  # announced once
    await store.exit("a", ada)
    assert listener.presences[1:] == []  # one connection of two left: still present
    await store.exit("a", renamed)
    assert listener.presences[1:] == [("a", renamed, "leave")]
    assert await store.present("a") == []


async def test_a_say_id_is_one_uids_a_namesakes_say_with_it_is_published() -> None:
    store, listener = await open_store(dedup_seconds=600)
    alice, other_alice = person("Alice", uid="u1"), person("Alice", uid="u2")
    for who in (alice, other_alice):
        await store.enter("a", who)
    assert await store.append("a", alice, "hers", "k") == (1, True)
    assert await store.append("a", other_alice, "the other one's", "k") == (2, True)  # not pre-empted
    assert await store.append("a", alice, "hers again", "k") == (1, False)
    assert await store.append("a", other_alice, "again", "k") == (2, False)
    assert [json.loads(stored.frame)["uid"] for _, stored in listener.messages] == ["u1", "u2"]


async def test_a_msg_frame_says_who_said_it_name_uid_and_guest() -> None:
    store, listener = await open_store()
    guest = person("Ada", uid="guest:abc", guest=True)
    await store.enter("a", guest)
    await store.append("a", guest, "hi", None)
    [(_, stored)] = listener.messages
    assert json.loads(stored.frame) == {
        "type": "msg",
        "room": "a",
        "offset": 1,
        "ts": WALL_MS,
        "user": "Ada",
        "uid": "guest:abc",
        "guest": True,
        "text": "hi",
    }
    assert (await store.window("a", 0, 1)).newest == (stored,)  # replayed and paged as it was said
    assert await store.before("a", 2, 1) == [stored]


# --- the reads: before (load earlier) and window (join) --------------------------------------


async def history_4_to_10() -> MemoryStore:
    """A room whose top is 10 and whose oldest retained offset is 4."""
    store, _ = await open_store(history_messages=7)
    await store.enter("a", person("ada"))
    await say(store, "a", 10)
    assert await retained(store, "a") == list(range(4, 11))
    return store


@pytest.mark.parametrize(
    ("before", "limit", "offsets"),
    [
        (11, 3, [8, 9, 10]),  # just above top: the newest
        (10**9, 3, [8, 9, 10]),  # far beyond top
        (10**9, 100, [4, 5, 6, 7, 8, 9, 10]),  # everything retained, ascending
        (10, 3, [7, 8, 9]),  # strictly below before
        (8, 100, [4, 5, 6, 7]),
        (6, 1, [5]),
        (5, 100, [4]),
        (4, 100, []),  # before == first: nothing older is retained
        (2, 100, []),  # before < first
        (0, 100, []),
    ],
)
async def test_before_pages_back_through_what_is_retained(before: int, limit: int, offsets: list[int]) -> None:
    store = await history_4_to_10()
    assert [stored.offset for stored in await store.before("a", before, limit)] == offsets


@pytest.mark.parametrize(
    ("after", "limit", "offsets"),
    [
        (0, 0, []),  # live only
        (0, 3, [8, 9, 10]),  # history 3
        (0, 100, [4, 5, 6, 7, 8, 9, 10]),  # more than retained
        (2, 100, [4, 5, 6, 7, 8, 9, 10]),  # a resume from before what is retained
        (3, 100, [4, 5, 6, 7, 8, 9, 10]),
        (5, 100, [6, 7, 8, 9, 10]),  # a resume within it
        (5, 2, [9, 10]),  # ... bounded by replay_max: the newest
        (9, 100, [10]),
        (10, 100, []),  # nothing missed
        (12, 100, []),  # above top
    ],
)
async def test_window_answers_the_newest_limit_retained_after(after: int, limit: int, offsets: list[int]) -> None:
    store = await history_4_to_10()
    window = await store.window("a", after, limit)
    assert (window.epoch, window.top, window.first) == ("epoch-1", 10, 4)
    assert [stored.offset for stored in window.newest] == offsets


async def test_the_store_is_always_healthy_and_open_and_close_are_idempotent() -> None:
    store, _ = await open_store()
    assert store.healthy
    await store.open(Listener())
    await store.close()
    await store.close()
