"""The wallet API: balance and transaction history, read from the ledger."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from bson import ObjectId

from shared.ledger import wallet_id
from shared.ledger.indexes import HISTORY_INDEX
from shared.pagination import NEWEST_FIRST


@pytest.fixture()
def funded(signup, ledger):
    """A user whose NGN wallet got three credits (100.00, 0.50, 49.99) and one debit."""
    headers, body = signup()
    account = wallet_id(body["user"]["id"], "NGN")
    for index, amount in enumerate((10000, 50, 4999)):
        ledger.credit(f"test:{account}:{index}", account, amount, reference=f"REF_{index}")
    ledger.debit(f"test:{account}:debit", account, 2000, reference="REF_DEBIT")
    return headers, account


def test_balance_speaks_major_units_exactly(client, funded, ledger):
    headers, account = funded
    ledger.hold(f"test:{account}:hold", account, 1234, datetime.now(UTC) + timedelta(hours=1))
    body = client.get("/wallet/balance", headers=headers).get_json()
    assert body == {
        "balance": Decimal("130.49"),
        "held": Decimal("12.34"),
        "available": Decimal("118.15"),
        "currency": "NGN",
        "restricted": False,
    }


def test_balance_in_another_enabled_currency_is_a_separate_wallet(client, funded):
    headers, _ = funded
    body = client.get("/wallet/balance?currency=USD", headers=headers).get_json()
    assert body["currency"] == "USD" and body["balance"] == 0


def test_transactions_newest_first_with_original_fields(client, funded):
    headers, _ = funded
    response = client.get("/wallet/transactions", headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert [t["reference"] for t in body] == ["REF_DEBIT", "REF_2", "REF_1", "REF_0"]
    assert body[0]["type"] == "debit" and body[0]["amount"] == 20
    assert body[1]["amount"] == Decimal("49.99") and body[1]["balanceAfter"] == Decimal("150.49")
    assert set(body[0]) == {
        "id", "type", "amount", "currency", "reference", "status", "description",
        "balanceAfter", "createdAt",
    }  # fmt: skip
    assert all(t["status"] == "success" and t["currency"] == "NGN" for t in body)
    assert "Link" not in response.headers


def test_pages_follow_the_link_header_without_gaps_or_repeats(client, funded):
    headers, _ = funded
    seen, url = [], "/wallet/transactions?limit=1"
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200
        seen += [t["reference"] for t in response.get_json()]
        match = re.match(
            r'<http://[^/]+(?P<path>[^>]+)>; rel="next"', response.headers.get("Link", "")
        )
        url = match["path"] if match else None
        assert len(seen) <= 5
    assert seen == ["REF_DEBIT", "REF_2", "REF_1", "REF_0"]


def test_type_filter(client, funded):
    headers, _ = funded
    body = client.get("/wallet/transactions?type=debit", headers=headers).get_json()
    assert [t["reference"] for t in body] == ["REF_DEBIT"]


# A well-formed cursor whose time is far past what a date can hold: a 400, not a 500.
HUGE_TIMESTAMP_CURSOR = "OTk5OTk5OTk5OTk5OTk5OTk5OTk6NmIwZmIyZWIzMWFiZmM1MTZlOThhMTU1"


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "limit=-1", "limit=1.5", "limit=abc", "limit=", "type=refund",
     "status=pending", "currency=EUR", "cursor=%%%", "cursor=bm90LWEtY3Vyc29y", "unknown=1",
     f"cursor={HUGE_TIMESTAMP_CURSOR}"],
)  # fmt: skip
def test_bad_queries_are_400_with_a_message(client, funded, query):
    headers, _ = funded
    response = client.get(f"/wallet/transactions?{query}", headers=headers)
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["statusCode"] == 400 and body["message"]


def test_wallet_routes_need_a_token(client):
    for path in ("/wallet/balance", "/wallet/transactions"):
        response = client.get(path)
        assert response.status_code == 401
        assert response.get_json()["statusCode"] == 401


def test_history_query_is_served_by_the_account_index(db):
    """The exact query the endpoint runs (filter, cursor, sort) scans the index, with no
    hint. SecantusDB still adds an in-memory SORT over the index range; MongoDB does not."""
    account = wallet_id(ObjectId(), "NGN")
    selector = {"accounts": account, "createdAt": {"$lte": datetime.now(UTC)}}
    plan = (db.entries.find(selector).sort(NEWEST_FIRST).limit(20).explain()["queryPlanner"])[
        "winningPlan"
    ]
    stages = []
    while plan:
        stages.append(plan)
        plan = plan.get("inputStage")
    scans = [stage for stage in stages if stage["stage"] == "IXSCAN"]
    assert scans and scans[0]["indexName"] == HISTORY_INDEX
    assert scans[0]["keyPattern"] == {"accounts": 1, "createdAt": -1, "_id": -1}
    assert not any(stage["stage"] == "COLLSCAN" for stage in stages)
