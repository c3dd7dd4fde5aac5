"""The memory store's bounds hold in real memory, as ``tracemalloc`` sees it (issue 18, item 6).

Each test fills a store beyond its bounds with the worst inputs the protocol allows (a 64-character
room name, a person with a 128-emoji uid and a 32-emoji name, a 64-emoji say id, 4000-character
lines with one emoji: CPython then stores every character in 4 bytes), each a str of its own, as
parsed requests and verified tokens give them.
What the store holds, traced, must stay within what its settings allow, counted with the figures
memory.py documents (OVERHEAD, SAY_ID_BYTES, ROOM_BYTES), plus SLACK; and the figures must not
be inflated either: the store at its bounds holds at least 85% of what they add up to.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from asgi_chat import Settings
from asgi_chat.engine.people import Person
from asgi_chat.engine.replay import Stored
from asgi_chat.engine.stores import RoomLimit
from asgi_chat.engine.stores.memory import ROOM_BYTES, SAY_ID_BYTES, MemoryStore
from tests.store_support import Unmoderated

from .test_memory_store import WALL_MS, Clock

EMOJI = "\N{GRINNING FACE}"
# What a store holds beyond its bounds' figures: its dicts' and deques' fixed parts, and the
# 1,024 stale entries the global order always may hold beyond its share (157 bytes each at worst).
SLACK = 256 * 1024


class Silent(Unmoderated):
    """A listener that keeps nothing (what is traced is what the store holds) but a count of the
    bytes said."""

    def __init__(self) -> None:
        self.said = 0

    def message(self, room: str, stored: Stored) -> None:
        self.said += stored.size

    def presence(self, room: str, person: Person, event: str) -> None: ...
    def gap(self, room: str, first: int, last: int, reason: str) -> None: ...
    def reset(self, room: str, epoch: str, offset: int) -> None: ...


def own(text: str) -> str:
    """``text`` as a str object of its own, as each parsed request has (nothing shared)."""
    return (text + "!")[:-1]


def room_name(n: int) -> str:
    return own(f"{n:064d}")  # the longest room name: [a-z0-9][a-z0-9_-]{0,63}


def astral(n: int, width: int) -> str:
    """``width`` astral characters, ending with ``n`` in astral digits: all 4 bytes a character."""
    digits = "".join(chr(0x1F400 + int(d)) for d in str(n))
    return own(EMOJI * (width - len(digits)) + digits)


def a_person(n: int) -> Person:
    """A person of their own: the longest uid (a token's sub: 128 printable characters) and name."""
    return Person(astral(n, 128), astral(n, 32), False)


def say_id(n: int) -> str:
    return astral(n, 64)  # the longest id


LINE = EMOJI + "x" * 3999  # max_text_chars: one emoji makes it 4 bytes a character


class Traced:
    """The memory allocated since it started, as tracemalloc sees it."""

    def __init__(self) -> None:
        gc.collect()
        self.base = tracemalloc.get_traced_memory()[0]

    def grown(self) -> int:
        """What is allocated now: the store holds no cycle, so what it let go is freed already."""
        return tracemalloc.get_traced_memory()[0] - self.base


@contextmanager
def tracing() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


async def open_store(clock: Clock | None = None, **settings: Any) -> tuple[MemoryStore, Silent]:
    store = MemoryStore(Settings(**settings), clock=clock or Clock(), wall_ms=lambda: WALL_MS)
    listener = Silent()
    await store.open(listener)
    return store, listener


@pytest.mark.parametrize(
    ("text", "then"),
    [
        # the lines: with one emoji, 16 KB each, not the 4 KB of their UTF-8
        pytest.param(LINE, "nothing", id="long-lines"),
        # short lines, where the overhead counts most, and the global order holds stale entries
        pytest.param(EMOJI, "one room trims itself", id="short-lines-a-room-trimming-itself"),
        pytest.param(EMOJI, "rooms give way at the cap", id="short-lines-rooms-giving-way"),
    ],
)
async def test_history_takes_no_more_memory_than_its_byte_budget(text: str, then: str) -> None:
    budget = 4 * 1024 * 1024
    rooms = [(room_name(n), a_person(n)) for n in range(8)]
    with tracing():
        traced = Traced()
        store, listener = await open_store(history_max_bytes=budget, max_rooms=16)
        for room, user in rooms:
            await store.enter(room, user)
        held = 0
        while listener.said < 2 * budget:  # all rooms in turn: the budget trims the oldest
            for room, user in rooms:
                await store.append(room, user, own(text), None)
            held = max(held, traced.grown())
        for n in range(3000 if then != "nothing" else 0):
            if then == "one room trims itself":  # it keeps its latest 1000, leaving the rest behind
                await store.append(rooms[0][0], rooms[0][1], own(text), None)
            else:  # a room of its own each time, idle with one line, which gives way in turn
                room, user = room_name(1000 + n), a_person(n)
                await store.enter(room, user)
                await store.append(own(room), user, own(text), None)
                await store.exit(own(room), user)
            held = max(held, traced.grown())
        assert store.bytes <= budget
        assert held <= budget + 16 * ROOM_BYTES + SLACK  # the budget is what memory holds...
        assert traced.grown() >= 0.85 * budget  # ...and it is used: the count is not inflated either


async def test_say_ids_take_at_most_dedup_max_times_say_id_bytes() -> None:
    """Each id in a room forgotten since, by a user of its own: nothing shared with the rest."""
    dedup_max = 2000
    history = 64 * 1024
    with tracing():
        traced = Traced()
        store, _ = await open_store(max_rooms=10, dedup_max=dedup_max, history_max_bytes=history, history_messages=1)
        for n in range(2 * dedup_max):
            room, user = room_name(n), a_person(n)
            await store.enter(room, user)
            assert await store.append(own(room), user, "x", say_id(n)) == (1, True)
            await store.exit(own(room), user)
        held = traced.grown()
    assert len(store._dedup) == dedup_max  # ASGI_CHAT_DEDUP_MAX, the oldest forgotten first
    assert len(store._rooms) <= 10
    assert held <= history + 10 * ROOM_BYTES + dedup_max * SAY_ID_BYTES + SLACK
    assert held >= 0.85 * dedup_max * SAY_ID_BYTES


async def test_a_store_at_all_its_bounds_holds_what_the_docs_worst_case_adds_up_to() -> None:
    """docs/rooms.md's worst case, scaled down: history_max_bytes + dedup_max x SAY_ID_BYTES +
    max_rooms x ROOM_BYTES, filled as an attacker would: say ids in rooms of their own, then every
    room occupied, then history in long emoji lines."""
    settings = {"max_rooms": 300, "dedup_max": 1500, "history_max_bytes": 2 * 1024 * 1024}
    worst = settings["history_max_bytes"] + settings["dedup_max"] * SAY_ID_BYTES + settings["max_rooms"] * ROOM_BYTES
    clock = Clock()
    with tracing():
        traced = Traced()
        store, _ = await open_store(clock, **settings)
        for n in range(2 * settings["dedup_max"]):  # idle rooms with history: at the cap, the oldest gives way
            room, user = room_name(n), a_person(n)
            await store.enter(room, user)
            await store.append(own(room), user, "x", say_id(n))
            await store.exit(own(room), user)
        occupied = [(room_name(10**6 + n), a_person(n)) for n in range(settings["max_rooms"])]
        for room, user in occupied:
            await store.enter(room, user)
        with pytest.raises(RoomLimit):  # every room has members now: a new one is refused
            await store.enter(room_name(10**7), a_person(0))
        for n in range(2 * settings["history_max_bytes"] // (4 * len(LINE))):
            room, user = occupied[n % len(occupied)]
            await store.append(room, user, own(LINE), None)
        held = traced.grown()
        clock.now += 1  # bounds() are read as /healthz would, later: nothing has expired yet
        assert {bound.name: (bound.used, bound.full) for bound in store.bounds()} == {
            "rooms": (settings["max_rooms"], True),
            "history_bytes": (store.bytes, False),
            "say_ids": (settings["dedup_max"], True),
        }
    assert settings["history_max_bytes"] - 20 * 1024 < store.bytes <= settings["history_max_bytes"]
    assert 0.85 * worst <= held <= worst + SLACK
