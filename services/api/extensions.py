"""Flask extensions, built once per app by the app factory.

Nothing here is a module-level singleton: an extension object keeps per-app state (the
rate-limit storage, the OpenAPI spec), so two apps built with different settings, as the
tests do, must not share one.
"""

from __future__ import annotations

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_smorest import Api


def init_limiter(app: Flask) -> Limiter:
    """Rate limits in the Redis named by RATELIMIT_STORAGE_URI, keyed by client IP."""
    return Limiter(key_func=get_remote_address, app=app, headers_enabled=True)


def init_api(app: Flask) -> Api:
    """The OpenAPI 3 document at /openapi.json and Swagger UI at /docs."""
    api = Api(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    return api
