"""Request parsing and responses shared by the simulator's blueprints."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import simplejson
from flask import Response, request

from services.monnify_sim.render import dumps
from services.monnify_sim.state import ApiError
from shared.money import AmountError, to_minor


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(dumps(payload), status=status, mimetype="application/json")


def json_object(*, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object, amounts as Decimal; ApiError 400 for anything else."""
    raw = request.get_data()
    if optional and not raw.strip():
        return {}
    try:
        body = simplejson.loads(raw, use_decimal=True)
    except ValueError:
        raise ApiError(400, "Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return body


def amount_minor(value: Any, name: str) -> int:
    """A major-unit amount (JSON number or numeric string) in minor units."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ApiError(400, f"{name} must be a number")
    try:
        minor = to_minor(Decimal(value) if isinstance(value, str) else value)
    except (InvalidOperation, AmountError):
        raise ApiError(400, f"{name} must be an amount with at most 2 decimal places") from None
    if minor <= 0:
        raise ApiError(400, f"{name} must be greater than zero")
    return minor


def text(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ApiError(400, f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    return value.strip()


def number(body: dict[str, Any], name: str, default: float, *, minimum: float = 0) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ApiError(400, f"{name} must be a number")
    if value < minimum:
        raise ApiError(400, f"{name} must be at least {minimum}")
    return float(value)
