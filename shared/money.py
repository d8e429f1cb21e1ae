"""Money: integers in minor units (kobo, cents) everywhere; major units only at the edges.

The API speaks major units as JSON numbers (`49.99`), parsed as Decimal, never float.
"""

from __future__ import annotations

from decimal import Decimal

from shared.errors import InvalidRequest

# Minor units per major unit, as a power of ten. NGN: kobo; USD: cents.
CURRENCY_EXPONENTS: dict[str, int] = {"NGN": 2, "USD": 2}
DEFAULT_EXPONENT = 2


class AmountError(ValueError):
    """An amount breaks one of the money rules; the message says which."""


def to_minor(amount: Decimal | int, exponent: int = DEFAULT_EXPONENT) -> int:
    """Convert an exact major-unit amount to minor units, refusing anything inexact."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise AmountError("must be a number")
    value = Decimal(amount)
    if not value.is_finite():
        raise AmountError("must be a finite number")
    scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise AmountError(f"must have at most {exponent} decimal places")
    return int(scaled)


def to_major(minor: int, exponent: int = DEFAULT_EXPONENT) -> int | Decimal:
    """Minor units to a major-unit number for JSON: a whole int when exact, else a Decimal."""
    if minor % (10**exponent) == 0:
        return minor // (10**exponent)
    return Decimal(minor).scaleb(-exponent)


def exponent_of(currency: str) -> int:
    return CURRENCY_EXPONENTS.get(currency, DEFAULT_EXPONENT)


def check_amount_bounds(minor: int, minimum: int, maximum: int, field: str = "amount") -> None:
    """Raise a 400-class error naming the bound an amount breaks (bounds from configuration)."""
    if minor < minimum:
        rule = f"must be at least {to_major(minimum)}"
    elif minor > maximum:
        rule = f"must be at most {to_major(maximum)}"
    else:
        return
    raise InvalidRequest(f"Validation failed: {field}: {rule}", {field: [rule]})
