"""Passwords, tokens and the JWT secret never reach the logs: everything logged (stdlib
root and structlog, at DEBUG, in both renderers) across the auth flows is captured and
searched."""

from __future__ import annotations

import dataclasses
import io
import logging
import random
from collections.abc import Iterator

import pytest

from services.api.app import create_app
from shared.logs import configure_logging
from tests.support.users import unique_email

PASSWORD = "Pa55word-that-must-not-leak"


class _RecordKeeper(logging.Handler):
    """Keeps every record whole, so values no formatter prints are searched too."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(repr(record.__dict__) for record in self.records)


def _structured_formatter() -> logging.Formatter:
    for handler in logging.getLogger().handlers:
        if type(handler.formatter).__name__ == "ProcessorFormatter":
            return handler.formatter
    raise AssertionError("configure_logging installed no structured handler on the root")


@pytest.fixture(params=[True, False], ids=["json", "console"])
def captured_logs(request, settings) -> Iterator[tuple[io.StringIO, _RecordKeeper]]:
    configure_logging(json=request.param, level="DEBUG")
    rendered = io.StringIO()
    stream_handler = logging.StreamHandler(rendered)
    stream_handler.setFormatter(_structured_formatter())
    keeper = _RecordKeeper()
    # The root, plus the loggers configure_logging detaches from it.
    loggers = [logging.getLogger(), *map(logging.getLogger, ("gunicorn.error", "celery"))]
    for logger in loggers:
        logger.addHandler(stream_handler)
        logger.addHandler(keeper)
    yield rendered, keeper
    for logger in loggers:
        logger.removeHandler(stream_handler)
        logger.removeHandler(keeper)
    configure_logging(json=settings.log_json, level=settings.log_level)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _run_auth_flows(client, monkeypatch) -> list[str]:
    """Signup, login, refresh, me, logout, failing logins and a crash; returns the secrets
    that went over the wire."""
    email = unique_email()
    signed_up = client.post("/auth/signup", json={"email": email, "password": PASSWORD})
    assert signed_up.status_code == 201
    logged_in = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert logged_in.status_code == 200
    tokens = logged_in.get_json()
    refreshed = client.post("/auth/refresh", headers=_bearer(tokens["refresh_token"]))
    assert refreshed.status_code == 200
    assert client.get("/auth/me", headers=_bearer(tokens["access_token"])).status_code == 200
    assert client.post("/auth/logout", headers=_bearer(tokens["access_token"])).status_code == 204
    revoked = client.get("/auth/me", headers=_bearer(tokens["access_token"]))
    assert revoked.status_code == 401
    wrong = client.post("/auth/login", json={"email": email, "password": PASSWORD + "x"})
    assert wrong.status_code == 401
    short = client.post("/auth/login", json={"email": email, "password": PASSWORD[:5]})
    assert short.status_code == 400
    tampered = tokens["access_token"][:-4] + "AAAA"
    assert client.get("/auth/me", headers=_bearer(tampered)).status_code == 401

    def crash(*_args, **_kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr("services.api.auth.authenticate", crash)
    crashed = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert crashed.status_code == 500
    monkeypatch.undo()

    secrets = [PASSWORD, PASSWORD + "x", PASSWORD[:5]]
    for body in (signed_up.get_json(), tokens, refreshed.get_json()):
        for kind in ("access_token", "refresh_token"):
            secrets.append(body[kind])
            secrets.append(body[kind].rsplit(".", 1)[1])  # the signature alone
    return secrets


def _assert_absent(secrets: list[str], *texts: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret ({secret[:4]}...) was logged"


def test_auth_flows_log_no_password_token_or_secret(client, settings, captured_logs, monkeypatch):
    rendered, keeper = captured_logs
    secrets = [*_run_auth_flows(client, monkeypatch), settings.jwt_secret]
    assert keeper.records, "nothing was captured: the test would prove nothing"
    assert "unhandled_error" in rendered.getvalue()  # the crash was logged, with its trace
    assert "Traceback" in rendered.getvalue()
    _assert_absent(secrets, rendered.getvalue(), keeper.text())


@pytest.fixture(scope="module")
def strictly_limited_app(settings):
    # Built before the logs are captured: building an app configures logging afresh.
    return create_app(dataclasses.replace(settings, login_rate_limit="1 per hour"))


def test_rate_limited_logins_log_no_email_or_password(
    strictly_limited_app, settings, captured_logs
):
    rendered, keeper = captured_logs
    client = strictly_limited_app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"10.99.{random.randrange(256)}.{random.randrange(256)}"
    email = unique_email()
    statuses = [
        client.post("/auth/login", json={"email": email, "password": PASSWORD}).status_code
        for _ in range(2)
    ]
    assert statuses == [401, 429]
    assert "exceeded" in rendered.getvalue()  # flask-limiter logged the breach
    _assert_absent([PASSWORD, email, settings.jwt_secret], rendered.getvalue(), keeper.text())


def test_sensitive_keys_are_masked_in_structured_events(captured_logs):
    from shared.logs import get_logger

    rendered, _ = captured_logs
    get_logger("test").info(
        "probe", password=PASSWORD, access_token="tok-123456", api_key="k-987", user="ok-user"
    )
    output = rendered.getvalue()
    assert "ok-user" in output
    _assert_absent([PASSWORD, "tok-123456", "k-987"], output)
