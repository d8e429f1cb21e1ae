"""Gateway conventions: every bad input is a clear 4xx in the one error shape and changes
nothing; unknown routes, wrong methods, oversized and non-JSON bodies, and unexpected
exceptions answer in that shape too; request ids are accepted or generated and echoed."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from services.api.app import create_app
from services.embedded import free_port
from tests.support.error_bodies import assert_error
from tests.support.users import unique_email

AUTH_BODY_PATHS = ["/auth/signup", "/auth/login"]
GOOD_PASSWORD = "password123"


@pytest.fixture()
def unchanged(db):
    """Asserts, after the test, that no user, account or entry was written."""
    collections = ["users", "accounts", "entries", "holds"]
    before = {name: db[name].count_documents({}) for name in collections}
    yield
    assert {name: db[name].count_documents({}) for name in collections} == before


# Each case: a JSON body, the status, and a field the details must name (None: whole body).
BAD_BODIES = {
    "email wrong type": ({"email": 12345, "password": GOOD_PASSWORD}, "email"),
    "email boolean": ({"email": True, "password": GOOD_PASSWORD}, "email"),
    "email list": ({"email": ["a@example.com"], "password": GOOD_PASSWORD}, "email"),
    "email null": ({"email": None, "password": GOOD_PASSWORD}, "email"),
    "password number": ({"email": "a@example.com", "password": 12345678}, "password"),
    "password null": ({"email": "a@example.com", "password": None}, "password"),
    "missing password": ({"email": "a@example.com"}, "password"),
    "missing email": ({"password": GOOD_PASSWORD}, "email"),
    "empty object": ({}, "email"),
    "extra field": ({"email": "a@example.com", "password": GOOD_PASSWORD, "role": "admin"}, "role"),
    "huge password": ({"email": "a@example.com", "password": "p" * 20_000}, "password"),
    "huge email": ({"email": "a" * 20_000 + "@example.com", "password": GOOD_PASSWORD}, "email"),
    "huge number": ({"email": "a@example.com", "password": 10**300}, "password"),
    "operator in email": ({"email": {"$gt": ""}, "password": GOOD_PASSWORD}, "email"),
    "operator in password": ({"email": "a@example.com", "password": {"$ne": None}}, "password"),
    "operators in both": ({"email": {"$ne": "x"}, "password": {"$ne": "x"}}, "email"),
    "regex operator": ({"email": {"$regex": ".*"}, "password": GOOD_PASSWORD}, "email"),
    "operator as key": (
        {"email": "a@example.com", "password": GOOD_PASSWORD, "$where": "1"},
        "$where",
    ),
    "body is a list": ([{"email": "a@example.com", "password": GOOD_PASSWORD}], "_schema"),
    "body is a string": ("a@example.com", "_schema"),
    "body is null": (None, "_schema"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
@pytest.mark.parametrize("path", AUTH_BODY_PATHS)
def test_bad_bodies_are_400_naming_the_field(client, unchanged, path, case):
    body, field = BAD_BODIES[case]
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    error = assert_error(response, 400)
    assert field in error["details"], error
    assert field in error["message"]


RAW_BAD_JSON = {
    "truncated": b'{"email": "a@example.com", "password": ',
    "trailing garbage": b'{"email": "a@example.com", "password": "password123"} x',
    "single quotes": b"{'email': 'a@example.com'}",
    "NaN": b'{"email": "a@example.com", "password": NaN}',
    "Infinity": b'{"email": "a@example.com", "password": Infinity}',
    "invalid utf-8": b'{"email": "\xff\xfe@example.com", "password": "password123"}',
    "lone surrogate": b'{"email": "a@example.com", "password": "\\ud800password"}',
    "too many digits": b'{"email": "a@example.com", "password": ' + b"9" * 5000 + b"}",
    "nested too deeply": b"[" * 20_000 + b"]" * 20_000,
    "only whitespace": b"   ",
}


@pytest.mark.parametrize("case", list(RAW_BAD_JSON))
@pytest.mark.parametrize("path", AUTH_BODY_PATHS)
def test_malformed_json_is_400(client, unchanged, path, case):
    response = client.post(path, data=RAW_BAD_JSON[case], content_type="application/json")
    error = assert_error(response, 400)
    assert "json" in error["message"].lower()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        None,
    ],
)
@pytest.mark.parametrize("path", AUTH_BODY_PATHS)
def test_non_json_bodies_are_415(client, unchanged, path, content_type):
    body = json.dumps({"email": unique_email(), "password": GOOD_PASSWORD})
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(path, data=body, headers=headers)
    error = assert_error(response, 415)
    assert "json" in error["message"].lower()


def test_form_posts_are_415(client, unchanged):
    response = client.post("/auth/signup", data={"email": unique_email(), "password": "x" * 9})
    assert_error(response, 415)


def test_json_with_charset_is_accepted(client):
    response = client.post(
        "/auth/signup",
        data=json.dumps({"email": unique_email(), "password": GOOD_PASSWORD}),
        content_type="application/json; charset=utf-8",
    )
    assert response.status_code == 201


@pytest.mark.parametrize("path", AUTH_BODY_PATHS)
def test_body_over_the_limit_is_413(client, settings, unchanged, path):
    padding = "p" * (settings.max_body_bytes + 1)
    response = client.post(path, json={"email": unique_email(), "password": padding})
    error = assert_error(response, 413)
    assert "too large" in error["message"].lower()


def test_body_at_the_limit_is_read(client, settings, unchanged):
    """Just under the limit: the body is parsed (and refused for its password length)."""
    template = json.dumps({"email": "a@example.com", "password": ""})
    padding = "p" * (settings.max_body_bytes - len(template))
    body = json.dumps({"email": "a@example.com", "password": padding})
    assert len(body) == settings.max_body_bytes
    response = client.post("/auth/login", data=body, content_type="application/json")
    assert "password" in assert_error(response, 400)["details"]


def test_operator_login_does_not_log_anyone_in(client, signup, unchanged):
    response = client.post("/auth/login", json={"email": {"$ne": ""}, "password": {"$ne": ""}})
    assert_error(response, 400)
    assert "access_token" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "method, path",
    [("GET", "/nope"), ("POST", "/auth/nope"), ("GET", "/auth"), ("GET", "/healthz/extra")],
)
def test_unknown_routes_are_404(client, method, path):
    assert_error(client.open(path, method=method), 404)


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("GET", "/auth/signup", "POST"),
        ("PUT", "/auth/login", "POST"),
        ("DELETE", "/healthz", "GET"),
        ("POST", "/auth/me", "GET"),
        ("PATCH", "/wallet/balance", "GET"),
    ],
)
def test_wrong_methods_are_405_with_allow(client, method, path, allowed):
    response = client.open(path, method=method)
    assert_error(response, 405)
    assert allowed in response.headers["Allow"]


def test_unexpected_exception_is_a_bare_500(client, monkeypatch, unchanged):
    def explode(*_args, **_kwargs):
        raise RuntimeError("internal detail: mongodb://admin:hunter2@db/")

    monkeypatch.setattr("services.api.auth.create_user", explode)
    response = client.post(
        "/auth/signup",
        json={"email": unique_email(), "password": GOOD_PASSWORD},
        headers={"X-Request-ID": "trace-500"},
    )
    error = assert_error(response, 500)
    text = response.get_data(as_text=True)
    assert "hunter2" not in text and "RuntimeError" not in text and "explode" not in text
    assert error["message"] == "Internal server error; the request was not completed"
    assert response.headers["X-Request-ID"] == "trace-500"


def test_redis_out_of_reach_is_a_503_to_retry_not_a_500(settings, db, unchanged):
    """Redis restarting or stalled: nothing listens on its port for a moment."""
    down = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = create_app(down).test_client()

    response = client.post(
        "/auth/signup", json={"email": unique_email(), "password": GOOD_PASSWORD}
    )

    error = assert_error(response, 503)
    assert error["message"] == "A service the API depends on is unavailable; retry shortly"
    assert response.headers["Retry-After"] == "1"


# --- request ids ------------------------------------------------------------------------

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.mark.parametrize(
    "incoming", ["abc-123", "req_01HZX.9:trace", "a" * 128, "7f3c2b1a-0000-4000-8000-000000000000"]
)
def test_well_formed_request_id_is_echoed(client, incoming):
    response = client.get("/healthz", headers={"X-Request-ID": incoming})
    assert response.headers["X-Request-ID"] == incoming


@pytest.mark.parametrize(
    "incoming", ["", "a" * 129, "has space", "semi;colon", 'quote"', "<script>", "naïve"]
)
def test_malformed_request_id_is_replaced(client, incoming):
    response = client.get("/healthz", headers={"X-Request-ID": incoming})
    assert GENERATED_ID.match(response.headers["X-Request-ID"])
    assert response.headers["X-Request-ID"] != incoming


def test_request_id_is_generated_and_unique(client):
    ids = {client.get("/healthz").headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5
    assert all(GENERATED_ID.match(request_id) for request_id in ids)


@pytest.mark.parametrize(
    "method, path, kwargs, status",
    [
        ("GET", "/nope", {}, 404),
        ("GET", "/auth/signup", {}, 405),
        ("POST", "/auth/signup", {"data": "x", "content_type": "text/plain"}, 415),
        ("POST", "/auth/signup", {"json": {"email": "bad"}}, 400),
        ("GET", "/auth/me", {}, 401),
        (
            "POST",
            "/auth/login",
            {"json": {"email": "a@example.com", "password": "p" * 70_000}},
            413,
        ),
    ],
)
def test_errors_echo_the_request_id(client, method, path, kwargs, status):
    response = client.open(path, method=method, headers={"X-Request-ID": "err-trace-1"}, **kwargs)
    assert_error(response, status)
    assert response.headers["X-Request-ID"] == "err-trace-1"


def test_responses_are_not_cached(client, signup):
    headers, _ = signup()
    assert client.get("/auth/me", headers=headers).headers["Cache-Control"] == "no-store"
