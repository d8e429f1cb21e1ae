"""flask-smorest Blueprint whose argument parser answers 400 (not webargs' 422) and parses
JSON bodies exactly (Decimal, never float), and whose OpenAPI document says what every
route does without each route repeating it: an `operationId` (`<blueprint>_<view>`) on
every operation, and bearer security with its 401 on every view behind `jwt_required`,
however that was applied (a bare `@jwt_required()` too)."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, ClassVar

import flask
import flask_smorest
import marshmallow as ma
from flask_jwt_extended import jwt_required
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from services.api.errors import ErrorSchema
from services.api.schemas.fields import OBJECT_ID_PATTERN
from shared.errors import ErrorCode, InvalidRequest
from shared.exact_json import loads_exact

BEARER = [{"bearerAuth": []}]
LINK_HEADER = {
    "Link": {
        "description": 'The next page: `<url>; rel="next"`; absent on the last page',
        "schema": {"type": "string"},
    }
}
RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 0},
    }
}


def object_id_parameter(name: str) -> dict[str, Any]:
    """A path parameter that is an ObjectId (any other value is a 4xx, never a match)."""
    schema = {"type": "string", "pattern": OBJECT_ID_PATTERN}
    return {"in": "path", "name": name, "required": True, "schema": schema}


def requires_token(view: Callable[..., Any]) -> bool:
    """Whether flask-jwt-extended's `jwt_required` wraps the view, at any depth: every
    decorator here keeps `__wrapped__` (functools.wraps). functools.wraps renames the
    wrapper, not its code, so the code's qualified name tells whose wrapper it is."""
    while view is not None:
        code = getattr(view, "__code__", None)
        if code is not None and code.co_qualname.startswith("jwt_required."):
            return True
        view = getattr(view, "__wrapped__", None)
    return False


class ExactParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400
    # Unknown query parameters are errors too, not silently dropped.
    DEFAULT_UNKNOWN_BY_LOCATION: ClassVar[dict[str, str | None]] = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
    }

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            return core.missing
        body = req.get_data(cache=True)
        if not body:
            return core.missing
        try:
            return loads_exact(body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest(
                "The body is not valid JSON", code=ErrorCode.INVALID_JSON
            ) from None


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = ExactParser()

    def errors(self, *statuses: HTTPStatus):
        """Document the error answers a route may give (in the common error shape)."""

        def decorator(view):
            for status in statuses:
                view = self.alt_response(status.value, response=status.name)(view)
            return view

        return decorator

    def token_required(self, **jwt_options: Any):
        """`jwt_required(**jwt_options)`; its documentation is added when the route is."""
        return jwt_required(**jwt_options)

    def _store_endpoint_docs(self, endpoint, obj, parameters, tags, **options):
        """flask-smorest's hook as a route is declared, with the view as decorated: what
        the view does (its token check) decides what its operations declare."""
        super()._store_endpoint_docs(endpoint, obj, parameters, tags, **options)
        for method, doc in self._docs[endpoint].items():
            if method == "parameters":
                continue
            manual = doc.setdefault("manual_doc", {})
            manual.setdefault("operationId", f"{self.name}_{endpoint}")
            responses = doc.setdefault("response", {}).setdefault("responses", {})
            if requires_token(obj):
                manual.setdefault("security", BEARER)
                responses.setdefault(HTTPStatus.UNAUTHORIZED.value, ["UNAUTHORIZED"])
            if HTTPStatus.TOO_MANY_REQUESTS.value in responses:
                responses[HTTPStatus.TOO_MANY_REQUESTS.value] = [_too_many_requests()]


def _too_many_requests() -> dict[str, Any]:
    """A 429 says when to come back (flask-limiter's Retry-After). A new dict each time:
    flask-smorest consumes it."""
    return {
        "description": HTTPStatus.TOO_MANY_REQUESTS.phrase,
        "schema": ErrorSchema,
        "headers": RETRY_AFTER_HEADER,
        "content_type": None,
    }
