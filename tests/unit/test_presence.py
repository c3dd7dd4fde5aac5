"""Batched presence (engine/presence.py): every member's list ends right, whenever windows end.

The model: a room's true presence, changed by joins and leaves; viewers (the room's members in
this process) that join at any moment, read the room's list at any later moment (a join reads
it through the store), and apply the frames they get as set operations: join adds, leave
removes. Frames that reach a viewer still joining wait in its buffer and are applied after the
list it read, as engine/rooms.py delivers them. Windows end whenever Hypothesis likes (the
timer's work done by hand); after a last one, every viewer's list must equal the truth.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_chat.engine.member import Member, Outgoing
from asgi_chat.engine.presence import Changes, Presence
from asgi_chat.engine.room import Room

USERS = ("amy", "bob", "cy", "dan")


@dataclass(eq=False)
class Viewer:
    """A member of the room here, as far as presence goes: what it was sent, and its list."""

    name: str
    got: list[dict[str, Any]] = field(default_factory=list)
    view: set[str] | None = None  # None until its join has read the room's list

    def offer(self, message: Outgoing) -> None:
        self.got.append(json.loads(message.event["text"] or ""))

    def apply(self, frames: list[dict[str, Any]]) -> None:
        assert self.view is not None
        for frame in frames:
            self.view |= {person["user"] for person in frame["join"]}
            self.view -= {person["user"] for person in frame["leave"]}


class World:
    def __init__(self) -> None:
        self.truth: set[str] = set()
        self.room = Room()
        self.presence = Presence("r", interval=3600.0, clock=lambda: 0.0)
        self.viewers: list[Viewer] = []

    def member(self, viewer: Viewer) -> Member:
        return cast(Member, viewer)  # Presence only calls offer() on a member

    def toggle(self, user: str) -> None:
        event = "leave" if user in self.truth else "join"
        self.truth ^= {user}
        self.presence.changed(self.room, user, event)

    def seat(self, n: int) -> None:
        viewer = Viewer(f"viewer{n}")
        self.viewers.append(viewer)
        member = self.member(viewer)
        self.room.seat(member, viewer.name, joining=True)
        self.presence.seated(member, quiet=False)
        self.truth.add(viewer.name)  # its own join, told like any other
        self.presence.changed(self.room, viewer.name, "join")

    def read(self, viewer: Viewer) -> None:
        """The viewer's join reads the list, gets what its buffer held, and goes live."""
        member = self.member(viewer)
        viewer.view = set(self.truth)
        self.presence.read(member)
        buffered = [json.loads(message.event["text"] or "") for _, message in self.room.joining[member]]
        viewer.apply(buffered)
        self.room.go_live(member)

    def window_ends(self) -> None:
        self.presence.flush(self.room)
        for viewer in self.viewers:
            if viewer.view is not None:
                viewer.apply(viewer.got)
            viewer.got.clear()


@dataclass(frozen=True)
class Step:
    kind: str  # toggle, seat, read, window
    index: int


STEPS = st.lists(
    st.builds(Step, st.sampled_from(("toggle", "toggle", "seat", "read", "window")), st.integers(0, 7)), max_size=40
)


def in_loop(body: Callable[[World], None]) -> World:
    """Run ``body`` on a world inside an event loop, where a window's timer is set (an hour
    long: it never ends a window here; the test does, by hand)."""

    async def run() -> World:
        world = World()
        body(world)
        world.presence.close()
        return world

    return asyncio.run(run())


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_every_list_ends_right_whenever_windows_end(steps: list[Step]) -> None:
    in_loop(lambda world: play(world, steps))


def play(world: World, steps: list[Step]) -> None:
    for step in steps:
        if step.kind == "toggle":
            world.toggle(USERS[step.index % len(USERS)])
        elif step.kind == "seat":
            world.seat(len(world.viewers))
        elif step.kind == "read":
            reading = [viewer for viewer in world.viewers if viewer.view is None]
            if reading:
                world.read(reading[step.index % len(reading)])
        else:
            world.window_ends()
    for viewer in world.viewers:
        if viewer.view is None:
            world.read(viewer)
    world.window_ends()
    for viewer in world.viewers:
        assert viewer.view == world.truth, (viewer.name, steps)


def test_a_settled_member_is_told_the_net_change_a_fresh_one_the_latest_events() -> None:
    changes = Changes()
    for user, event in (("amy", "join"), ("amy", "leave"), ("bob", "leave"), ("bob", "join"), ("cy", "join")):
        changes.add(user, event)
    assert changes.net() == {"cy": "join"}  # amy came and went, bob went and came back: no news
    assert changes.latest() == {"amy": "leave", "bob": "join", "cy": "join"}


def test_a_member_is_not_told_of_its_own_name_and_an_empty_frame_is_not_sent() -> None:
    in_loop(alone)


def alone(world: World) -> None:
    world.seat(0)  # its own join only: nothing to tell anyone
    world.window_ends()
    assert world.viewers[0].got == []
    assert not world.room.joining[world.member(world.viewers[0])]


def test_one_window_makes_one_frame_per_member_whatever_the_churn() -> None:
    in_loop(churn)


def churn(world: World) -> None:
    for n in range(3):
        world.seat(n)
        world.read(world.viewers[n])
    world.window_ends()
    for viewer in world.viewers:
        viewer.got.clear()
    for _ in range(50):  # each user comes and goes 25 times: a settled member hears of nobody
        for user in USERS:
            world.toggle(user)
    world.presence.flush(world.room)
    assert [viewer.got for viewer in world.viewers] == [[], [], []]
    for _ in range(51):  # and now 26 times, and stays: one frame each, with every user once
        for user in USERS:
            world.toggle(user)
    world.presence.flush(world.room)
    joined = [{"user": user} for user in sorted(USERS)]
    assert [viewer.got for viewer in world.viewers] == [
        [{"type": "presence", "room": "r", "join": joined, "leave": []}]
    ] * 3
