"""Strict JSON parsing for everything that reads a client's or Monnify's bytes: numbers
with a fraction parse as Decimal, never float; NaN and Infinity are refused; so are
strings no UTF-8 consumer can take, and bodies nested past the recursion limit."""

from __future__ import annotations

from typing import Any

import simplejson


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _require_encodable_strings(value: Any) -> None:
    """A `\\ud800` escape parses to a lone surrogate, which no UTF-8 consumer (argon2,
    BSON, logs) can take; encoding raises UnicodeEncodeError, a ValueError."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            _require_encodable_strings(key)
            _require_encodable_strings(item)
    elif isinstance(value, list):
        for item in value:
            _require_encodable_strings(item)


def loads_exact(data: str | bytes) -> Any:
    """Parse JSON; every malformed input, including one nested past the interpreter's
    recursion limit, raises ValueError so callers answer 400."""
    try:
        value = simplejson.loads(data, use_decimal=True, parse_constant=_reject_constant)
        _require_encodable_strings(value)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    return value
