"""Admin operations over real HTTP: only the admin role gets in, the role is granted by
the command-line tool, and every action is recorded with who, what, when and why."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests
from bson import ObjectId
from pymongo.errors import OperationFailure

from services.manage import change_disabled, change_role
from shared import audit
from shared.ledger.accounts import wallet_id
from shared.users import DISABLED_MARKER
from tests.support.funding_support import notification, pay, post_signed
from tests.support.polling import wait_until
from tests.support.users import signup

ADMIN_ROUTES = [
    ("GET", "/admin/webhooks"),
    ("POST", f"/admin/webhooks/{ObjectId()}/requeue"),
    ("POST", f"/admin/wallets/{ObjectId()}/unrestrict"),
    ("POST", "/admin/fundings/FND-x/refunds"),
    ("GET", "/admin/reconciliation"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_refuse_anonymous_and_non_admin_callers(gateway, method, path):
    body = {"reason": "because"}
    anonymous = requests.request(method, f"{gateway}{path}", json=body, timeout=10)
    assert anonymous.status_code == 401
    user = signup(gateway)
    refused = requests.request(
        method, f"{gateway}{path}", json=body, headers=user.headers, timeout=10
    )
    assert refused.status_code == 403
    assert refused.json()["message"] == "This operation needs the admin role"


def test_the_role_is_read_on_every_request(gateway, db):
    user = signup(gateway)
    assert user.get("/admin/webhooks").status_code == 403
    assert change_role(db, "grant-admin", user.email)
    assert user.get("/admin/webhooks").status_code == 200  # the same token
    assert change_role(db, "revoke-admin", user.email)
    assert user.get("/admin/webhooks").status_code == 403
    actions = list(db.admin_actions.find({"target": user.email}).sort("at", 1))
    assert [a["action"] for a in actions] == ["grant_admin", "revoke_admin"]
    assert all(a["actor"].startswith("cli:") and a["at"] for a in actions)


def test_manage_cli_grants_and_revokes(gateway, db, test_env):
    user = signup(gateway)
    env = {**os.environ, **test_env}

    def manage(*args):
        return subprocess.run(
            [sys.executable, "-m", "services.manage", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    granted = manage("grant-admin", user.email.upper())
    assert granted.returncode == 0, granted.stderr
    assert db.users.find_one({"email": user.email})["role"] == "admin"
    assert manage("revoke-admin", user.email).returncode == 0
    assert db.users.find_one({"email": user.email})["role"] == "user"
    unknown = manage("grant-admin", "nobody@example.com")
    assert unknown.returncode == 1 and "no user" in unknown.stderr


def test_the_public_api_cannot_grant_the_role(gateway, db):
    response = requests.post(
        f"{gateway}/auth/signup",
        json={"email": f"{ObjectId()}@example.com", "password": "password123", "role": "admin"},
        timeout=10,
    )
    assert response.status_code == 400


def _unmatched_event(gateway, settings, db) -> str:
    reference = f"FND-{ObjectId()}"
    unknown = {"transactionReference": f"MNFY|{reference}", "paymentReference": reference}
    assert post_signed(gateway, notification(unknown, 100), settings.monnify_secret_key).ok
    event = wait_until(
        lambda: db.webhook_events.find_one({"paymentReference": reference}),
        lambda event: event is not None and event["status"] == "unmatched",
    )
    return str(event["_id"])


def test_webhook_review_queue_lists_and_requeues(gateway, settings, db, admin):
    event_id = _unmatched_event(gateway, settings, db)
    listed = admin.get("/admin/webhooks", params={"status": "unmatched", "limit": 200})
    assert listed.status_code == 200
    assert event_id in [event["id"] for event in listed.json()]
    assert {event["status"] for event in listed.json()} == {"unmatched"}

    requeued = admin.post(f"/admin/webhooks/{event_id}/requeue", {"reason": "funding restored"})
    assert requeued.status_code == 202, requeued.text
    assert requeued.json() == {"id": event_id, "status": "received", "enqueued": True}
    wait_until(
        lambda: db.webhook_events.find_one({"_id": ObjectId(event_id)}),
        lambda event: event["status"] == "unmatched" and event["revivedAt"],
    )
    action = db.admin_actions.find_one({"target": event_id})
    assert action["actor"] == admin.id and action["action"] == "requeue_webhook"
    assert action["reason"] == "funding restored" and action["at"]


def test_webhook_review_rejects_bad_requests(gateway, settings, db, admin):
    assert admin.get("/admin/webhooks", params={"status": "processed"}).status_code == 400
    assert admin.get("/admin/webhooks", params={"limit": 0}).status_code == 400
    missing = admin.post(f"/admin/webhooks/{ObjectId()}/requeue", {"reason": "x"})
    assert missing.status_code == 404
    assert admin.post("/admin/webhooks/not-an-id/requeue", {"reason": "x"}).status_code == 404
    event_id = _unmatched_event(gateway, settings, db)
    assert admin.post(f"/admin/webhooks/{event_id}/requeue", {}).status_code == 400
    db.webhook_events.update_one({"_id": ObjectId(event_id)}, {"$set": {"status": "processed"}})
    processed = admin.post(f"/admin/webhooks/{event_id}/requeue", {"reason": "again"})
    assert processed.status_code == 409


def test_a_restriction_is_lifted_by_hand_with_a_reason(gateway, db, admin, ledger):
    user = signup(gateway)
    user.balance()  # opens the wallet
    account = wallet_id(ObjectId(user.id), "NGN")
    ledger.set_restricted(account, True, "test: reversal left money owed")
    assert user.balance()["restricted"] is True

    path = f"/admin/wallets/{user.id}/unrestrict"
    assert admin.post(path, {}).status_code == 400  # a reason is required
    lifted = admin.post(path, {"reason": "customer repaid by transfer"})
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["restricted"] is False
    assert lifted.json()["account"] == account
    assert user.balance()["restricted"] is False
    action = db.admin_actions.find_one({"target": account})
    assert (action["action"], action["reason"]) == (
        "unrestrict_wallet",
        "customer repaid by transfer",
    )
    assert admin.post(f"/admin/wallets/{ObjectId()}/unrestrict", {"reason": "x"}).status_code == 404


@pytest.fixture()
def audit_outbox_fails(monkeypatch):
    """The audit outbox refuses the admin action's record: the failure comes after the
    effect's writes, inside the request."""

    def refuse(*args, **kwargs):
        raise OperationFailure("injected: the audit outbox refused the write")

    monkeypatch.setattr(audit, "append", refuse)


