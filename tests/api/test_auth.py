"""Authentication through the real app, Mongo and Redis: signup, login, refresh, logout,
me, and every way a token can be bad."""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import threading
import time
from datetime import timedelta

import jwt as pyjwt
import pytest
import redis
from argon2 import PasswordHasher
from bson import ObjectId
from flask_jwt_extended import create_access_token

from services.api.app import create_app
from shared.ledger import LedgerReads, wallet_id
from shared.users import set_disabled
from tests.support.error_bodies import assert_error
from tests.support.server_urls import redis_database
from tests.support.users import unique_email

PASSWORD = "correct horse battery"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_tokens_shape(body: dict, email: str) -> None:
    assert set(body) == {"access_token", "refresh_token", "user"}
    assert body["user"]["email"] == email
    assert set(body["user"]) == {"id", "email"}
    assert ObjectId.is_valid(body["user"]["id"]) and len(body["user"]["id"]) == 24


# --- signup -----------------------------------------------------------------------------


def test_signup_answers_tokens_and_creates_user_and_ngn_wallet(client, db):
    email = unique_email()
    response = client.post("/auth/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201
    body = response.get_json()
    _assert_tokens_shape(body, email)
    user = db.users.find_one({"_id": ObjectId(body["user"]["id"])})
    assert user["email"] == email
    assert user["passwordHash"].startswith("$argon2id$")
    assert PASSWORD not in str(user)
    reads = LedgerReads(db)
    account = wallet_id(body["user"]["id"], "NGN")
    assert reads.exists(account)
    wallet = reads.wallet(account)
    assert wallet.balance == 0 and wallet.currency == "NGN"
    me = client.get("/auth/me", headers=_bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.get_json()["email"] == email


def test_signup_trims_and_lowercases_email(client, db):
    local = unique_email().split("@")[0]
    response = client.post(
        "/auth/signup", json={"email": f"  {local.upper()}@Example.COM \t", "password": PASSWORD}
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["user"]["email"] == f"{local}@example.com"
    assert db.users.count_documents({"email": f"{local}@example.com"}) == 1
    login = client.post(
        "/auth/login", json={"email": f"{local.title()}@EXAMPLE.com", "password": PASSWORD}
    )
    assert login.status_code == 200


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "a@",
        "@example.com",
        "two@@example.com",
        "",
        "   ",
        "a b@example.com",
        "x" * 250 + "@example.com",
    ],
)
def test_signup_rejects_invalid_email(client, db, email):
    before = db.users.count_documents({})
    body = assert_error(
        client.post("/auth/signup", json={"email": email, "password": PASSWORD}), 400
    )
    assert "email" in body["details"]
    assert db.users.count_documents({}) == before


@pytest.mark.parametrize("length, status", [(7, 400), (8, 201), (128, 201), (129, 400)])
def test_signup_password_length_bounds(client, length, status):
    response = client.post("/auth/signup", json={"email": unique_email(), "password": "p" * length})
    assert response.status_code == status, response.get_json()
    if status == 400:
        assert "password" in response.get_json()["details"]


def test_signup_taken_email_is_409_even_in_another_case(client, db):
    email = unique_email()
    assert (
        client.post("/auth/signup", json={"email": email, "password": PASSWORD}).status_code == 201
    )
    again = client.post("/auth/signup", json={"email": email.upper(), "password": "other-pass"})
    body = assert_error(again, 409)
    assert "email" in body["message"].lower()
    assert db.users.count_documents({"email": email}) == 1


def test_concurrent_signups_with_one_email_give_one_201_and_409s(app, db):
    email = unique_email()
    racers = 8
    barrier = threading.Barrier(racers)
    statuses: list[int] = []
    bodies: list[dict] = []
    lock = threading.Lock()

    def race() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post("/auth/signup", json={"email": email, "password": PASSWORD})
        with lock:
            statuses.append(response.status_code)
            bodies.append(response.get_json())

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [201] + [409] * (racers - 1), bodies
    assert db.users.count_documents({"email": email}) == 1
    user = db.users.find_one({"email": email})
    assert len(LedgerReads(db).wallets_of(user["_id"])) == 1


# --- login ------------------------------------------------------------------------------


def test_login_answers_same_shape_as_signup(client, signup):
    email = unique_email()
    signup(email, PASSWORD)
    response = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    body = response.get_json()
    _assert_tokens_shape(body, email)
    assert client.get("/auth/me", headers=_bearer(body["access_token"])).status_code == 200


def test_unknown_email_and_wrong_password_give_the_same_401(client, signup):
    email = unique_email()
    signup(email, PASSWORD)
    wrong = assert_error(
        client.post("/auth/login", json={"email": email, "password": "wrong-password"}), 401
    )
    unknown = assert_error(
        client.post("/auth/login", json={"email": unique_email(), "password": PASSWORD}), 401
    )
    assert wrong == unknown


def test_login_of_disabled_user_is_the_same_401(client, db, redis_client, signup):
    email = unique_email()
    signup(email, PASSWORD)
    assert set_disabled(db, redis_client, email, True)
    disabled = assert_error(
        client.post("/auth/login", json={"email": email, "password": PASSWORD}), 401
    )
    unknown = assert_error(
        client.post("/auth/login", json={"email": unique_email(), "password": PASSWORD}), 401
    )
    assert disabled == unknown


def test_login_rehashes_a_hash_made_with_other_parameters(client, db, signup, production_hasher):
    email = unique_email()
    signup(email, PASSWORD)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    db.users.update_one({"email": email}, {"$set": {"passwordHash": weak}})

    assert (
        client.post("/auth/login", json={"email": email, "password": PASSWORD}).status_code == 200
    )
    upgraded = db.users.find_one({"email": email})["passwordHash"]
    assert upgraded != weak
    assert upgraded.startswith("$argon2id$")
    assert not PasswordHasher().check_needs_rehash(upgraded)
    assert (
        client.post("/auth/login", json={"email": email, "password": PASSWORD}).status_code == 200
    )


def test_login_with_current_parameters_keeps_the_hash(client, db, signup, production_hasher):
    email = unique_email()
    signup(email, PASSWORD)
    stored = db.users.find_one({"email": email})["passwordHash"]
    assert (
        client.post("/auth/login", json={"email": email, "password": PASSWORD}).status_code == 200
    )
    assert db.users.find_one({"email": email})["passwordHash"] == stored


def test_wrong_password_does_not_rehash(client, db, signup, production_hasher):
    email = unique_email()
    signup(email, PASSWORD)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    db.users.update_one({"email": email}, {"$set": {"passwordHash": weak}})
    assert_error(client.post("/auth/login", json={"email": email, "password": "nope-nope"}), 401)
    assert db.users.find_one({"email": email})["passwordHash"] == weak


# --- refresh, logout, me ----------------------------------------------------------------


def test_refresh_token_gives_new_working_tokens(client, signup):
    _, body = signup()
    response = client.post("/auth/refresh", headers=_bearer(body["refresh_token"]))
    assert response.status_code == 200
    renewed = response.get_json()
    _assert_tokens_shape(renewed, body["user"]["email"])
    assert renewed["user"]["id"] == body["user"]["id"]
    assert client.get("/auth/me", headers=_bearer(renewed["access_token"])).status_code == 200
    again = client.post("/auth/refresh", headers=_bearer(renewed["refresh_token"]))
    assert again.status_code == 200


def test_refresh_token_is_single_use(client, signup):
    _, body = signup()
    assert client.post("/auth/refresh", headers=_bearer(body["refresh_token"])).status_code == 200
    assert_error(client.post("/auth/refresh", headers=_bearer(body["refresh_token"])), 401)


def test_racing_refreshes_with_one_token_give_one_new_pair(app, signup):
    _, body = signup()
    racers = 6
    barrier = threading.Barrier(racers)
    statuses: list[int] = []

    def race() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post("/auth/refresh", headers=_bearer(body["refresh_token"]))
        statuses.append(response.status_code)

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [401] * (racers - 1)


def test_access_token_cannot_refresh(client, signup):
    _, body = signup()
    error = assert_error(client.post("/auth/refresh", headers=_bearer(body["access_token"])), 401)
    assert "refresh" in error["message"].lower()


def test_refresh_token_is_not_an_access_token(client, signup):
    _, body = signup()
    assert_error(client.get("/auth/me", headers=_bearer(body["refresh_token"])), 401)
    assert_error(client.get("/wallet/balance", headers=_bearer(body["refresh_token"])), 401)


def test_logout_revokes_the_access_token(client, signup):
    headers, _ = signup()
    assert client.get("/auth/me", headers=headers).status_code == 200
    response = client.post("/auth/logout", headers=headers)
    assert response.status_code == 204
    error = assert_error(client.get("/auth/me", headers=headers), 401)
    assert "revoked" in error["message"].lower()
    assert_error(client.post("/auth/logout", headers=headers), 401)


def test_logout_ends_the_whole_session_including_the_refresh_token(client, signup):
    headers, body = signup()
    assert client.post("/auth/logout", headers=headers).status_code == 204
    assert_error(client.post("/auth/refresh", headers=_bearer(body["refresh_token"])), 401)


def test_logout_with_refresh_token_ends_the_session(client, signup):
    headers, body = signup()
    assert client.post("/auth/logout", headers=_bearer(body["refresh_token"])).status_code == 204
    assert_error(client.post("/auth/refresh", headers=_bearer(body["refresh_token"])), 401)
    assert_error(client.get("/auth/me", headers=headers), 401)


def test_logout_of_one_session_leaves_another_alone(client, signup):
    email = unique_email()
    headers, _ = signup(email, PASSWORD)
    other = client.post("/auth/login", json={"email": email, "password": PASSWORD}).get_json()
    assert client.post("/auth/logout", headers=headers).status_code == 204
    assert client.get("/auth/me", headers=_bearer(other["access_token"])).status_code == 200


def test_tokens_after_refresh_are_revoked_by_logout(client, signup):
    _, body = signup()
    renewed = client.post("/auth/refresh", headers=_bearer(body["refresh_token"])).get_json()
    assert client.post("/auth/logout", headers=_bearer(body["access_token"])).status_code == 204
    assert_error(client.get("/auth/me", headers=_bearer(renewed["access_token"])), 401)
    assert_error(client.post("/auth/refresh", headers=_bearer(renewed["refresh_token"])), 401)


def _refused(client, body: dict) -> None:
    """Neither token of this pair works any more."""
    assert_error(client.get("/auth/me", headers=_bearer(body["access_token"])), 401)
    assert_error(client.post("/auth/refresh", headers=_bearer(body["refresh_token"])), 401)


def test_reusing_a_rotated_refresh_token_ends_the_whole_session(client, signup):
    email = unique_email()
    _, first = signup(email, PASSWORD)
    other = client.post("/auth/login", json={"email": email, "password": PASSWORD}).get_json()
    second = client.post("/auth/refresh", headers=_bearer(first["refresh_token"])).get_json()
    assert client.get("/auth/me", headers=_bearer(second["access_token"])).status_code == 200
    # The used refresh token again: someone holds a copy. The newest pair dies with it.
    error = assert_error(client.post("/auth/refresh", headers=_bearer(first["refresh_token"])), 401)
    assert "revoked" in error["message"].lower()
    _refused(client, second)
    _refused(client, first)
    assert client.get("/auth/me", headers=_bearer(other["access_token"])).status_code == 200


def test_logout_all_ends_every_session_of_the_user_only(client, signup):
    email = unique_email()
    _, first = signup(email, PASSWORD)
    login = client.post("/auth/login", json={"email": email, "password": PASSWORD}).get_json()
    refreshed = client.post("/auth/refresh", headers=_bearer(login["refresh_token"])).get_json()
    stranger_headers, _ = signup()
    response = client.post("/auth/logout-all", headers=_bearer(first["access_token"]))
    assert response.status_code == 204
    for pair in (first, refreshed):
        _refused(client, pair)
    assert client.get("/auth/me", headers=stranger_headers).status_code == 200
    again = client.post("/auth/login", json={"email": email, "password": PASSWORD}).get_json()
    assert client.get("/auth/me", headers=_bearer(again["access_token"])).status_code == 200


def test_logout_all_with_a_refresh_token_works_too(client, signup):
    _, body = signup()
    assert (
        client.post("/auth/logout-all", headers=_bearer(body["refresh_token"])).status_code == 204
    )
    _refused(client, body)


@pytest.fixture(scope="module")
def own_redis_app(settings):
    """An app over a Redis database of its own, which a test may flush."""
    url = redis_database(settings.redis_url, "auth")
    app = create_app(dataclasses.replace(settings, redis_url=url))
    return app, redis.Redis.from_url(url)


def test_revocations_survive_a_redis_flush(own_redis_app):
    app, own_redis = own_redis_app
    client = app.test_client()
    email = unique_email()
    body = client.post("/auth/signup", json={"email": email, "password": PASSWORD}).get_json()
    kept = client.post("/auth/login", json={"email": email, "password": PASSWORD}).get_json()
    assert client.post("/auth/logout", headers=_bearer(body["access_token"])).status_code == 204
    own_redis.flushdb()
    _refused(client, body)
    assert client.get("/auth/me", headers=_bearer(kept["access_token"])).status_code == 200
    assert client.post("/auth/logout-all", headers=_bearer(kept["access_token"])).status_code == 204
    own_redis.flushdb()
    _refused(client, kept)


def test_a_session_ends_at_its_maximum_age_whatever_the_refreshes(settings, signup):
    max_age = 2
    app = create_app(dataclasses.replace(settings, session_max_age_seconds=max_age))
    client = app.test_client()
    body = client.post(
        "/auth/signup", json={"email": unique_email(), "password": PASSWORD}
    ).get_json()
    refreshed = client.post("/auth/refresh", headers=_bearer(body["refresh_token"]))
    assert refreshed.status_code == 200
    claims = _claims(refreshed.get_json()["refresh_token"])
    assert claims["exp"] - claims["iat"] <= max_age  # no token outlives its session
    time.sleep(max(claims["exp"] + 0.2 - time.time(), 0))
    _refused(client, refreshed.get_json())


def test_me_answers_the_user(client, signup):
    headers, body = signup()
    response = client.get("/auth/me", headers=headers)
    assert response.status_code == 200
    me = response.get_json()
    assert me["id"] == body["user"]["id"]
    assert me["email"] == body["user"]["email"]
    assert me["role"] == "user"
    assert "passwordHash" not in me and "password" not in json.dumps(me).lower()


def test_token_of_deleted_user_is_401_where_the_user_is_read(client, db, signup):
    """Reads identify the user by the token alone (no product path deletes a user; one
    is locked out with disable-user, tests/api/test_auth_per_request.py)."""
    headers, body = signup()
    db.users.delete_one({"_id": ObjectId(body["user"]["id"])})
    assert_error(client.get("/auth/me", headers=headers), 401)
    assert_error(client.post("/auth/refresh", headers=_bearer(body["refresh_token"])), 401)


def test_token_of_disabled_user_is_401(client, db, redis_client, signup):
    headers, body = signup()
    assert set_disabled(db, redis_client, body["user"]["email"], True)
    assert_error(client.get("/auth/me", headers=headers), 401)
    assert_error(client.get("/wallet/balance", headers=headers), 401)
    assert_error(client.post("/auth/refresh", headers=_bearer(body["refresh_token"])), 401)


# --- bad tokens -------------------------------------------------------------------------


def _b64(data: dict) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(token: str) -> dict:
    return pyjwt.decode(token, options={"verify_signature": False})


def _tampered(token: str, **changes) -> str:
    header, _payload, signature = token.split(".")
    return ".".join([header, _b64({**_claims(token), **changes}), signature])


def _alg_none(token: str) -> str:
    return ".".join([_b64({"alg": "none", "typ": "JWT"}), _b64(_claims(token)), ""])


def _wrong_secret(token: str) -> str:
    return pyjwt.encode(_claims(token), "another-secret-of-enough-length-0123456789", "HS256")


BAD_AUTHORIZATION = {
    "missing": lambda token: None,
    "empty": lambda token: "",
    "no scheme": lambda token: token,
    "basic scheme": lambda token: "Basic dXNlcjpwYXNz",
    "bearer without token": lambda token: "Bearer",
    "bearer blank": lambda token: "Bearer ",
    "two tokens": lambda token: f"Bearer {token} {token}",
    "garbage": lambda token: "Bearer not.a.jwt",
    "one segment": lambda token: "Bearer abcdef",
    "bad base64": lambda token: "Bearer !!!.@@@.###",
    "truncated signature": lambda token: f"Bearer {token[:-5]}",
    "tampered subject": lambda token: f"Bearer {_tampered(token, sub=str(ObjectId()))}",
    "tampered expiry": lambda token: f"Bearer {_tampered(token, exp=4102444800)}",
    "alg none": lambda token: f"Bearer {_alg_none(token)}",
    "wrong secret": lambda token: f"Bearer {_wrong_secret(token)}",
}


@pytest.mark.parametrize("case", list(BAD_AUTHORIZATION))
@pytest.mark.parametrize(
    "method, path", [("GET", "/auth/me"), ("GET", "/wallet/balance"), ("POST", "/auth/logout")]
)
def test_bad_tokens_are_401_in_the_common_shape(client, signup, case, method, path):
    _, body = signup()
    value = BAD_AUTHORIZATION[case](body["access_token"])
    headers = {} if value is None else {"Authorization": value}
    assert_error(client.open(path, method=method, headers=headers), 401)


@pytest.mark.parametrize("case", list(BAD_AUTHORIZATION))
def test_bad_refresh_tokens_are_401(client, signup, case):
    _, body = signup()
    value = BAD_AUTHORIZATION[case](body["refresh_token"])
    headers = {} if value is None else {"Authorization": value}
    assert_error(client.post("/auth/refresh", headers=headers), 401)


def test_expired_token_is_401(app, client, signup):
    _, body = signup()
    with app.app_context():
        expired = create_access_token(
            body["user"]["id"], expires_delta=timedelta(seconds=-30), additional_claims={"sid": "s"}
        )
    error = assert_error(client.get("/auth/me", headers=_bearer(expired)), 401)
    assert "expired" in error["message"].lower()


def test_token_with_a_non_objectid_subject_is_401(app, client):
    with app.app_context():
        token = create_access_token("not-an-object-id", additional_claims={"sid": "s"})
    assert_error(client.get("/auth/me", headers=_bearer(token)), 401)


def test_our_token_without_a_session_id_is_401(app, client, signup):
    _, body = signup()
    with app.app_context():
        token = create_access_token(body["user"]["id"])
    assert_error(client.get("/auth/me", headers=_bearer(token)), 401)
    assert_error(client.post("/auth/logout", headers=_bearer(token)), 401)


def test_access_token_lifetime_follows_settings(settings, signup):
    _, body = signup()
    claims = _claims(body["access_token"])
    assert claims["exp"] - claims["iat"] == settings.access_token_seconds
    assert claims["type"] == "access"
    refresh = _claims(body["refresh_token"])
    assert refresh["exp"] - refresh["iat"] == settings.refresh_token_seconds
    assert refresh["type"] == "refresh"


# --- rate limits ------------------------------------------------------------------------

LOW_LIMIT = 3


@pytest.fixture(scope="module")
def limited_settings(settings):
    limit = f"{LOW_LIMIT} per hour"
    return dataclasses.replace(settings, signup_rate_limit=limit, login_rate_limit=limit)


@pytest.fixture(scope="module")
def limited_app(limited_settings):
    return create_app(limited_settings)


def _from_ip(app, ip: str | None = None):
    """A client whose requests come from their own address, so tests don't share limits."""
    address = ip or f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(256)}"
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _assert_rate_limited(response) -> None:
    body = assert_error(response, 429)
    assert "too many" in body["message"].lower()
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= 3600
    assert response.headers["X-Request-ID"]


