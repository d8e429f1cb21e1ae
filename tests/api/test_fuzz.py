"""Schemathesis over the app's own OpenAPI document, in process (WSGI): every operation of
the document (one test each: the committed docs/openapi.json names them, and
test_openapi_document keeps it equal to what the app serves, so a new route is fuzzed
as soon as it is documented) gets generated requests, valid and invalid, with a
signed-up admin's bearer token. Every answer must be no 5xx and exactly what the document
says: status, content type, headers, body schema (so error codes from the documented
list).

Bounded for `make test` (FUZZ_EXAMPLES of each kind per operation, derandomised so a run
is repeatable); `make fuzz` runs it at length with random cases.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import timedelta

import pytest
import schemathesis
from flask import Flask
from flask_jwt_extended import create_access_token
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.api.openapi import COMMITTED
from services.api.tokens import issue_tokens
from shared.users import find_active_user, set_role
from tests.support.users import unique_email

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))
FUZZ_RANDOM = os.environ.get("FUZZ_RANDOM", "") == "1"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# The session runs one worker for every queue, not a `<queue>@host` node per queue, so the
# workers' readiness answers its documented 503; it is checked against the document only.
WORKER_READINESS = "/readyz/workers"

# The event stream's body lasts as long as its token: one that expires in a moment ends
# it (with its `expired` event), so the stream is fuzzed like any route.
STREAM_TOKEN_SECONDS = 1


def _cases() -> list[tuple[str, GenerationMode, int]]:
    """Every operation with valid requests, and those that take input with invalid ones
    too, FUZZ_EXAMPLES of each; an operation without input is asked once."""
    document = json.loads(COMMITTED.read_text())
    cases = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            label = f"{method.upper()} {path}"
            if "parameters" in item or "parameters" in operation or "requestBody" in operation:
                cases.append((label, GenerationMode.POSITIVE, FUZZ_EXAMPLES))
                cases.append((label, GenerationMode.NEGATIVE, FUZZ_EXAMPLES))
            else:
                cases.append((label, GenerationMode.POSITIVE, 1))
    return cases


@pytest.fixture(scope="module")
def api_schema(app: Flask, monnify_sim, celery_worker):
    """The document as the app serves it; the simulator is Monnify for /wallet/fund, and
    a worker answers /readyz's ping."""
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


@pytest.fixture(scope="module")
def fuzz_user(app: Flask, db) -> dict:
    """An admin, so the admin routes are fuzzed past their 403."""
    email = unique_email()
    response = app.test_client().post(
        "/auth/signup", json={"email": email, "password": "password123"}
    )
    assert response.status_code == 201, response.get_json()
    assert set_role(db, email, "admin")
    return find_active_user(db, response.get_json()["user"]["id"])


@pytest.fixture(scope="module")
def bearer(app: Flask, fuzz_user: dict) -> Callable[[str], dict[str, str]]:
    """The Authorization header for a case of a path: fresh tokens each time, so a fuzzed
    logout or refresh never leaves the cases after it without a session."""

    def header_for(path: str) -> dict[str, str]:
        with app.app_context():
            tokens = issue_tokens(fuzz_user)
            token = tokens["access_token"]
            if path == "/auth/refresh":
                token = tokens["refresh_token"]
            elif path == "/wallet/events":
                token = create_access_token(
                    identity=str(fuzz_user["_id"]),
                    additional_claims={"sid": "fuzz"},
                    expires_delta=timedelta(seconds=STREAM_TOKEN_SECONDS),
                )
        return {"Authorization": f"Bearer {token}"}

    return header_for


@pytest.mark.parametrize("label, mode, examples", _cases())
def test_every_operation_answers_as_documented(api_schema, bearer, label, mode, examples):
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=not FUZZ_RANDOM,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case) -> None:
        checks = CHECKS[1:] if path == WORKER_READINESS else CHECKS
        case.call_and_validate(headers=bearer(path), checks=checks)

    answers_as_documented()
