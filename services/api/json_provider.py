"""JSON in and out without floats: numbers with a fraction parse as Decimal, and Decimal
is written back as a JSON number. NaN and Infinity are refused."""

from __future__ import annotations

from typing import Any

import simplejson
from flask.json.provider import JSONProvider


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


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


class ExactJSONProvider(JSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return simplejson.dumps(obj, use_decimal=True, default=_default, ignore_nan=False)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads_exact(s)
