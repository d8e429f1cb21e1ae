"""CURRENCIES is enforced: every route that takes a currency answers 400, in the shape of
a validation error, for one the code knows but this deployment doesn't support, and
changes nothing."""

from __future__ import annotations

import dataclasses

import pytest
from bson import ObjectId

from services.api.app import create_app
from shared.ledger.accounts import open_wallet
from shared.users import set_role
from tests.support.users import unique_email

SUPPORTED = ("NGN",)
OTHER = "USD"  # known to the code (shared/money.py), not enabled here


@pytest.fixture(scope="module")
def ngn_only(settings):
    return create_app(dataclasses.replace(settings, currencies=SUPPORTED)).test_client()


@pytest.fixture(scope="module")
def admin_headers(ngn_only, db):
    email = unique_email()
    body = ngn_only.post("/auth/signup", json={"email": email, "password": "password123"})
    assert set_role(db, email, "admin")
    return {"Authorization": f"Bearer {body.get_json()['access_token']}"}, body.get_json()


def _assert_currency_refused(response) -> None:
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["statusCode"] == 400
    assert body["details"] == {"currency": ["Must be one of: NGN."]}


@pytest.mark.parametrize("path", ["/wallet/balance", "/wallet/transactions"])
def test_reads_in_a_currency_not_enabled_are_400(ngn_only, admin_headers, path):
    headers, _ = admin_headers
    _assert_currency_refused(ngn_only.get(f"{path}?currency={OTHER}", headers=headers))
    assert ngn_only.get(f"{path}?currency=NGN", headers=headers).status_code == 200
    assert ngn_only.get(path, headers=headers).status_code == 200


def test_funding_in_a_currency_not_enabled_is_400_and_starts_nothing(ngn_only, admin_headers, db):
    headers, body = admin_headers
    owner = {"userId": ObjectId(body["user"]["id"])}
    response = ngn_only.post(
        "/wallet/fund", json={"amount": 5000, "currency": OTHER}, headers=headers
    )
    _assert_currency_refused(response)
    assert db.fundings.count_documents(owner) == 0


def test_unrestricting_a_wallet_in_a_currency_not_enabled_is_400_and_records_nothing(
    ngn_only, admin_headers, db
):
    headers, body = admin_headers
    user_id = body["user"]["id"]
    open_wallet(db, ObjectId(user_id), OTHER)  # opened while USD was enabled
    response = ngn_only.post(
        f"/admin/wallets/{user_id}/unrestrict",
        json={"reason": "checked by hand", "currency": OTHER},
        headers=headers,
    )
    _assert_currency_refused(response)
    assert db.admin_actions.count_documents({"target": f"wallet:{user_id}:{OTHER}"}) == 0
