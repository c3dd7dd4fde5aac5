"""The client's reconnect policy (asgi_chat/client/backoff.py): full jitter within its bounds, the
cap, the tries allowed, and which close codes and handshake answers mean "come back later"; and
when a live connection's token is refreshed."""

from __future__ import annotations

import random
import statistics

import pytest

from asgi_chat.client.backoff import Backoff, Verdict, handshake_verdict, refresh_in, verdict

POLICY = Backoff(base=0.5, cap=20.0, attempts=12)


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [
        (0, 0.5),
        (1, 1.0),
        (2, 2.0),
        (5, 16.0),
        (6, 20.0),  # 32 s capped
        (40, 20.0),
        (10_000, 20.0),  # no OverflowError however long it has been failing
    ],
)
def test_the_ceiling_doubles_with_each_attempt_up_to_the_cap(attempt: int, ceiling: float) -> None:
    assert POLICY.ceiling(attempt) == ceiling


@pytest.mark.parametrize("attempt", [0, 1, 3, 6, 50])
def test_full_jitter_stays_within_zero_and_the_ceiling_and_spreads_over_it(attempt: int) -> None:
    rng = random.Random(attempt)
    ceiling = POLICY.ceiling(attempt)
    delays = [POLICY.delay(attempt, rng) for _ in range(2000)]
    assert all(0.0 <= delay <= ceiling for delay in delays)
    # Full jitter, not "equal jitter": the whole range is used, the low half included, and the
    # mean is half the ceiling (a uniform draw), so clients a restart dropped together spread out.
    assert min(delays) < ceiling * 0.05
    assert max(delays) > ceiling * 0.95
    assert statistics.mean(delays) == pytest.approx(ceiling / 2, rel=0.05)


def test_two_clients_do_not_retry_in_step() -> None:
    first, second = random.Random(1), random.Random(2)
    assert [POLICY.delay(n, first) for n in range(5)] != [POLICY.delay(n, second) for n in range(5)]


@pytest.mark.parametrize(
    ("attempts", "failures", "exhausted"),
    [(12, 0, False), (12, 11, False), (12, 12, True), (1, 1, True), (None, 10**6, False)],
)
def test_attempts_bound_the_tries_in_a_row(attempts: int | None, failures: int, exhausted: bool) -> None:
    assert Backoff(attempts=attempts).exhausted(failures) is exhausted


@pytest.mark.parametrize(
    "fields",
    [{"base": 0.0}, {"base": -1.0}, {"base": 2.0, "cap": 1.0}, {"attempts": 0}],
)
def test_a_backoff_that_cannot_work_is_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"base|attempts"):
        Backoff(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (1001, "", Verdict.RETRY),  # going away: a server or proxy stopping
        (1006, "", Verdict.RETRY),  # no close frame: a lost network, a killed server
        (1011, "", Verdict.RETRY),  # server error
        (1012, "", Verdict.RETRY),  # service restart: uvicorn's close as it restarts
        (1013, "slow consumer", Verdict.RETRY),  # try again later
        (1014, "", Verdict.RETRY),  # bad gateway
        (1008, "too many messages: the limit is 20 per second", Verdict.RETRY),  # the rate: slower, then back
        (1008, "origin not allowed", Verdict.STOP),  # any other policy would refuse again
        (1008, "", Verdict.STOP),
        (1000, "", Verdict.STOP),  # asgi_chat's "nothing at this path"
        (1002, "", Verdict.STOP),  # protocol error
        (1003, "text frames only", Verdict.STOP),
        (1007, "", Verdict.STOP),
        (1009, "message too big", Verdict.STOP),
        (4001, "token expired", Verdict.REFRESH),  # identity: a new token, then back
        (4401, "unauthorized", Verdict.STOP),
        (4403, "disconnected by a moderator", Verdict.STOP),
        (4999, "", Verdict.STOP),  # a code this client does not know: do not hammer
    ],
)
def test_the_close_code_says_whether_to_come_back(code: int, reason: str, expected: Verdict) -> None:
    assert verdict(code, reason) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (503, Verdict.RETRY),  # the room store out of reach, or shutting down
        (502, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (403, Verdict.STOP),  # origin, subprotocol, credentials: refused again
        (404, Verdict.STOP),
        (401, Verdict.STOP),
        (400, Verdict.STOP),
    ],
)
def test_the_handshake_status_says_whether_to_come_back(status: int, expected: Verdict) -> None:
    assert handshake_verdict(status) is expected


@pytest.mark.parametrize(
    ("remaining", "refresh_after"),
    [
        (3.0, 2.0),  # a third of its life before expiry
        (90.0, 60.0),
        (180.0, 120.0),  # a third is a minute: still a minute before
        (600.0, 540.0),  # a 10-minute token: a minute before, not 200 s
        (86_400.0, 86_340.0),
        (0.0, 0.0),  # expiring now: at once
        (-5.0, 0.0),  # already past (a slow clock, a long get_token): at once, never a negative wait
    ],
)
def test_a_token_is_refreshed_a_third_of_its_remaining_life_before_expiry_at_most_a_minute(
    remaining: float, refresh_after: float
) -> None:
    now = 1_700_000_000.0
    assert refresh_in(int((now + remaining) * 1000), now) == pytest.approx(refresh_after)
