"""The gateway's app factory."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from werkzeug.middleware.proxy_fix import ProxyFix

from services.api import (
    admin,
    auth,
    calls,
    health,
    live_events,
    payments,
    users,
    wallet,
    withdrawals,
)
from services.api.errors import error_response, register_error_handlers
from services.api.extensions import init_api, init_limiter
from services.api.json_provider import ExactJSONProvider
from services.api.metrics import init_metrics
from services.api.tokens import configure_jwt
from shared.indexes import require_indexes
from shared.logs import bind_request_id, configure_logging
from shared.mongo import check_transactions, get_db
from shared.redis_url import limiter_storage
from shared.settings import Settings, load_settings
from shared.tracing import configure_tracing

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BODY_METHODS = ("POST", "PUT", "PATCH")


def create_app(settings: Settings | None = None, *, check_database: bool = True) -> Flask:
    settings = settings or load_settings()
    limiter_uri, limiter_options = limiter_storage(settings.redis_url)
    configure_logging(json=settings.log_json, level=settings.log_level)
    configure_tracing(
        "payments-api", settings.otel_exporter_otlp_endpoint, settings.otel_traces_sample_ratio
    )

    app = Flask(__name__)
    app.json = ExactJSONProvider(app)
    app.extensions["settings"] = settings
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="Payment Call System API",
        API_VERSION="1.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        RATELIMIT_STORAGE_URI=limiter_uri,
        RATELIMIT_STORAGE_OPTIONS=limiter_options,
        RATELIMIT_KEY_PREFIX="ratelimit",
        RATELIMIT_HEADERS_ENABLED=True,
    )
    # First, so that every answer (a 429 from the limiter too) carries the request id.
    app.before_request(_start_request)
    app.after_request(_finish_request)
    init_metrics(app)
    # Probes and scrapes would be most of the traces and say nothing.
    FlaskInstrumentor().instrument_app(app, excluded_urls="healthz,readyz,metrics")
    # After the tracing middleware, so that it wraps it: spans see the real client too.
    _trust_proxies(app, settings.trusted_proxy_count)
    configure_jwt(app)
    api = init_api(app)
    for module in (health, auth, wallet, payments, calls, users, live_events, admin, withdrawals):
        api.register_blueprint(module.blp)
    init_limiter(app)  # after the blueprints: it wraps their views
    register_error_handlers(app)

    if check_database:
        db = get_db(settings.database_url)
        check_transactions(db)
        require_indexes(db)  # built by `python -m services.manage migrate`, never here
    return app


def _trust_proxies(app: Flask, count: int) -> None:
    """Behind `count` reverse proxies, the client is the address the outermost one saw:
    rate limits, the webhook allow-list, logs and generated URLs read `remote_addr`,
    `scheme` and `host`, which ProxyFix takes from the last `count` X-Forwarded-* values.
    With none, those headers are whatever the client wrote, so they are ignored."""
    if count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)


def _start_request() -> tuple[Response, int] | None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    bind_request_id(g.request_id)
    has_body = (request.content_length or 0) > 0 or request.headers.get("Transfer-Encoding")
    if request.method in _BODY_METHODS and has_body and not request.is_json:
        return error_response(415, "Request bodies must be JSON (Content-Type: application/json)")
    return None


def _finish_request(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id", "")
    response.headers.setdefault("Cache-Control", "no-store")
    return response
