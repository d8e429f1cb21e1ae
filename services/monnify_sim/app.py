"""The simulator's app factory."""

from __future__ import annotations

from flask import Flask, Response, request

from services.monnify_sim import (
    api,
    checkout,
    control,
    disbursements,  # noqa: F401 (adds routes to api's and control's)
    reserved_accounts,
)
from services.monnify_sim.config import SimConfig, load_sim_config
from services.monnify_sim.delivery import Dispatcher
from services.monnify_sim.http import json_response
from services.monnify_sim.simulator import EXTENSION, Simulator
from services.monnify_sim.state import ApiError, SimState

MAX_BODY_BYTES = 65536

# Nested once, at import: the reserved-account routes sit behind /api's token check,
# faults and error envelope, and under /sim's error shape.
api.blp.register_blueprint(reserved_accounts.api_blp)
control.blp.register_blueprint(reserved_accounts.control_blp)


def create_app(config: SimConfig | None = None) -> Flask:
    config = config or load_sim_config()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions[EXTENSION] = Simulator(config, SimState(config), Dispatcher(config))
    for module in (api, control, checkout):
        app.register_blueprint(module.blp)
    app.register_error_handler(404, _not_found)
    app.register_error_handler(405, _method_not_allowed)
    app.get("/health")(_health)
    return app


def _health() -> Response:
    return json_response({"status": "ok"})


def _not_found(_error: Exception) -> Response:
    return _error_for_path(ApiError(404, f"No such endpoint: {request.path}"))


def _method_not_allowed(_error: Exception) -> Response:
    return _error_for_path(ApiError(405, f"{request.method} is not allowed on {request.path}"))


def _error_for_path(error: ApiError) -> Response:
    """Unknown paths under /api answer in Monnify's envelope, the rest in plain JSON."""
    if request.path.startswith("/api/"):
        return api.error_envelope(error)
    return json_response({"statusCode": error.status, "message": error.message}, error.status)
