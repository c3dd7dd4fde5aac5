"""The memory store's room cap is never a lockout (issue 18, item 2).

A room counts against ``max_rooms`` only while it has members or history: an empty room with no
history is forgotten as its last member leaves, and at the cap the room idle longest gives way
(its history goes; a later join there reads another epoch: a ``reset``). Only when every room
held has members is a new one refused with RoomLimit. ``bounds()`` says so, as /healthz shows it.

Time is the fake clock of test_memory_store.py: nothing here waits.
"""

from __future__ import annotations

import pytest

from asgi_chat.engine.stores import RoomLimit
from asgi_chat.engine.stores.memory import MemoryStore

from .test_memory_store import Clock, open_store, people, person, retained, say


def bound(store: MemoryStore, name: str) -> tuple[int, int, bool]:
    """(used, limit, full) of one of the store's bounds, as /healthz reads them."""
    [found] = [b for b in store.bounds() if b.name == name]
    return found.used, found.limit, found.full


async def test_join_and_leave_churn_of_new_room_names_never_fills_the_cap() -> None:
    """The issue's lockout: one address joined and left 10,000 new room names, and every new room
    was then refused for a day. A room nobody is in, with no history, holds no slot."""
    store, _ = await open_store(max_rooms=100)
    for n in range(1000):  # ten times the cap
        await store.enter(f"churn-{n}", person("eve"))
        await store.exit(f"churn-{n}", person("eve"))
    assert bound(store, "rooms") == (0, 100, False)
    assert await store.enter("new", person("ada")) == people("ada")


async def test_at_the_cap_the_longest_idle_room_gives_way_with_its_history() -> None:
    clock = Clock()
    store, listener = await open_store(clock, max_rooms=3, room_idle_seconds=10**6, dedup_seconds=600)
    for room in ("old", "mid", "busy"):
        await store.enter(room, person("ada"))
        await store.append(room, person("ada"), f"in {room}", "k")
    await store.exit("old", person("ada"))  # idle first
    clock.now += 1
    await store.exit("mid", person("ada"))  # idle since later
    assert bound(store, "rooms") == (3, 3, True)
    old_epoch = (await store.window("old", 0, 0)).epoch

    assert await store.enter("new", person("bob")) == people("bob")  # not refused: "old" gave way
    assert bound(store, "rooms") == (3, 3, True)
    assert await retained(store, "mid") == [1]  # the younger idle room is kept
    assert store.retained == 2  # old's message is released with its room...
    assert store.bytes == sum(stored.size for room, stored in listener.messages if room != "old")

    await store.enter("old", person("ada"))  # ...and "mid" gives way in turn for it
    window = await store.window("old", 0, 10)
    assert window.epoch != old_epoch  # another epoch: a resume from the old one is a reset
    assert (window.top, window.newest) == (0, ())
    assert await store.append("old", person("ada"), "in old", "k") == (1, True)  # its say ids went with it


async def test_at_the_cap_with_every_room_occupied_a_new_room_is_refused() -> None:
    store, listener = await open_store(max_rooms=3)
    for room in "abc":
        await store.enter(room, person("ada"))
    await say(store, "a", 2)
    with pytest.raises(RoomLimit):
        await store.enter("d", person("bob"))
    assert ("d", person("bob"), "join") not in listener.presences
    assert bound(store, "rooms") == (3, 3, True)
    assert await retained(store, "a") == [1, 2]  # nobody's room was taken
    assert await store.enter("a", person("bob")) == people("ada", "bob")  # rooms held may still be entered
    await store.exit("c", person("ada"))  # c is empty, with no history: forgotten at once
    assert bound(store, "rooms") == (2, 3, False)
    assert await store.enter("d", person("bob")) == people("bob")


async def test_an_idle_room_whose_history_the_byte_budget_took_is_forgotten() -> None:
    """Idle rooms with history count; once the budget has trimmed all of it, the room holds
    nothing worth a slot, and is forgotten then, not a day later."""
    store, _ = await open_store(max_rooms=10, history_max_bytes=4000)
    await store.enter("quiet", person("ada"))
    await say(store, "quiet", 1)
    await store.exit("quiet", person("ada"))
    await store.enter("loud", person("bob"))
    assert bound(store, "rooms") == (2, 10, False)
    await say(store, "loud", 40, user=person("bob"))  # far beyond the budget: quiet's line goes first
    assert bound(store, "rooms") == (1, 10, False)


async def test_the_idle_sweep_still_forgets_a_silent_empty_room() -> None:
    clock = Clock()
    store, _ = await open_store(clock, max_rooms=10, room_idle_seconds=100)
    await store.enter("a", person("ada"))
    await say(store, "a", 1)
    await store.exit("a", person("ada"))
    clock.now += 100
    assert bound(store, "rooms") == (0, 10, False)  # bounds() is exact: what has expired is let go
    assert (store.retained, store.bytes) == (0, 0)


async def test_bounds_are_exact_and_say_when_the_room_cap_is_full() -> None:
    clock = Clock()
    store, _ = await open_store(clock, max_rooms=2, dedup_max=3, dedup_seconds=60, history_max_bytes=10**6)
    await store.enter("a", person("ada"))
    assert [(b.name, b.used, b.limit, b.full) for b in store.bounds()] == [
        ("rooms", 1, 2, False),
        ("history_bytes", 0, 10**6, False),
        ("say_ids", 0, 3, False),
    ]
    await store.enter("b", person("ada"))
    for n in range(5):
        await store.append("b", person("ada"), "x", f"id-{n}")
    assert bound(store, "rooms") == (2, 2, True)
    assert bound(store, "say_ids") == (3, 3, True)  # dedup_max, from settings
    assert bound(store, "history_bytes") == (store.bytes, 10**6, False)
    assert store.bytes == sum(stored.size for stored in (await store.window("b", 0, 10)).newest)
    clock.now += 60
    assert bound(store, "say_ids") == (0, 3, False)  # expired ids are not counted as held


async def test_forgotten_rooms_leave_the_global_order_and_the_rest_still_goes_oldest_first() -> None:
    """Rooms that give way at the cap leave their messages' entries in the global order; once
    compacted away, every message still retained must be in it, to be trimmed oldest first."""
    store, _ = await open_store(max_rooms=2, history_messages=0, history_max_bytes=10**6)
    await store.enter("keep", person("ada"))
    await say(store, "keep", 3)
    for n in range(1500):  # each gives way to the next: 1500 entries left behind, then compacted
        await store.enter(f"churn-{n}", person("eve"))
        await say(store, f"churn-{n}", 1, user=person("eve"))
        await store.exit(f"churn-{n}", person("eve"))
    assert len(store._order) < 1500
    assert (bound(store, "rooms")[0], store.retained) == (2, 4)
    per_line = store.bytes // 4
    await say(store, "keep", 10**6 // per_line)  # over the budget: the oldest go, "keep"'s first three first
    assert store.bytes <= 10**6
    assert (await retained(store, "keep"))[0] > 3
    assert bound(store, "rooms")[0] == 1  # and churn-1499's line: its room, empty, is forgotten