def test_an_admin_action_whose_record_fails_takes_no_effect(
    gateway, monnify_sim, settings, db, admin, audit_outbox_fails, ledger
):
    user = signup(gateway)
    funding = user.fund(5000)
    pay(monnify_sim, funding)
    user.wait_for_balance(5000)
    account = wallet_id(ObjectId(user.id), "NGN")
    ledger.set_restricted(account, True, "test: reversal left money owed")
    event_id = _unmatched_event(gateway, settings, db)
    actions = db.admin_actions.count_documents({})

    lift = admin.post(f"/admin/wallets/{user.id}/unrestrict", {"reason": "repaid"})
    assert lift.status_code == 500
    assert user.balance()["restricted"] is True

    requeue = admin.post(f"/admin/webhooks/{event_id}/requeue", {"reason": "again"})
    assert requeue.status_code == 500
    assert "revivedAt" not in db.webhook_events.find_one({"_id": ObjectId(event_id)})

    refund = admin.post(
        f"/admin/fundings/{funding['paymentReference']}/refunds", {"reason": "asked"}
    )
    assert refund.status_code == 500
    assert db.refunds.count_documents({"paymentReference": funding["paymentReference"]}) == 0
    assert "amountRefunded" not in db.fundings.find_one({"_id": funding["paymentReference"]})
    after = user.balance()
    assert (after["balance"], after["held"]) == (5000, 0)  # nothing held, nothing sent

    assert db.admin_actions.count_documents({}) == actions


def test_a_role_change_whose_record_fails_is_not_made(gateway, db, audit_outbox_fails):
    user = signup(gateway)
    with pytest.raises(OperationFailure):
        change_role(db, "grant-admin", user.email)
    assert db.users.find_one({"email": user.email})["role"] == "user"
    assert db.admin_actions.count_documents({"target": user.email}) == 0


def test_disabling_a_user_whose_record_fails_is_not_done(
    gateway, db, redis_client, audit_outbox_fails
):
    user = signup(gateway)
    with pytest.raises(OperationFailure):
        change_disabled(db, redis_client, "disable-user", user.email)
    assert db.users.find_one({"email": user.email}).get("disabled") is not True
    assert not redis_client.exists(DISABLED_MARKER + user.id)  # tokens still work
    assert user.get("/auth/me").status_code == 200
    assert db.admin_actions.count_documents({"target": user.email}) == 0
