"""Money: integers in minor units (kobo, cents) everywhere; major units only at the edges.

The API speaks major units as JSON numbers (`49.99`), parsed as Decimal, never float.
"""

from __future__ import annotations

from decimal import Context, Decimal, Inexact

from shared.errors import ErrorCode, InvalidRequest

# Minor units per major unit, as a power of ten. NGN: kobo; USD: cents.
CURRENCY_EXPONENTS: dict[str, int] = {"NGN": 2, "USD": 2}
DEFAULT_EXPONENT = 2
# The largest amount MongoDB stores as a 64-bit integer; also keeps a tiny JSON number
# like 1e999999999 from becoming a gigantic Python int.
MAX_MINOR = 2**63 - 1
# Enough digits for any amount up to MAX_MINOR with room to spare; a conversion that
# would lose a non-zero digit signals Inexact instead of rounding silently.
_EXACT = Context(prec=100, traps=[Inexact])


class AmountError(ValueError):
    """An amount breaks one of the money rules; the message says which."""


def to_minor(amount: Decimal | int, exponent: int = DEFAULT_EXPONENT) -> int:
    """Convert an exact major-unit amount to minor units, refusing anything inexact."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise AmountError("must be a number")
    value = Decimal(amount)
    if not value.is_finite():
        raise AmountError("must be a finite number")
    if value.copy_abs() > Decimal(MAX_MINOR).scaleb(-exponent):
        bound = to_major(MAX_MINOR, exponent)
        raise AmountError(f"must lie between -{bound} and {bound}")
    decimals_rule = f"must have at most {exponent} decimal places"
    try:
        scaled = value.scaleb(exponent, context=_EXACT)
    except Inexact:
        raise AmountError(decimals_rule) from None
    if scaled != scaled.to_integral_value():
        raise AmountError(decimals_rule)
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
    raise InvalidRequest(
        f"Validation failed: {field}: {rule}", {field: [rule]}, code=ErrorCode.VALIDATION_ERROR
    )
