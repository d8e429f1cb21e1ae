"""Rating: what a call of a given duration costs, in integer minor units.

    cost(t) = connect fee + round(rate per minute x billable(t) / 60)

- billable(t) is the duration rounded UP to the billing increment (60 s bills every
  started minute, 1 s bills per second). A duration of 0 bills nothing but the fee.
- The one money rounding rule: the exact per-minute product is rounded to the minor
  unit half up (0.5 kobo and more rounds up), once, on the whole billable duration,
  never per increment or per block. Everything is integer arithmetic; no float.

Because the rounding applies to the cumulative duration, holds are reserved as
differences of cumulative costs: what is held for T seconds is exactly cost(T), and any
shorter call costs no more than was held.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

SECONDS_PER_MINUTE = 60


def _round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to an integer, halves up (both non-negative)."""
    return (2 * numerator + denominator) // (2 * denominator)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


@dataclass(frozen=True)
class Tariff:
    rate_per_minute: int  # minor units
    connect_fee: int  # minor units, charged once per call
    increment_seconds: int

    def __post_init__(self) -> None:
        if self.increment_seconds <= 0 or self.connect_fee < 0:
            raise ValueError("a tariff needs a positive increment and a non-negative fee")
        # Each increment must cost at least one minor unit, so cost() strictly increases
        # with every increment and a held amount maps back to one duration.
        if self.rate_per_minute * self.increment_seconds < SECONDS_PER_MINUTE:
            raise ValueError("the rate must make one billing increment cost a minor unit")

    def billable_seconds(self, duration_seconds: int) -> int:
        """The duration rounded up to a whole number of increments."""
        if duration_seconds < 0:
            raise ValueError("a duration cannot be negative")
        increments = _ceil_div(duration_seconds, self.increment_seconds)
        return increments * self.increment_seconds

    def cost(self, duration_seconds: int) -> int:
        """What a call of `duration_seconds` (whole seconds) costs."""
        billable = self.billable_seconds(duration_seconds)
        return self.connect_fee + _round_half_up(
            self.rate_per_minute * billable, SECONDS_PER_MINUTE
        )

    def seconds_covered(self, amount: int) -> int:
        """The longest billable duration (whole increments) that `amount` pays for in
        full, fee included; 0 when it pays for no increment at all (or not the fee)."""
        budget = amount - self.connect_fee
        if budget < 0:
            return 0
        # round_half_up(rate * inc * n / 60) <= budget  <=>  rate * inc * n < 60 * budget + 30
        per_increment = self.rate_per_minute * self.increment_seconds
        increments = (SECONDS_PER_MINUTE * budget + SECONDS_PER_MINUTE // 2 - 1) // per_increment
        return increments * self.increment_seconds


def billed_minutes(billable_seconds: int) -> int:
    """Minutes started, as the original API's `duration` reported them."""
    return _ceil_div(billable_seconds, SECONDS_PER_MINUTE)


def split_cost(cost: int, platform_fee_percent: Decimal) -> tuple[int, int]:
    """(receiver's share, platform fee). The fee is rounded half up to the minor unit;
    the receiver gets the rest, so the two always add up to the cost."""
    fee = int(
        (Decimal(cost) * platform_fee_percent / 100).to_integral_value(rounding=ROUND_HALF_UP)
    )
    return cost - fee, fee
