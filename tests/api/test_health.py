"""Liveness, readiness (against the session's real servers, with and without a worker),
the OpenAPI document and Swagger UI."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time

import pytest

from services.api.app import create_app
from shared.task_queues import CALLS, HOUSEKEEPING, PAYMENTS, QUEUES
from tests.support.server_urls import redis_database


def test_healthz_is_200(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.fixture(scope="module")
def app_without_worker(settings):
    """The app over the session's Mongo and Redis, but with its queue in a Redis database
    no worker consumes (the session may run an in-process worker on the default one)."""
    return create_app(
        dataclasses.replace(settings, redis_url=redis_database(settings.redis_url, "health"))
    )


def test_readyz_is_200_without_any_worker(app_without_worker):
    """Workers down must not pull the API (and webhook intake) out of service."""
    response = app_without_worker.test_client().get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "status": "ready",
        "checks": {"mongo": "ok", "transactions": "ok", "redis": "ok"},
    }


def test_readyz_workers_is_503_naming_every_queue_without_a_worker(app_without_worker):
    response = app_without_worker.test_client().get("/readyz/workers")
    assert response.status_code == 503
    body = response.get_json()
    assert (body["statusCode"], body["error"]) == (503, "Service Unavailable")
    assert body["message"] == f"Not ready: {', '.join(QUEUES)} failing"
    assert body["details"] == dict.fromkeys(QUEUES, "failing: WorkerAbsent")


def test_readyz_workers_names_only_the_queue_whose_worker_is_missing(
    app_without_worker, test_env, db
):
    """A payments worker (as `make run` and compose name it) answers for its queue only."""
    redis_url = app_without_worker.extensions["settings"].redis_url
    env = {**os.environ, **test_env, "REDIS_URL": redis_url}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "services.worker.celery_app", "worker",
         "--pool", "solo", "-Q", PAYMENTS, "-n", f"{PAYMENTS}@readyz-test"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        details = {}
        for _ in range(60):  # until the worker is up, at most about a minute
            details = app_without_worker.test_client().get("/readyz/workers").get_json()
            if details.get("details", {}).get(PAYMENTS) == "ok":
                break
            time.sleep(1)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert details["details"] == {**dict.fromkeys(QUEUES, "failing: WorkerAbsent"), PAYMENTS: "ok"}
    assert details["message"] == f"Not ready: {CALLS}, {HOUSEKEEPING} failing"


def test_readyz_names_redis_when_it_is_down(settings):
    closed = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    app = create_app(dataclasses.replace(settings, redis_url=closed), check_database=False)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["message"] == "Not ready: redis failing"
    assert body["details"]["mongo"] == "ok"
    assert body["details"]["redis"].startswith("failing")
    workers = app.test_client().get("/readyz/workers")
    assert workers.status_code == 503, "a broker that is down fails every queue, never a 500"


# --- OpenAPI ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec(app) -> dict:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def _schema(spec: dict, ref_holder: dict) -> dict:
    ref = ref_holder["content"]["application/json"]["schema"]["$ref"]
    return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def _response(spec: dict, operation: dict, status: str) -> dict:
    response = operation["responses"][status]
    if "$ref" in response:
        return spec["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    return response


def test_openapi_is_version_3_with_the_auth_paths(spec):
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"]
    for path, method in [
        ("/auth/signup", "post"),
        ("/auth/login", "post"),
        ("/auth/refresh", "post"),
        ("/auth/logout", "post"),
        ("/auth/me", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ]:
        assert method in spec["paths"][path], path


@pytest.mark.parametrize("path, status", [("/auth/signup", "201"), ("/auth/login", "200")])
def test_credentials_and_tokens_schemas_are_documented(spec, path, status):
    operation = spec["paths"][path]["post"]
    credentials = _schema(spec, operation["requestBody"])
    assert set(credentials["required"]) == {"email", "password"}
    assert credentials["properties"]["email"]["format"] == "email"
    password = credentials["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (8, 128)
    assert credentials["additionalProperties"] is False
    tokens = _schema(spec, operation["responses"][status])
    assert {"access_token", "refresh_token", "user"} <= set(tokens["properties"])


def test_error_responses_document_the_common_error_shape(spec):
    signup = spec["paths"]["/auth/signup"]["post"]
    for status in ("400", "409", "429"):
        error = _schema(spec, _response(spec, signup, status))
        assert set(error["properties"]) == {"statusCode", "error", "code", "message", "details"}
    login = spec["paths"]["/auth/login"]["post"]
    assert "401" in login["responses"]


@pytest.mark.parametrize(
    "path, method", [("/auth/me", "get"), ("/auth/refresh", "post"), ("/auth/logout", "post")]
)
def test_token_routes_document_bearer_security_and_401(spec, path, method):
    operation = spec["paths"][path][method]
    assert operation["security"] == [{"bearerAuth": []}]
    assert "401" in operation["responses"]
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


@pytest.mark.parametrize(
    "path, body",
    [
        ("/healthz", {"status"}),
        ("/readyz", {"status", "checks"}),
        ("/readyz/workers", {"status", "checks"}),
    ],
)
def test_health_answers_are_documented_as_themselves_not_as_errors(spec, path, body):
    """Found by schemathesis: a 200 matched only the `default` (error) response."""
    responses = spec["paths"][path]["get"]["responses"]
    assert set(_schema(spec, responses["200"])["required"]) == body
    if path.startswith("/readyz"):
        error = _schema(spec, _response(spec, spec["paths"][path]["get"], "503"))
        assert set(error["required"]) == {"statusCode", "error", "code", "message"}


def test_docs_serves_swagger_ui(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "swagger-ui" in page and "openapi.json" in page
