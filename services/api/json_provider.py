"""JSON in and out without floats: bodies parse with shared.exact_json (Decimal, no NaN),
and Decimal is written back as a JSON number."""

from __future__ import annotations

from typing import Any

import simplejson
from flask.json.provider import JSONProvider

from shared.exact_json import loads_exact


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


class ExactJSONProvider(JSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return simplejson.dumps(obj, use_decimal=True, default=_default, ignore_nan=False)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads_exact(s)
