"""The replay decision (engine/replay.py, issue 11): what a joining client gets before the live
messages, for every case the issue names, and the invariant checked on each result.

Each case describes a room (its epoch, top and oldest retained offset) and a join (since, history
or neither, with ``replay_max``). The test asks the room what :func:`want` says to ask, as a store
would, then :func:`plan`s the replay, and compares it with what the issue says it must be.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from asgi_chat.engine.replay import LIMIT, TRIMMED, Gap, Replay, Stored, Window, plan, want

EPOCH = "e-now"


@dataclass(frozen=True)
class Room:
    top: int
    first: int  # the oldest retained offset; top + 1 when none is
    epoch: str = EPOCH

    def window(self, after: int, limit: int) -> Window:
        """What a store answers: the newest ``limit`` retained messages with offset > ``after``."""
        retained = [n for n in range(self.first, self.top + 1) if n > after]
        newest = retained[len(retained) - min(limit, len(retained)) :]
        return Window(self.epoch, self.top, self.first, tuple(stored(n) for n in newest))


def stored(offset: int) -> Stored:
    return Stored(offset, f'{{"type":"msg","offset":{offset}}}', 100)


@dataclass(frozen=True)
class Case:
    room: Room
    since: tuple[str, int] | None = None
    history: int | None = None
    replay_max: int = 1000
    # what the client must get:
    reset: bool = False
    gaps: tuple[Gap, ...] = ()
    offsets: tuple[int, ...] = ()


def replay_for(case: Case) -> Replay:
    after, limit = want(case.since[1] if case.since else None, case.history, case.replay_max)
    return plan(case.room.window(after, limit), case.since)


CASES = {
    # --- since, the same epoch ---
    "exact, nothing missed": Case(Room(top=5, first=1), since=(EPOCH, 5)),
    "exact, some missed": Case(Room(top=5, first=1), since=(EPOCH, 2), offsets=(3, 4, 5)),
    "offset 0: everything": Case(Room(top=3, first=1), since=(EPOCH, 0), offsets=(1, 2, 3)),
    "offset 0 in an empty room": Case(Room(top=0, first=1), since=(EPOCH, 0)),
    "offset == top": Case(Room(top=9, first=4), since=(EPOCH, 9)),
    "offset just below the oldest retained: no gap": Case(Room(top=6, first=4), since=(EPOCH, 3), offsets=(4, 5, 6)),
    "offset > top: reset": Case(Room(top=5, first=1), since=(EPOCH, 6), reset=True),
    "offset far above top: reset": Case(Room(top=0, first=1), since=(EPOCH, 10**9), reset=True),
    # --- since, another epoch ---
    "other epoch: reset": Case(Room(top=5, first=1), since=("e-old", 2), reset=True),
    "other epoch, offset 0: reset": Case(Room(top=0, first=1), since=("e-old", 0), reset=True),
    "other epoch, even above top: one reset": Case(Room(top=1, first=1), since=("e-old", 50), reset=True),
    # --- trimmed and limit ---
    "part trimmed": Case(Room(top=8, first=4), since=(EPOCH, 1), gaps=(Gap(2, 3, TRIMMED),), offsets=(4, 5, 6, 7, 8)),
    "one trimmed": Case(Room(top=3, first=3), since=(EPOCH, 1), gaps=(Gap(2, 2, TRIMMED),), offsets=(3,)),
    "more than replay_max": Case(
        Room(top=10, first=1), since=(EPOCH, 2), replay_max=3, gaps=(Gap(3, 7, LIMIT),), offsets=(8, 9, 10)
    ),
    "one more than replay_max": Case(
        Room(top=4, first=1), since=(EPOCH, 0), replay_max=3, gaps=(Gap(1, 1, LIMIT),), offsets=(2, 3, 4)
    ),
    "exactly replay_max: no gap": Case(Room(top=10, first=1), since=(EPOCH, 7), replay_max=3, offsets=(8, 9, 10)),
    "fewer than replay_max": Case(Room(top=10, first=1), since=(EPOCH, 8), replay_max=3, offsets=(9, 10)),
    "trimmed then limit": Case(
        Room(top=10, first=4),
        since=(EPOCH, 1),
        replay_max=3,
        gaps=(Gap(2, 3, TRIMMED), Gap(4, 7, LIMIT)),
        offsets=(8, 9, 10),
    ),
    "trimmed, then replay_max exactly what is retained": Case(
        Room(top=10, first=8), since=(EPOCH, 0), replay_max=3, gaps=(Gap(1, 7, TRIMMED),), offsets=(8, 9, 10)
    ),
    "nothing retained at all": Case(Room(top=10, first=11), since=(EPOCH, 2), gaps=(Gap(3, 10, TRIMMED),)),
    "nothing retained, from 0": Case(Room(top=10, first=11), since=(EPOCH, 0), gaps=(Gap(1, 10, TRIMMED),)),
    "nothing retained, nothing missed": Case(Room(top=10, first=11), since=(EPOCH, 10)),
    "nothing retained, replay_max small": Case(
        Room(top=10, first=11), since=(EPOCH, 0), replay_max=2, gaps=(Gap(1, 10, TRIMMED),)
    ),
    "replay_max 0 is off": Case(Room(top=2500, first=1), since=(EPOCH, 0), replay_max=0, offsets=tuple(range(1, 2501))),
    "replay_max 0, trimmed": Case(
        Room(top=30, first=11),
        since=(EPOCH, 0),
        replay_max=0,
        gaps=(Gap(1, 10, TRIMMED),),
        offsets=tuple(range(11, 31)),
    ),
    "replay_max 1": Case(Room(top=5, first=1), since=(EPOCH, 0), replay_max=1, gaps=(Gap(1, 4, LIMIT),), offsets=(5,)),
    # --- history K: the latest K retained, never a gap ---
    "history 0": Case(Room(top=5, first=1), history=0),
    "history K < retained": Case(Room(top=10, first=3), history=2, offsets=(9, 10)),
    "history K == retained": Case(Room(top=10, first=3), history=8, offsets=tuple(range(3, 11))),
    "history K > retained": Case(Room(top=10, first=8), history=50, offsets=(8, 9, 10)),
    "history K, nothing retained": Case(Room(top=10, first=11), history=5),
    "history K, empty room": Case(Room(top=0, first=1), history=5),
    "history K is not bounded by replay_max": Case(
        Room(top=10, first=1), history=4, replay_max=2, offsets=(7, 8, 9, 10)
    ),
    # --- live only ---
    "live only": Case(Room(top=10, first=1)),
    "live only, empty room": Case(Room(top=0, first=1)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_replay_decision(case: Case) -> None:
    replay = replay_for(case)
    assert (replay.reset, replay.gaps, tuple(stored.offset for stored in replay.messages)) == (
        case.reset,
        case.gaps,
        case.offsets,
    )


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_invariant_holds_in_every_case(case: Case) -> None:
    """Offsets strictly increase from the previous position, and the gaps just before a jump
    name exactly the offsets skipped; after the replay the client stands at the room's top, so
    the first live message (top + 1) follows without a gap."""
    replay = replay_for(case)
    top = case.room.top
    if replay.reset:
        assert (replay.gaps, replay.messages) == ((), ())
        return
    if case.since is not None:
        position = case.since[1]
    elif replay.messages:
        position = replay.messages[0].offset - 1  # history: the first replayed one's predecessor
    else:
        position = top  # live only, or nothing to replay: joined's offset
    sequence: list[tuple[str, int, int]] = [("gap", gap.first, gap.last) for gap in replay.gaps]
    sequence += [("msg", stored.offset, stored.offset) for stored in replay.messages]
    seen_msg = False
    for kind, first, last in sequence:
        assert first == position + 1, f"{kind} {first}..{last} after {position}: offsets skipped unannounced"
        assert last >= first
        assert not (kind == "gap" and seen_msg), "a gap comes before the messages, not among them"
        seen_msg = seen_msg or kind == "msg"
        position = last
    assert position == top


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_gaps_name_exactly_what_is_not_retained_then_what_is_over_the_limit(case: Case) -> None:
    replay = replay_for(case)
    reasons = [gap.reason for gap in replay.gaps]
    assert reasons in ([], [TRIMMED], [LIMIT], [TRIMMED, LIMIT])
    for gap in replay.gaps:
        skipped = range(gap.first, gap.last + 1)
        if gap.reason == TRIMMED:
            assert gap.last == case.room.first - 1  # exactly up to the oldest still retained
        else:
            assert all(case.room.first <= n <= case.room.top for n in skipped)  # retained, but too many
    if replay.messages and case.since is not None and case.replay_max:
        assert len(replay.messages) <= case.replay_max
    assert all(gap.reason != LIMIT for gap in replay.gaps) or len(replay.messages) == case.replay_max


def test_want_asks_for_what_follows_since_up_to_replay_max() -> None:
    assert want(7, None, 3) == (7, 3)
    assert want(0, None, 1000) == (0, 1000)


def test_want_with_replay_max_0_asks_for_everything_retained() -> None:
    after, limit = want(7, None, 0)
    assert after == 7
    assert limit >= 2**62


def test_want_for_history_asks_for_the_latest_k() -> None:
    assert want(None, 5, 3) == (0, 5)  # replay_max bounds resumes only
    assert want(None, 0, 3) == (0, 0)


def test_want_for_live_only_asks_for_nothing() -> None:
    assert want(None, None, 1000) == (0, 0)


def test_plan_for_history_and_live_sends_the_window_as_it_is() -> None:
    window = Window(EPOCH, 9, 2, (stored(8), stored(9)))
    assert plan(window, None) == Replay(False, (), (stored(8), stored(9)))


def test_a_reset_carries_nothing_even_when_the_window_has_messages() -> None:
    window = Window(EPOCH, 3, 1, (stored(1), stored(2), stored(3)))
    assert plan(window, ("e-gone", 0)) == Replay(True)
    assert plan(window, (EPOCH, 4)) == Replay(True)
