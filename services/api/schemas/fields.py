"""Fields shared by many schemas: money in major units, MongoDB ObjectIds, and strings
from a fixed set (documented as an enum)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bson import ObjectId
from marshmallow import ValidationError, fields, validate

from shared.money import DEFAULT_EXPONENT, AmountError, to_major, to_minor


class Money(fields.Field):
    """A positive amount in major units on the wire, an int in minor units in Python.

    Accepts JSON numbers only (the JSON parser hands us int or Decimal, never float);
    strings, booleans, floats, NaN/Infinity, more than two decimals, zero, negatives and
    amounts outside [minimum_minor, maximum_minor] are refused with the rule they break.
    Bounds that come from configuration are checked where the settings are at hand
    (`shared.money.check_amount_bounds`). Documented in OpenAPI as a number with its
    bounds; the 2-decimal precision is said in the description, not as `multipleOf: 0.01`,
    which JSON Schema validators evaluate in binary floating point (19.99 fails it).
    An answer's amount may be zero: its schema says so with `minimum_minor=0`.
    """

    def __init__(self, *, maximum_minor: int | None = None, minimum_minor: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.maximum_minor = maximum_minor
        self.minimum_minor = minimum_minor
        self.metadata.setdefault("type", "number")
        self.metadata.setdefault("minimum", to_major(minimum_minor))
        if maximum_minor is not None:
            self.metadata.setdefault("maximum", to_major(maximum_minor))
        said = self.metadata.get("description")
        self.metadata["description"] = f"{said}. {PRECISION}" if said else PRECISION
        self.metadata.setdefault("example", 5000)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise ValidationError("must be a number (major units, e.g. 5000 or 49.99)")
        try:
            minor = to_minor(value)
        except AmountError as exc:
            raise ValidationError(str(exc)) from None
        if minor <= 0:
            raise ValidationError("must be greater than zero")
        if minor < self.minimum_minor:
            raise ValidationError(f"must be at least {to_major(self.minimum_minor)}")
        if self.maximum_minor is not None and minor > self.maximum_minor:
            raise ValidationError(f"must be at most {to_major(self.maximum_minor)}")
        return minor

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        return to_major(int(value))


PRECISION = f"Major units, at most {DEFAULT_EXPONENT} decimal places"
OBJECT_ID_PATTERN = "^[0-9a-fA-F]{24}$"


class ObjectIdField(fields.Field):
    """A MongoDB ObjectId written as a 24-character hex string."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.metadata.setdefault("type", "string")
        self.metadata.setdefault("pattern", OBJECT_ID_PATTERN)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> ObjectId:
        if not isinstance(value, str) or len(value) != 24 or not ObjectId.is_valid(value):
            raise ValidationError("must be a 24-character hex id")
        return ObjectId(value.lower())

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else str(value)


def one_of(choices: tuple[str, ...], **kwargs: Any) -> fields.String:
    """A string from a fixed set: checked on input, an enum in the OpenAPI document."""
    return fields.String(validate=validate.OneOf(choices), **kwargs)
