"""flask-smorest Blueprint whose argument parser answers 400 (not webargs' 422) and parses
JSON bodies exactly (Decimal, never float)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar

import flask
import flask_smorest
import marshmallow as ma
from flask_jwt_extended import jwt_required
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from shared.exact_json import loads_exact


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
            flask_smorest.abort(400, message="The body is not valid JSON")


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
        """`jwt_required(**jwt_options)` and its documentation: bearer security, a 401."""

        def decorator(view):
            view = jwt_required(**jwt_options)(view)
            view = self.errors(HTTPStatus.UNAUTHORIZED)(view)
            return self.doc(security=[{"bearerAuth": []}])(view)

        return decorator
