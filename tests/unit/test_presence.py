"""Batched presence (engine/presence.py): every member's list ends right, whenever windows end.

The model: a room's true presence, changed by joins and leaves; viewers (the room's members in
this process) that join at any moment, read the room's list at any later moment (a join reads
it through the store), and apply the frames they get as set operations: join adds, leave
removes. Frames that reach a viewer still joining wait in its buffer and are applied after the
list it read, as engine/rooms.py delivers them. Windows end whenever Hypothesis likes (the
timer's work done by hand); after a last one, every viewer's list must equal the truth.

Presence is a person's, counted by uid (engine/people.py): two of the users share a name, and so
do the viewers, so a list kept by name would come out wrong.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_chat.engine import frames
from asgi_chat.engine.member import Member, Outgoing
from asgi_chat.engine.people import Person
from asgi_chat.engine.presence import Changes, Presence
from asgi_chat.engine.room import Room

# Two people called amy: two presences. The viewers are all called "viewer" too.
USERS = (Person("u-amy", "amy"), Person("u-bob", "bob"), Person("u-amy-2", "amy", guest=True), Person("u-dan", "dan"))
AMY, BOB, AMY_2, DAN = USERS


@dataclass(eq=False)
class Viewer:
    """A member of the room here, as far as presence goes: what it was sent, and its list (uids)."""

    person: Person
    got: list[dict[str, Any]] = field(default_factory=list)
    view: set[str] | None = None  # None until its join has read the room's list

    def offer(self, message: Outgoing) -> None:
        self.got.append(json.loads(message.event["text"] or ""))

    def apply(self, frames: list[dict[str, Any]]) -> None:
        assert self.view is not None
        for frame in frames:
            self.view |= {person["uid"] for person in frame["join"]}
            self.view -= {person["uid"] for person in frame["leave"]}


class World:
    def __init__(self) -> None:
        self.truth: set[str] = set()  # the uids present
        self.room = Room()
        self.presence = Presence("r", interval=3600.0, clock=lambda: 0.0)
        self.viewers: list[Viewer] = []

    def member(self, viewer: Viewer) -> Member:
        return cast(Member, viewer)  # Presence only calls offer() on a member

    def toggle(self, person: Person) -> None:
        event = "leave" if person.uid in self.truth else "join"
        self.truth ^= {person.uid}
        self.presence.changed(self.room, person, event)

    def seat(self, n: int) -> None:
        viewer = Viewer(Person(f"viewer-{n}", "viewer"))
        self.viewers.append(viewer)
        member = self.member(viewer)
        self.room.seat(member, viewer.person.uid, joining=True)  # as rooms.py seats a member: by uid
        self.presence.seated(member, quiet=False)
        self.truth.add(viewer.person.uid)  # its own join, told like any other
        self.presence.changed(self.room, viewer.person, "join")

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
        assert viewer.view == world.truth, (viewer.person, steps)


def test_a_settled_member_is_told_the_net_change_a_fresh_one_the_latest_events() -> None:
    changes = Changes()
    for person, event in ((AMY, "join"), (AMY, "leave"), (BOB, "leave"), (BOB, "join"), (AMY_2, "join")):
        changes.add(person, event)
    # amy came and went, bob went and came back: no news; the other amy, another uid, came
    assert changes.net() == {"u-amy-2": "join"}
    assert changes.latest() == {"u-amy": "leave", "u-bob": "join", "u-amy-2": "join"}
    assert changes.people == {"u-amy": AMY, "u-bob": BOB, "u-amy-2": AMY_2}


def test_a_member_is_not_told_of_its_own_uid_and_an_empty_frame_is_not_sent() -> None:
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
    # sorted by name, then uid: both amys, each as shown (uid, name, guest)
    joined = [person.shown() for person in (AMY, AMY_2, BOB, DAN)]
    assert [viewer.got for viewer in world.viewers] == [
        [{"type": "presence", "room": "r", "join": joined, "leave": []}]
    ] * 3


def test_a_member_is_told_of_another_person_of_its_own_name_never_of_its_own_uid() -> None:
    in_loop(namesakes)


def namesakes(world: World) -> None:
    world.seat(0)
    world.seat(1)  # both called "viewer": two uids, two presences
    for viewer in world.viewers:
        world.read(viewer)
    world.window_ends()
    assert [viewer.view for viewer in world.viewers] == [{"viewer-0", "viewer-1"}] * 2
    world.toggle(world.viewers[1].person)  # viewer 1 leaves (its last tab)
    world.presence.flush(world.room)
    left = [{"uid": "viewer-1", "user": "viewer", "guest": False}]
    gone = {"type": "presence", "room": "r", "join": [], "leave": left}
    assert world.viewers[0].got == [gone]  # told, though it has the same name
    assert world.viewers[1].got == []  # its own uid: never


names = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=8)
people_lists = st.lists(
    st.builds(Person, st.uuids().map(str), names, st.booleans()), max_size=6, unique_by=lambda p: p.uid
)


@settings(max_examples=200, deadline=None)
@given(people_lists, people_lists, st.integers(0, 12))
def test_a_batch_cut_for_a_member_is_the_frame_encoded_without_that_member(
    joins: list[Person], leaves: list[Person], which: int
) -> None:
    """Each member's frame is spliced from one encoding (frames.PresenceBatch): it must read, byte
    for byte, as the frame encoded without that member (quotes, emoji, backslashes included)."""
    leaves = [person for person in leaves if person.uid not in {joiner.uid for joiner in joins}]
    everyone = joins + leaves
    own = everyone[which % len(everyone)].uid if everyone and which < 10 else None
    expected_joins = [person for person in joins if person.uid != own]
    expected_leaves = [person for person in leaves if person.uid != own]
    expected = frames.presence("r", expected_joins, expected_leaves) if expected_joins or expected_leaves else None
    assert frames.PresenceBatch("r", joins, leaves).text(own) == expected
