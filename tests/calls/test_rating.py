"""Rating: the cost of a call by duration, increment, connect fee and rate, in kobo."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.calls.rating import Tariff, billed_minutes, split_cost

PER_MINUTE = Tariff(rate_per_minute=5000, connect_fee=0, increment_seconds=60)  # 50 NGN/min
PER_SECOND = Tariff(rate_per_minute=5000, connect_fee=0, increment_seconds=1)
WITH_FEE = Tariff(rate_per_minute=5000, connect_fee=1000, increment_seconds=60)


@pytest.mark.parametrize(
    ("tariff", "seconds", "cost"),
    [
        # per started minute, as the original billed
        (PER_MINUTE, 0, 0),
        (PER_MINUTE, 1, 5000),
        (PER_MINUTE, 59, 5000),
        (PER_MINUTE, 60, 5000),
        (PER_MINUTE, 61, 10000),
        (PER_MINUTE, 3600, 300000),
        (PER_MINUTE, 4 * 3600 + 1, 240 * 5000 + 5000),
        # per second: 5000 / 60 = 83.33... kobo a second, rounded once on the total
        (PER_SECOND, 0, 0),
        (PER_SECOND, 1, 83),  # 83.33 -> 83
        (PER_SECOND, 59, 4917),  # 4916.67 -> 4917
        (PER_SECOND, 60, 5000),
        (PER_SECOND, 61, 5083),  # 5083.33 -> 5083
        (PER_SECOND, 3601, 300083),
        # a connect fee is charged once, even for zero billable seconds
        (WITH_FEE, 0, 1000),
        (WITH_FEE, 1, 6000),
        (WITH_FEE, 59, 6000),
        (WITH_FEE, 60, 6000),
        (WITH_FEE, 61, 11000),
        (WITH_FEE, 7200, 601000),
    ],
)
def test_rating_table(tariff, seconds, cost):
    assert tariff.cost(seconds) == cost


@pytest.mark.parametrize(
    ("rate", "increment", "seconds", "cost"),
    [
        (101, 1, 1, 2),  # 1.683 -> 2
        (150, 1, 1, 3),  # 2.5 exactly: half rounds up
        (90, 1, 1, 2),  # 1.5 -> 2
        (90, 1, 2, 3),  # 3.0, rounded on the total, not 2 + 2 per second
        (4999, 1, 30, 2500),  # 2499.5 -> 2500
        (4999, 60, 30, 4999),  # a started minute
        (333, 30, 31, 333),  # 2 half-minutes of 166.5 -> 333, not 167 + 167
        (333, 30, 29, 167),  # 166.5 -> 167
    ],
)
def test_odd_rates_round_half_up_on_the_whole_duration(rate, increment, seconds, cost):
    assert Tariff(rate, 0, increment).cost(seconds) == cost


@pytest.mark.parametrize(("seconds", "minutes"), [(0, 0), (1, 1), (60, 1), (61, 2), (3600, 60)])
def test_billed_minutes_are_minutes_started(seconds, minutes):
    assert billed_minutes(seconds) == minutes


def test_billable_seconds_round_up_to_the_increment():
    assert [PER_MINUTE.billable_seconds(s) for s in (0, 1, 60, 61, 120)] == [0, 60, 60, 120, 120]
    assert [PER_SECOND.billable_seconds(s) for s in (0, 1, 61)] == [0, 1, 61]


def test_seconds_covered_examples():
    assert PER_MINUTE.seconds_covered(4999) == 0
    assert PER_MINUTE.seconds_covered(5000) == 60
    assert PER_MINUTE.seconds_covered(14999) == 120
    assert PER_SECOND.seconds_covered(83) == 1
    assert PER_SECOND.seconds_covered(500) == 6  # 6 s cost 500 exactly
    assert WITH_FEE.seconds_covered(999) == 0  # not even the fee
    assert WITH_FEE.seconds_covered(5999) == 0  # the fee but no minute
    assert WITH_FEE.seconds_covered(6000) == 60


tariffs = st.builds(
    Tariff,
    rate_per_minute=st.integers(min_value=60, max_value=10**6),
    connect_fee=st.integers(min_value=0, max_value=10**5),
    increment_seconds=st.sampled_from([1, 6, 30, 60]),
)


@given(tariffs, st.integers(min_value=0, max_value=10**8))
def test_seconds_covered_is_the_longest_duration_the_amount_pays_for(tariff, amount):
    covered = tariff.seconds_covered(amount)
    assert covered % tariff.increment_seconds == 0
    if covered:
        assert tariff.cost(covered) <= amount
    assert tariff.cost(covered + tariff.increment_seconds) > amount


@given(tariffs, st.integers(min_value=0, max_value=10**6))
def test_a_hold_for_t_seconds_covers_every_shorter_call_and_maps_back_to_t(tariff, seconds):
    reserved = tariff.billable_seconds(seconds)
    held = tariff.cost(reserved)
    assert tariff.seconds_covered(held) == reserved
    assert all(tariff.cost(s) <= held for s in (0, seconds // 2, max(seconds - 1, 0), seconds))


def test_a_rate_too_small_for_the_increment_is_refused():
    with pytest.raises(ValueError):
        Tariff(rate_per_minute=59, connect_fee=0, increment_seconds=1)


@pytest.mark.parametrize(
    ("cost", "percent", "split"),
    [
        (5000, Decimal(20), (4000, 1000)),
        (83, Decimal(20), (66, 17)),  # fee 16.6 -> 17
        (5, Decimal(10), (4, 1)),  # fee 0.5 -> 1: half up
        (0, Decimal(20), (0, 0)),
        (999, Decimal("12.5"), (874, 125)),  # 124.875 -> 125
        (777, Decimal(0), (777, 0)),
        (777, Decimal(100), (0, 777)),
    ],
)
def test_split_pays_the_receiver_the_cost_less_the_fee(cost, percent, split):
    assert split_cost(cost, percent) == split
    assert sum(split) == cost
