"""Guards of the money paths that only a crafted or racing request reaches (a mutation
run found them untested): a notification naming one funding and another funding's
Monnify transaction, and two refunds of one funding started at once."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from bson import ObjectId

from shared.errors import Conflict, DomainError
from shared.funding.refunds import RefundRequest, Refunds
from shared.ledger import LedgerReads, wallet_id
from tests.support.funding_support import (
    credit_entries,
    funding_record,
    notification,
    pay,
    post_signed,
    sim,
)
from tests.support.polling import wait_until
from tests.support.users import signup


def test_a_webhook_pairing_our_funding_with_another_fundings_transaction_is_unmatched(
    gateway, monnify_sim, settings, db
):
    owner = signup(gateway)
    theirs = owner.fund(5000)
    pay(monnify_sim, theirs)
    owner.wait_for_balance(5000)

    # A funding Monnify never answered: it has no transactionReference of its own, so
    # the one the notification names is what Monnify is asked about.
    other = signup(gateway)
    sim(monnify_sim, "faults", {"mode": "down"})
    try:
        assert other.post("/wallet/fund", {"amount": 5000}).status_code == 503
    finally:
        sim(monnify_sim, "faults", {"mode": "none"})
    unanswered = db.fundings.find_one({"userId": ObjectId(other.id)})
    assert "transactionReference" not in unanswered

    crafted = {
        "paymentReference": unanswered["_id"],
        "transactionReference": theirs["transactionReference"],
    }
    response = post_signed(gateway, notification(crafted, 5000), settings.monnify_secret_key)
    assert response.status_code == 200
    event = wait_until(
        lambda: db.webhook_events.find_one({"paymentReference": unanswered["_id"]}),
        lambda event: event and event["status"] != "received",
    )
    assert event["status"] == "unmatched"
    assert other.balance()["balance"] == 0
    assert "transactionReference" not in db.fundings.find_one({"_id": unanswered["_id"]})
    assert owner.balance()["balance"] == 5000
    assert credit_entries(db, theirs) == 1
    credit = LedgerReads(db).entry(f"monnify:{theirs['transactionReference']}")
    into = [p["account"] for p in credit["postings"] if p["amount"] > 0]
    assert into == [wallet_id(ObjectId(owner.id), "NGN")]


class ReadTogetherRefunds(Refunds):
    """Refunds whose starts each read the funding, then wait until every other start has
    read it too: the interleaving two admins clicking at once can produce. With
    `in_turn`, they then open one after the other, the second from what it read before
    the first opened (only the reservation's condition stops it); without, their
    transactions overlap (a write conflict stops the second)."""

    def __init__(self, *args: Any, in_turn: bool):
        super().__init__(*args)
        self.read_together = threading.Barrier(2)
        self.turn = threading.Lock() if in_turn else contextlib.nullcontext()

    def _refundable_funding(self, payment_reference: str) -> dict[str, Any]:
        funding = super()._refundable_funding(payment_reference)
        self.read_together.wait(timeout=60)
        return funding

    def _open(self, funding: dict[str, Any], request: RefundRequest) -> dict[str, Any]:
        with self.turn:
            return super()._open(funding, request)


@pytest.mark.parametrize("in_turn", [True, False], ids=["opened-in-turn", "opened-together"])
def test_two_refunds_of_one_funding_started_at_once_never_exceed_what_was_credited(
    gateway, monnify_sim, runtime, db, in_turn
):
    user = signup(gateway)
    refunded, extra = user.fund(5000), user.fund(5000)
    for funding in (refunded, extra):
        pay(monnify_sim, funding)
    user.wait_for_balance(10000)  # the wallet could cover both: only the funding limits
    refunds = ReadTogetherRefunds(
        db,
        runtime.ledger(),
        runtime.monnify(),
        in_turn=in_turn,
    )
    request = RefundRequest(refunded["paymentReference"], 300000, "twice", None, ObjectId())

    def start() -> dict[str, Any] | DomainError:
        try:
            return refunds.start(request)
        except DomainError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: start(), range(2)))

    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(refused) == 1, results
    assert isinstance(refused[0], Conflict)
    assert refused[0].message == "Another refund of this funding was just started; retry"
    # Refused before anything was held or sent to Monnify.
    assert db.refunds.count_documents({"paymentReference": refunded["paymentReference"]}) == 1
    assert funding_record(db, refunded)["amountRefunded"] == 300000
    assert user.balance()["held"] == 3000
