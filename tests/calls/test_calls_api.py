"""The calls API: validation, server-set prices, the first hold, the concurrency limit,
ending, reading and history. Test timings (tests/conftest.py): per-second billing,
2-second blocks, at most 2 open calls per caller, the default rate of 50 NGN a minute."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from bson import ObjectId

from shared.calls.rating import Tariff
from tests.api.test_wallet_api import HUGE_TIMESTAMP_CURSOR
from tests.support.calls_support import call_doc, end_call, hold_of, initiate, start_call, wallet

DEFAULT = Tariff(5000, 0, 1)
INSUFFICIENT = "Insufficient wallet balance to initiate call"


def test_initiate_reserves_the_first_block_at_the_default_rate(client, db, party):
    caller, receiver = party(100_000), party()

    response = initiate(client, caller, receiver)

    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"callId", "status", "message", "ratePerMinute", "maxDurationSeconds"}
    assert body["status"] == "initiated" and body["ratePerMinute"] == 50
    assert body["maxDurationSeconds"] == 30  # 1000 NGN pays for far more than the cap
    first_block = DEFAULT.cost(2)
    assert wallet(db, caller.wallet) == {
        "balance": 100_000,
        "held": first_block,
        "available": 100_000 - first_block,
    }
    assert int(hold_of(db, body["callId"])["amount"]) == first_block
    assert call_doc(db, body["callId"])["reservedSeconds"] == 2
    end_call(client, caller, body["callId"])


def test_a_small_balance_reserves_what_it_can_and_says_how_long_it_lasts(client, db, party):
    caller, receiver = party(100), party()  # 1 NGN: one second at 83.33 kobo

    body = initiate(client, caller, receiver).get_json()

    assert body["maxDurationSeconds"] == 1
    assert wallet(db, caller.wallet)["held"] == DEFAULT.cost(1) == 83
    # Not on its last block yet (money credited before its renewal buys more), and its
    # participants were warned that it runs out.
    call = call_doc(db, body["callId"])
    assert "finalReason" not in call and "lowFundsWarnedAt" in call
    end_call(client, caller, body["callId"])


@pytest.mark.parametrize("kobo", [0, 82])
def test_a_balance_below_one_increment_is_refused(client, db, party, kobo):
    caller, receiver = party(kobo), party()

    response = initiate(client, caller, receiver)

    assert response.status_code == 402
    body = response.get_json()
    assert body["message"] == INSUFFICIENT
    assert body["details"] == {"required": Decimal("0.83"), "available": Decimal(kobo) / 100}
    assert wallet(db, caller.wallet)["held"] == 0
    assert db.calls.count_documents({"callerId": ObjectId(caller.id)}) == 0


def test_a_restricted_wallet_cannot_pay_for_calls(client, db, party):
    caller, receiver = party(100_000), party()
    db.accounts.update_one({"_id": caller.wallet}, {"$set": {"restricted": True}})

    response = initiate(client, caller, receiver)

    assert response.status_code == 402
    assert "restricted" in response.get_json()["message"]
    assert wallet(db, caller.wallet)["held"] == 0


@pytest.mark.parametrize(
    "receiver_id",
    ["nope", "zzzzzzzzzzzzzzzzzzzzzzzz", 12345, None, "", "65a1b2c3d4e5f6a7b8c9d0e1f"],
)
def test_a_malformed_receiver_id_is_a_400(client, party, receiver_id):
    caller = party(10_000)
    response = client.post(
        "/calls/initiate", json={"receiverId": receiver_id}, headers=caller.headers
    )
    assert response.status_code == 400
    assert "receiverId" in response.get_json()["details"]


def test_a_missing_receiver_id_is_a_400(client, party):
    response = client.post("/calls/initiate", json={}, headers=party(10_000).headers)
    assert response.status_code == 400
    assert "receiverId" in response.get_json()["details"]


def test_an_unknown_receiver_is_a_404(client, party):
    response = client.post(
        "/calls/initiate",
        json={"receiverId": "65a1b2c3d4e5f6a7b8c9d0e1"},
        headers=party(10_000).headers,
    )
    assert response.status_code == 404


@pytest.mark.parametrize("spell", [str.lower, str.upper])
def test_calling_yourself_is_a_400_however_the_id_is_spelled(client, db, party, spell):
    caller = party(10_000)
    response = client.post(
        "/calls/initiate", json={"receiverId": spell(caller.id)}, headers=caller.headers
    )
    assert response.status_code == 400
    assert "yourself" in response.get_json()["message"]
    assert wallet(db, caller.wallet)["held"] == 0


def test_the_price_is_the_receivers_rate_and_cost_per_minute_only_a_ceiling(client, db, party):
    caller, receiver = party(100_000), party()
    assert (
        client.put(
            "/users/me/rate", json={"ratePerMinute": 120}, headers=receiver.headers
        ).status_code
        == 200
    )

    refused = initiate(client, caller, receiver, costPerMinute=100)
    assert refused.status_code == 409
    assert refused.get_json()["details"] == {"ratePerMinute": 120}
    assert wallet(db, caller.wallet)["held"] == 0

    accepted = initiate(client, caller, receiver, costPerMinute=Decimal("120.00"))
    assert accepted.status_code == 201
    assert accepted.get_json()["ratePerMinute"] == 120
    assert wallet(db, caller.wallet)["held"] == Tariff(12000, 0, 1).cost(2) == 400
    end_call(client, caller, accepted.get_json()["callId"])


@pytest.mark.parametrize("cost", [-5, 0, "50", Decimal("1.001"), True])
def test_a_bad_cost_per_minute_is_a_400(client, party, cost):
    caller, receiver = party(100_000), party()
    response = initiate(client, caller, receiver, costPerMinute=cost)
    assert response.status_code == 400
    assert "costPerMinute" in response.get_json()["details"]


def test_rate_endpoints_keep_within_bounds(client, party):
    user = party()
    assert client.get("/users/me/rate", headers=user.headers).get_json() == {
        "ratePerMinute": 50,
        "currency": "NGN",
        "isDefault": True,
    }
    for bad in (Decimal("0.99"), 1000.01, 5000, "10", -1):
        response = client.put("/users/me/rate", json={"ratePerMinute": bad}, headers=user.headers)
        assert response.status_code == 400, bad
        assert "ratePerMinute" in response.get_json()["details"]
    response = client.put(
        "/users/me/rate", json={"ratePerMinute": Decimal("12.34")}, headers=user.headers
    )
    assert response.get_json() == {
        "ratePerMinute": Decimal("12.34"),
        "currency": "NGN",
        "isDefault": False,
    }
    assert client.get("/users/me/rate", headers=user.headers).get_json()["isDefault"] is False
    reset = client.delete("/users/me/rate", headers=user.headers).get_json()
    assert reset["ratePerMinute"] == 50 and reset["isDefault"] is True


def test_at_most_max_concurrent_open_calls_per_caller(client, db, party):
    caller, first, second, third = party(100_000), party(), party(), party()
    one, two = start_call(client, caller, first), start_call(client, caller, second)

    refused = initiate(client, caller, third)

    assert refused.status_code == 409
    assert refused.get_json()["details"] == {"maxConcurrent": 2}
    assert wallet(db, caller.wallet)["held"] == 2 * DEFAULT.cost(2)
    assert end_call(client, caller, one).status_code == 200
    three = start_call(client, caller, third)  # the ended call's slot is free again
    for call_id in (two, three):
        end_call(client, caller, call_id)


def test_ending_answers_the_rated_cost_at_once_and_the_same_every_time(client, db, party):
    caller, receiver = party(100_000), party()
    call_id = start_call(client, caller, receiver)

    first = end_call(client, receiver, call_id)
    again = end_call(client, caller, call_id)

    assert first.status_code == again.status_code == 200
    body = first.get_json()
    assert again.get_json() == body
    assert set(body) == {"callId", "status", "duration", "durationSeconds", "cost", "endReason"}
    assert body["callId"] == call_id and body["status"] == "ended"
    assert body["endReason"] == "receiver_hangup"
    seconds = body["durationSeconds"]
    assert body["cost"] == Decimal(DEFAULT.cost(seconds)) / 100
    assert body["duration"] == (seconds + 59) // 60
    assert call_doc(db, call_id).get("open") is None


def test_only_participants_end_a_call(client, party):
    caller, receiver, stranger = party(100_000), party(), party()
    call_id = start_call(client, caller, receiver)

    response = end_call(client, stranger, call_id)

    assert response.status_code == 403
    assert client.get(f"/calls/{call_id}", headers=caller.headers).get_json()["status"] == (
        "initiated"
    )
    end_call(client, caller, call_id)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/calls/65a1b2c3d4e5f6a7b8c9d0e1/end", 404),
        ("/calls/not-an-id/end", 400),
        ("/calls/65A1B2C3D4E5F6A7B8C9D0E1Z/end", 400),
    ],
)
def test_ending_an_unknown_or_malformed_call(client, party, path, status):
    response = client.post(path, headers=party().headers)
    assert response.status_code == status
    assert response.get_json()["statusCode"] == status


def test_a_call_is_visible_to_its_participants_only(client, party):
    caller, receiver, stranger = party(100_000), party(), party()
    call_id = start_call(client, caller, receiver)
    end_call(client, caller, call_id)

    as_caller = client.get(f"/calls/{call_id}", headers=caller.headers).get_json()
    as_receiver = client.get(f"/calls/{call_id}", headers=receiver.headers).get_json()

    assert as_caller["role"] == "caller" and as_receiver["role"] == "receiver"
    assert {k: v for k, v in as_caller.items() if k != "role"} == {
        k: v for k, v in as_receiver.items() if k != "role"
    }
    assert as_caller["callerId"] == caller.id and as_caller["receiverId"] == receiver.id
    assert as_caller["endReason"] == "caller_hangup" and as_caller["endedAt"]
    assert client.get(f"/calls/{call_id}", headers=stranger.headers).status_code == 404
    assert client.get("/calls/xyz", headers=caller.headers).status_code == 400


def test_history_newest_first_by_role_with_link_pagination(client, party):
    me, other = party(100_000), party(100_000)
    made = [start_call(client, me, other)]
    end_call(client, me, made[0])
    received = start_call(client, other, me)
    end_call(client, me, received)
    made.append(start_call(client, me, other))  # still open

    everything = client.get("/calls/history", headers=me.headers)
    assert everything.status_code == 200
    assert [c["callId"] for c in everything.get_json()] == [made[1], received, made[0]]
    assert [c["role"] for c in everything.get_json()] == ["caller", "receiver", "caller"]
    open_call = everything.get_json()[0]
    assert open_call["status"] == "initiated" and open_call["cost"] is None
    assert open_call["endedAt"] is None and open_call["duration"] is None

    as_receiver = client.get("/calls/history?role=receiver", headers=me.headers).get_json()
    assert [c["callId"] for c in as_receiver] == [received]

    seen, url = [], "/calls/history?limit=1&role=caller"
    while url:
        response = client.get(url, headers=me.headers)
        seen += [c["callId"] for c in response.get_json()]
        link = re.match(
            r'<http://[^/]+(?P<path>[^>]+)>; rel="next"', response.headers.get("Link", "")
        )
        url = link["path"] if link else None
        assert len(seen) <= 3
    assert seen == made[::-1]
    end_call(client, me, made[1])


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "limit=x", "role=admin", "cursor=%%%", "page=2",
     f"cursor={HUGE_TIMESTAMP_CURSOR}"],
)  # fmt: skip
def test_history_rejects_bad_queries(client, party, query):
    response = client.get(f"/calls/history?{query}", headers=party().headers)
    assert response.status_code == 400


def test_calls_need_a_token(client):
    assert client.post("/calls/initiate", json={"receiverId": "x" * 24}).status_code == 401
    assert client.get("/calls/history").status_code == 401
