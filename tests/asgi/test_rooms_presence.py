"""Presence through the app: batched per window, opted out of, and asked for (``presence``).

A join storm must cost members x windows presence frames, not members squared, and every
member's list (``joined``'s, then each ``presence`` frame applied as set operations) must end
right. Each test reads frames as they come, bounded by the suite's timeout: no sleep.
"""

from __future__ import annotations

import asyncio
import time

from tests.asgi.rooms_helpers import ROOM, error_of, next_is_live, rooms_app
from tests.rooms_support import Frame, RoomsClient, greeted, opened, presence_of, shown, tab_of


class View:
    """One client's list of who is in the room, kept as a client should keep it."""

    def __init__(self, client: RoomsClient, joined: Frame) -> None:
        self.client = client
        self.members = set(joined["presence"])
        self.frames = 0

    def apply(self, frame: Frame) -> None:
        assert frame["type"] == "presence", frame
        self.frames += 1
        self.members |= {person["user"] for person in frame["join"]}
        self.members -= {person["user"] for person in frame["leave"]}

    async def until(self, members: set[str]) -> None:
        """Read presence frames until the list is ``members`` (a wrong list times out)."""
        while self.members != members:
            self.apply(await self.client.frame())


async def test_a_join_storm_costs_a_frame_per_member_per_window_and_every_list_ends_right() -> None:
    window = 0.2
    app = rooms_app(presence_interval=window)
    names = [f"user{n:02}" for n in range(30)]
    clients = await opened(app, *names)
    started = time.monotonic()
    views = [View(client, await client.join(ROOM)) for client in clients]
    everyone = set(names)
    await asyncio.gather(*(view.until(everyone) for view in views))
    await views[0].client.say(ROOM, "storm over")
    for view in views[1:]:  # what else came before this line may repeat news, never undo it
        before, _ = await view.client.until("msg")
        for frame in before:
            view.apply(frame)
        assert view.members == everyone
    seconds = time.monotonic() - started
    frames = sum(view.frames for view in views)
    # One frame per member per window at most (the bound), where one per join each would
    # be 30 x 29 / 2 = 435.
    assert frames <= len(names) * (seconds / window + 2), (frames, seconds)
    assert frames < 435


async def test_a_join_and_a_leave_in_one_window_cancel_out_for_members_already_there() -> None:
    app = rooms_app(presence_interval=1.0)
    watcher, opener, passer, stayer = await opened(app, "watcher", "opener", "passer", "stayer")
    await watcher.join(ROOM)
    await opener.join(ROOM)  # the first change after a quiet spell goes out at once...
    assert await watcher.expect("presence") == presence_of(ROOM, join=("opener",))
    await passer.join(ROOM)  # ...and opens a window: these wait for its end
    await passer.disconnect()
    await stayer.join(ROOM)
    assert await watcher.expect("presence") == presence_of(ROOM, join=("stayer",))  # passer: no news


async def test_a_member_whose_list_was_read_mid_window_is_told_what_changed_after() -> None:
    app = rooms_app(presence_interval=1.0)
    watcher, opener, passer, late = await opened(app, "watcher", "opener", "passer", "late")
    await watcher.join(ROOM)
    await opener.join(ROOM)
    await watcher.expect("presence")  # the window is open now
    await passer.join(ROOM)
    joined = await late.join(ROOM)
    assert joined["presence"] == ["late", "opener", "passer", "watcher"]  # read while passer was in
    await passer.disconnect()
    # The watcher's list never had passer: no news. Late's did: it must hear that passer left.
    assert await late.expect("presence") == presence_of(ROOM, leave=("passer",))
    assert await watcher.expect("presence") == presence_of(ROOM, join=("late",))


async def test_a_join_without_presence_gets_a_count_and_no_presence_frames() -> None:
    app = rooms_app()
    viewer, ada, bob = await opened(app, "viewer", "ada", "bob")
    await ada.join(ROOM)
    joined = await viewer.join(ROOM, presence=False)
    assert "presence" not in joined  # neither the names...
    assert "members" not in joined  # ...nor the people
    assert joined["count"] == 2
    assert await ada.expect("presence") == presence_of(ROOM, join=("viewer",))  # the others see it
    await bob.join(ROOM)
    await ada.expect("presence")
    await next_is_live(viewer, ada, 1)  # bob's join never reached the viewer: a line is next
    error = await error_of(viewer, kind="join", room="other", presence="no")
    assert (error["code"], error["message"]) == ("bad_request", "presence must be true or false")


async def test_a_presence_request_answers_who_is_there_now() -> None:
    app = rooms_app()
    ada, ada_welcome = await greeted(app, "ada")
    bob, bob_welcome = await greeted(app, "bob")
    error = await error_of(ada, kind="presence", room=ROOM, id="p0")
    assert (error["code"], error["id"]) == ("not_joined", "p0")
    await ada.join(ROOM, presence=False)
    await bob.join(ROOM)
    await ada.request("presence", room=ROOM, id="p1")
    assert await ada.expect("members") == {
        "type": "members",
        "room": ROOM,
        "members": [shown(ada_welcome), shown(bob_welcome)],  # each as shown: uid, name, guest
        "count": 2,
        "id": "p1",
    }


# --- presence is a person's: counted per uid ----------------------------------------------------


async def test_two_people_of_one_name_are_two_presences_and_each_is_told_of_the_other() -> None:
    app = rooms_app()
    first, alice = await greeted(app, "Alice")
    second, other_alice = await greeted(app, "Alice")  # no token: another guest, another uid
    assert alice["uid"] != other_alice["uid"]
    assert (await first.join(ROOM))["members"] == [shown(alice)]
    joined = await second.join(ROOM)
    assert (joined["presence"], joined["count"]) == (["Alice", "Alice"], 2)  # two presences
    assert sorted(member["uid"] for member in joined["members"]) == sorted([alice["uid"], other_alice["uid"]])
    assert await first.expect("presence") == presence_of(ROOM, join=(other_alice,))  # told: not its own uid
    await second.request("presence", room=ROOM)
    assert (await second.expect("members"))["count"] == 2
    tab = await tab_of(app, alice)  # the first Alice's second tab: no news for anyone
    assert (await tab.join(ROOM))["count"] == 2
    await second.disconnect()
    assert await first.expect("presence") == presence_of(ROOM, leave=(other_alice,))  # her leave is told too
    assert await tab.expect("presence") == presence_of(ROOM, leave=(other_alice,))
    await first.disconnect()  # one of two tabs of Alice's: she is still there
    await next_is_live(tab, tab, 1)


async def test_a_namesake_joining_in_a_window_is_news_to_a_member_of_that_name() -> None:
    app = rooms_app(presence_interval=1.0)
    watcher, ada = await greeted(app, "ada")
    opener, first = await greeted(app, "opener")
    await watcher.join(ROOM)
    await opener.join(ROOM)
    assert await watcher.expect("presence") == presence_of(ROOM, join=(first,))  # the window opens
    namesake, other_ada = await greeted(app, "ada")
    await namesake.join(ROOM)  # batched: at the window's end, with the watcher's own name in it
    assert await watcher.expect("presence") == presence_of(ROOM, join=(other_ada,))
    assert other_ada["uid"] != ada["uid"]
