"""Flask extensions, built once per app by the app factory, and the rate-limit
declarations that views make at import time.

No extension object is a module-level singleton: each keeps per-app state (the rate-limit
storage, the OpenAPI spec), so two apps built with different settings, as the tests do,
must not share one. Views declare their limits on `limiter` (a plain registry); the app
factory binds the declarations to that app's flask-limiter instance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_qualified_name, get_remote_address
from flask_smorest import Api

from services.api.errors import ErrorSchema

View = TypeVar("View", bound=Callable[..., Any])


class RateLimits:
    """`@limiter.limit(...)` and `@limiter.exempt` on a view, remembered until an app binds
    them. Arguments are those of flask-limiter's `Limiter.limit`."""

    def __init__(self) -> None:
        self._limits: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
        self._exempt: set[str] = set()

    def limit(self, limit_value: Any, **options: Any) -> Callable[[View], View]:
        def declare(view: View) -> View:
            self._limits.setdefault(get_qualified_name(view), []).append((limit_value, options))
            return view

        return declare

    def exempt(self, view: View) -> View:
        self._exempt.add(get_qualified_name(view))
        return view

    def bind(self, app: Flask, limiter: Limiter) -> None:
        """Apply the declarations to the app's registered views. flask-limiter checks a
        limit in the wrapper it puts around a view, so the views are replaced by those."""
        for endpoint, view in list(app.view_functions.items()):
            name = get_qualified_name(view)
            if name in self._exempt:
                limiter.exempt(view)
            for limit_value, options in self._limits.get(name, []):
                view = limiter.limit(limit_value, **options)(view)
            app.view_functions[endpoint] = view


limiter = RateLimits()


def init_limiter(app: Flask) -> Limiter:
    """This app's rate limiter, storing counts in RATELIMIT_STORAGE_URI (Redis) so that all
    gunicorn workers share them, keyed by client IP unless a limit says otherwise."""
    app_limiter = Limiter(key_func=get_remote_address, app=app, headers_enabled=True)
    limiter.bind(app, app_limiter)
    return app_limiter


class _Api(Api):
    ERROR_SCHEMA = ErrorSchema  # documents our error shape, not flask-smorest's

    def _register_pagination_header(self) -> None:
        """None: pages are keyset cursors in a Link header, not flask-smorest's pagination
        (whose header would leave an unused PaginationMetadata schema in the document)."""


def init_api(app: Flask) -> Api:
    """The OpenAPI 3 document at /openapi.json and Swagger UI at /docs."""
    api = _Api(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    return api
