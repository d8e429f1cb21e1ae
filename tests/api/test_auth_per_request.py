"""What every authenticated request checks, now that it reads no user: disabling a user
(shared.users.set_disabled, `python -m services.manage disable-user`) refuses its tokens
on every gateway process from the next request, also when Redis has lost the markers;
revocation works as before; routes that need the whole user read it; a token verified
once is still refused when it expires."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token

from services.api.app import create_app
from services.api.tokens import NO_USER_MESSAGE
from shared.users import DISABLED_MARKER, DISABLED_MARKERS_SYNCED, set_disabled

READS = ("/wallet/balance", "/wallet/transactions", "/calls/history", "/auth/me")


def _message(response, status: int) -> str:
    assert response.status_code == status, response.get_json()
    return response.get_json()["message"]


@pytest.fixture(scope="module")
def other_process(settings):
    """A second app over the same servers: another gunicorn worker or instance."""
    return create_app(settings).test_client()


def test_a_disabled_user_is_refused_from_the_next_request_everywhere(
    client, other_process, db, redis_client, signup
):
    headers, body = signup()
    for path in READS:
        assert client.get(path, headers=headers).status_code == 200
        assert other_process.get(path, headers=headers).status_code == 200

    assert set_disabled(db, redis_client, body["user"]["email"], True)

    for app_client in (client, other_process):
        for path in READS:
            assert _message(app_client.get(path, headers=headers), 401) == NO_USER_MESSAGE
    refresh = {"Authorization": f"Bearer {body['refresh_token']}"}
    assert _message(client.post("/auth/refresh", headers=refresh), 401) == NO_USER_MESSAGE
    assert db.users.find_one({"email": body["user"]["email"]})["disabled"] is True


def test_enabling_again_lets_the_same_tokens_in(client, db, redis_client, signup):
    headers, body = signup()
    assert set_disabled(db, redis_client, body["user"]["email"], True)
    _message(client.get("/wallet/balance", headers=headers), 401)
    assert set_disabled(db, redis_client, body["user"]["email"], False)
    assert client.get("/wallet/balance", headers=headers).status_code == 200
    assert client.get("/auth/me", headers=headers).get_json()["email"] == body["user"]["email"]


def test_unknown_email_disables_nobody(db, redis_client):
    assert not set_disabled(db, redis_client, "nobody-at-all@example.com", True)


def test_markers_lost_by_redis_are_written_again_from_mongo(client, db, redis_client, signup):
    headers, body = signup()
    assert set_disabled(db, redis_client, body["user"]["email"], True)
    marker = DISABLED_MARKER + body["user"]["id"]
    redis_client.delete(marker, DISABLED_MARKERS_SYNCED)  # as after a restart without data

    assert _message(client.get("/wallet/balance", headers=headers), 401) == NO_USER_MESSAGE
    assert redis_client.exists(marker, DISABLED_MARKERS_SYNCED) == 2


def test_routes_that_need_the_whole_user_read_it_from_mongo(client, db, redis_client, signup):
    """A marker lost alone (the synced flag still there): every route that reads the
    user (me, refresh, rates, admin) still finds it disabled in Mongo."""
    headers, body = signup()
    assert set_disabled(db, redis_client, body["user"]["email"], True)
    redis_client.delete(DISABLED_MARKER + body["user"]["id"])
    refresh = {"Authorization": f"Bearer {body['refresh_token']}"}

    assert _message(client.get("/auth/me", headers=headers), 401) == NO_USER_MESSAGE
    assert _message(client.get("/users/me/rate", headers=headers), 401) == NO_USER_MESSAGE
    assert _message(client.get("/admin/webhooks", headers=headers), 401) == NO_USER_MESSAGE
    assert _message(client.post("/auth/refresh", headers=refresh), 401) == NO_USER_MESSAGE


def test_the_whole_user_is_there_for_routes_that_use_it(client, signup):
    headers, body = signup()
    me = client.get("/auth/me", headers=headers).get_json()
    assert me["id"] == body["user"]["id"] and me["email"] == body["user"]["email"]
    assert me["role"] == "user" and me["createdAt"]
    rate = client.put("/users/me/rate", json={"ratePerMinute": 7}, headers=headers)
    assert rate.get_json()["ratePerMinute"] == 7
    assert client.delete("/users/me/rate", headers=headers).get_json()["isDefault"] is True
    refresh = {"Authorization": f"Bearer {body['refresh_token']}"}
    renewed = client.post("/auth/refresh", headers=refresh).get_json()
    assert renewed["user"] == body["user"]


def test_revocation_is_unchanged(client, signup):
    headers, body = signup()
    assert client.post("/auth/logout", headers=headers).status_code == 204
    for path in READS:
        assert _message(client.get(path, headers=headers), 401) == "Token has been revoked"
    refresh = {"Authorization": f"Bearer {body['refresh_token']}"}
    assert _message(client.post("/auth/refresh", headers=refresh), 401) == "Token has been revoked"


def test_manage_cli_disables_and_enables(client, signup, test_env, db):
    headers, body = signup()
    email = body["user"]["email"]
    env = {**os.environ, **test_env}

    def manage(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "services.manage", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    disabled = manage("disable-user", email.upper())
    assert disabled.returncode == 0, disabled.stderr
    _message(client.get("/wallet/balance", headers=headers), 401)
    assert manage("enable-user", email).returncode == 0
    assert client.get("/wallet/balance", headers=headers).status_code == 200
    actions = [a["action"] for a in db.admin_actions.find({"target": email}).sort("at", 1)]
    assert actions == ["disable_user", "enable_user"]
    unknown = manage("disable-user", "nobody@example.com")
    assert unknown.returncode == 1 and "no user" in unknown.stderr


def test_a_token_verified_before_is_refused_once_expired(app, client, signup):
    _, body = signup()
    session = pyjwt.decode(body["access_token"], options={"verify_signature": False})
    with app.app_context():
        token = create_access_token(
            body["user"]["id"],
            expires_delta=timedelta(seconds=3),
            additional_claims={"sid": session["sid"], "sv": session["sv"]},
        )
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/wallet/balance", headers=headers).status_code == 200
    expires = pyjwt.decode(token, options={"verify_signature": False})["exp"]
    time.sleep(max(expires + 0.2 - time.time(), 0))
    assert _message(client.get("/wallet/balance", headers=headers), 401) == "Token has expired"
