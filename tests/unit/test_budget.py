"""Output budgets as pure objects (engine/budget.py): the bucket's burst, debt and refill, the
budget shared by one address's connections, its entry released, and the paced wait; on a clock
the test moves."""

from __future__ import annotations

import pytest

from asgi_chat.engine.budget import MIN_PAUSE, Budget, OutputBudgets, SlowDown, client_address
from asgi_chat.ops.security import ConnectionLimits


class FakeClock:
    """Time that moves when the test says, or when the budget sleeps (each sleep recorded)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def budgets(rate: float, address_rate: float, clock: FakeClock) -> OutputBudgets:
    return OutputBudgets(rate, address_rate, clock, clock.sleep)


def refused(budget: Budget) -> float:
    """How long ``budget`` says to wait (it must refuse)."""
    with pytest.raises(SlowDown) as slow_down:
        budget.admit()
    return slow_down.value.seconds


# --- one connection's bucket -------------------------------------------------------------------------


def test_a_new_connection_has_one_second_of_output_then_must_wait() -> None:
    clock = FakeClock()
    with budgets(1000, 0, clock).connection("10.0.0.1") as budget:
        budget.admit()
        budget.charge(600)
        budget.admit()  # 400 left
        budget.charge(400)
        budget.admit()  # exactly spent is not a debt
        budget.charge(250)
        assert refused(budget) == 0.25  # 250 bytes owed at 1000 per second


def test_a_page_larger_than_the_burst_goes_at_once_and_its_excess_is_repaid_before_the_next() -> None:
    clock = FakeClock()
    with budgets(1000, 0, clock).connection("10.0.0.1") as budget:
        budget.admit()  # a full budget lets in a page of any size: nobody knows its size yet
        budget.charge(3500)
        assert refused(budget) == 2.5
        clock.now += 2.0
        assert refused(budget) == 0.5
        clock.now += 0.5
        budget.admit()


def test_the_refill_is_capped_at_one_second_s_worth() -> None:
    clock = FakeClock()
    with budgets(1000, 0, clock).connection("10.0.0.1") as budget:
        clock.now += 3600.0  # an hour idle banks no more than the burst
        budget.charge(1000)
        budget.admit()
        budget.charge(1)
        assert refused(budget) == 0.001


def test_slow_down_says_the_wait_in_milliseconds_rounded_up() -> None:
    assert SlowDown(0.25).retry_ms == 250
    assert SlowDown(0.2501).retry_ms == 251
    assert SlowDown(0.00001).retry_ms == 1  # never "wait 0 ms"


def test_a_wait_of_exactly_retry_ms_is_enough_whatever_the_float_rounding() -> None:
    """retry_ms / 1000 seconds may come out a hair short in floating point (1.001 * 1000 is
    1000.9999999999999): a debt of less than one byte is none, so the wait told is enough."""
    for owed in (1001, 1003, 1601, 4097):
        clock = FakeClock()
        with budgets(1000, 0, clock).connection("") as budget:
            budget.charge(1000 + owed)
            retry_ms = SlowDown(refused(budget)).retry_ms
            clock.now += retry_ms / 1000
            budget.admit()


def test_a_rate_of_0_is_no_budget() -> None:
    clock = FakeClock()
    registry = budgets(0, 0, clock)
    with registry.connection("10.0.0.1") as budget:
        budget.charge(10**9)
        budget.admit()
    assert len(registry) == 0


# --- one address's connections share -----------------------------------------------------------------


def test_connections_from_one_address_share_its_budget_and_another_address_has_its_own() -> None:
    clock = FakeClock()
    registry = budgets(0, 1000, clock)  # the address's budget only
    with (
        registry.connection("10.0.0.1") as first,
        registry.connection("10.0.0.1") as second,
        registry.connection("10.0.0.2") as other,
    ):
        first.charge(1500)
        assert refused(first) == 0.5
        assert refused(second) == 0.5  # it spent nothing itself
        other.admit()
        other.charge(1000)
        other.admit()


def test_a_connection_is_held_to_both_its_own_budget_and_its_address_s() -> None:
    clock = FakeClock()
    registry = budgets(1000, 4000, clock)
    with registry.connection("10.0.0.1") as first, registry.connection("10.0.0.1") as second:
        first.charge(2000)
        assert refused(first) == 1.0  # its own budget, though its address has 2000 left
        second.admit()
    registry = budgets(4000, 1000, clock)
    with registry.connection("10.0.0.1") as first, registry.connection("10.0.0.1") as second:
        first.charge(600)
        second.charge(600)  # each well within its own budget, together 200 over the address's
        assert refused(first) == refused(second) == 0.2
        clock.now += 0.2
        first.admit()
        second.admit()


def test_without_an_address_only_the_connection_s_own_budget_applies() -> None:
    """A Unix socket gives no address; as for the connection limits, nothing is shared then."""
    clock = FakeClock()
    registry = budgets(1000, 1000, clock)
    with registry.connection("") as first, registry.connection("") as second:
        first.charge(1500)
        second.admit()
        assert len(registry) == 0


def test_an_address_entry_lives_while_the_address_has_a_connection() -> None:
    clock = FakeClock()
    registry = budgets(1000, 1000, clock)
    with registry.connection("10.0.0.1") as first:
        first.charge(5000)
        with registry.connection("10.0.0.1"), registry.connection("10.0.0.2"):
            assert len(registry) == 2
        assert len(registry) == 1  # 10.0.0.1 still has a connection: its debt stays
        with registry.connection("10.0.0.1") as again:
            assert refused(again) == 4.0
    assert len(registry) == 0


def test_an_address_entry_is_released_when_the_connection_ends_by_an_exception() -> None:
    registry = budgets(1000, 1000, FakeClock())
    with pytest.raises(ConnectionError), registry.connection("10.0.0.1"):
        raise ConnectionError("gone")
    assert len(registry) == 0


def test_many_addresses_come_and_go_and_nothing_stays() -> None:
    registry = budgets(1000, 1000, FakeClock())
    for n in range(1000):
        with registry.connection(f"10.0.{n // 256}.{n % 256}") as budget:
            budget.charge(10_000)
    assert len(registry) == 0


@pytest.mark.parametrize(
    "client",
    [("203.0.113.7", 50000), ["2001:db8::1", 443], ("::1", 1), None, (), ("unix",)],
)
def test_the_shared_budget_is_keyed_by_the_address_the_connection_limits_count(client: object) -> None:
    limits = ConnectionLimits(max_total=0, max_per_address=0)
    assert client_address(client) == limits.acquire(client)  # type: ignore[arg-type]


# --- waiting ------------------------------------------------------------------------------------------


async def test_wait_turn_sleeps_until_the_debt_is_repaid() -> None:
    clock = FakeClock()
    with budgets(1000, 0, clock).connection("10.0.0.1") as budget:
        await budget.wait_turn()  # not in debt: no sleep
        budget.charge(1500)
        await budget.wait_turn()
        assert clock.slept == [0.5]
        budget.admit()


async def test_wait_turn_sleeps_at_least_min_pause_so_small_lines_do_not_wake_it_each_time() -> None:
    clock = FakeClock()
    with budgets(1000, 0, clock).connection("10.0.0.1") as budget:
        budget.charge(1010)  # 10 bytes owed: 10 ms
        await budget.wait_turn()
        assert clock.slept == [MIN_PAUSE]


async def test_wait_turn_waits_again_when_the_address_s_others_spent_what_refilled() -> None:
    clock = FakeClock()
    registry = budgets(0, 1000, clock)
    with registry.connection("10.0.0.1") as waiting, registry.connection("10.0.0.1") as other:
        waiting.charge(1500)
        original = clock.sleep

        async def sleep_while_the_other_spends(seconds: float) -> None:
            await original(seconds)
            if len(clock.slept) == 1:
                other.charge(200)  # spends the refill before the waiting one wakes

        waiting._sleep = sleep_while_the_other_spends
        await waiting.wait_turn()
        assert clock.slept == [0.5, 0.2]
        waiting.admit()