def test_signup_is_limited_per_ip(limited_app, db):
    client = _from_ip(limited_app)
    for _ in range(LOW_LIMIT):
        response = client.post("/auth/signup", json={"email": unique_email(), "password": PASSWORD})
        assert response.status_code == 201
    refused = unique_email()
    _assert_rate_limited(client.post("/auth/signup", json={"email": refused, "password": PASSWORD}))
    assert db.users.count_documents({"email": refused}) == 0
    other_ip = _from_ip(limited_app)
    ok = other_ip.post("/auth/signup", json={"email": refused, "password": PASSWORD})
    assert ok.status_code == 201


def test_login_is_limited_per_ip(limited_app):
    client = _from_ip(limited_app)
    for _ in range(LOW_LIMIT):
        response = client.post("/auth/login", json={"email": unique_email(), "password": PASSWORD})
        assert response.status_code == 401
    _assert_rate_limited(
        client.post("/auth/login", json={"email": unique_email(), "password": PASSWORD})
    )


def test_login_is_limited_per_email_across_ips(limited_app):
    email = unique_email()
    assert (
        _from_ip(limited_app)
        .post("/auth/signup", json={"email": email, "password": PASSWORD})
        .status_code
        == 201
    )
    for _ in range(LOW_LIMIT):
        response = _from_ip(limited_app).post(
            "/auth/login", json={"email": email, "password": "wrong-password"}
        )
        assert response.status_code == 401
    last_ip = _from_ip(limited_app)
    # Even the right password, from a fresh address and in another case, is refused now.
    _assert_rate_limited(
        last_ip.post("/auth/login", json={"email": f" {email.upper()}", "password": PASSWORD})
    )
    other = last_ip.post("/auth/login", json={"email": unique_email(), "password": PASSWORD})
    assert other.status_code == 401


