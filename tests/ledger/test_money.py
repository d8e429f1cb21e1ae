"""Money conversions: exact major-unit numbers to integer minor units and back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import InvalidRequest
from shared.money import MAX_MINOR, AmountError, check_amount_bounds, to_major, to_minor


@pytest.mark.parametrize(
    "amount, minor",
    [
        (Decimal("49.99"), 4999),
        (Decimal("49.990"), 4999),
        (Decimal("0.01"), 1),
        (Decimal("5000"), 500000),
        (5000, 500000),
        (Decimal("1E+2"), 10000),
        (Decimal("0"), 0),
        (Decimal("-12.5"), -1250),
        (Decimal("92233720368547758.07"), MAX_MINOR),
    ],
)
def test_exact_amounts_convert(amount, minor):
    assert to_minor(amount) == minor


@pytest.mark.parametrize(
    "amount, rule",
    [
        (Decimal("49.999"), "at most 2 decimal places"),
        (Decimal("0.001"), "at most 2 decimal places"),
        (Decimal("1.0000000000000000000000000000001"), "at most 2 decimal places"),
        (Decimal("1E-999999999"), "at most 2 decimal places"),
        (Decimal("NaN"), "finite"),
        (Decimal("sNaN"), "finite"),
        (Decimal("Infinity"), "finite"),
        (Decimal("-Infinity"), "finite"),
        (Decimal("92233720368547758.08"), "between"),
        (Decimal("1E+999999999"), "between"),
        (-(10**30), "between"),
        ("49.99", "must be a number"),
        (49.99, "must be a number"),
        (True, "must be a number"),
        (False, "must be a number"),
        (None, "must be a number"),
    ],
)
def test_inexact_or_non_numbers_are_refused_naming_the_rule(amount, rule):
    with pytest.raises(AmountError, match=rule):
        to_minor(amount)


def test_many_trailing_zeros_are_still_exact():
    assert to_minor(Decimal("49.99" + "0" * 5000)) == 4999


@pytest.mark.parametrize(
    "minor, major",
    [
        (4999, Decimal("49.99")),
        (500000, 5000),
        (1, Decimal("0.01")),
        (0, 0),
        (-150, Decimal("-1.5")),
    ],
)
def test_to_major(minor, major):
    assert to_major(minor) == major
    assert isinstance(to_major(minor), int) == (minor % 100 == 0)


@given(st.integers(min_value=-MAX_MINOR, max_value=MAX_MINOR))
def test_round_trip_is_exact(minor):
    assert to_minor(Decimal(to_major(minor))) == minor


def test_check_amount_bounds_names_the_bound():
    check_amount_bounds(2000, 2000, 10_000)
    with pytest.raises(InvalidRequest, match="at least 20") as low:
        check_amount_bounds(1999, 2000, 10_000)
    assert low.value.details == {"amount": ["must be at least 20"]}
    with pytest.raises(InvalidRequest, match="at most 100"):
        check_amount_bounds(10_001, 2000, 10_000)
