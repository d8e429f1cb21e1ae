"""JSON in and out without floats: numbers with a fraction parse as Decimal, and Decimal
is written back as a JSON number. NaN and Infinity are refused."""

from __future__ import annotations

from typing import Any

import simplejson
from flask.json.provider import JSONProvider


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def loads_exact(data: str | bytes) -> Any:
    return simplejson.loads(data, use_decimal=True, parse_constant=_reject_constant)


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


class ExactJSONProvider(JSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return simplejson.dumps(obj, use_decimal=True, default=_default, ignore_nan=False)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads_exact(s)