def test_signup_is_limited_per_email_across_ips(limited_app):
    email = unique_email()
    statuses = [
        _from_ip(limited_app)
        .post("/auth/signup", json={"email": email, "password": PASSWORD})
        .status_code
        for _ in range(LOW_LIMIT)
    ]
    assert statuses == [201] + [409] * (LOW_LIMIT - 1)
    _assert_rate_limited(
        _from_ip(limited_app).post("/auth/signup", json={"email": email, "password": PASSWORD})
    )


def test_limits_live_in_redis_and_are_shared_between_app_processes(
    limited_app, limited_settings, redis_client
):
    """Two apps over one Redis stand for two gunicorn workers: they share the counts."""
    second_worker = create_app(limited_settings)
    ip = "10.250.0.1"
    clients = [_from_ip(limited_app, ip), _from_ip(second_worker, ip)]
    for attempt in range(LOW_LIMIT):
        response = clients[attempt % 2].post(
            "/auth/login", json={"email": unique_email(), "password": PASSWORD}
        )
        assert response.status_code == 401
    _assert_rate_limited(
        clients[LOW_LIMIT % 2].post(
            "/auth/login", json={"email": unique_email(), "password": PASSWORD}
        )
    )
    assert redis_client.keys(f"*ratelimit/{ip}/auth.login*")


def test_rate_limit_keys_do_not_contain_the_email(limited_app, redis_client):
    email = unique_email()
    _from_ip(limited_app).post("/auth/login", json={"email": email, "password": PASSWORD})
    assert not redis_client.keys(f"*{email}*")
    assert redis_client.keys("*ratelimit/email:*/auth.login*")


def test_the_session_app_keeps_its_high_limits_after_a_low_limit_app_exists(limited_app, app):
    client = _from_ip(app)
    for _ in range(LOW_LIMIT + 2):
        response = client.post("/auth/login", json={"email": unique_email(), "password": PASSWORD})
        assert response.status_code == 401
