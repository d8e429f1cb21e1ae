"""Receivables: what a reversal leaves owed restricts the wallet until fundings repay
all of it. A confirmation that dies half-way, after the ledger posted but before the
wallet's restriction changed, is finished by its retry: a reversal's retry restricts the
wallet, a repayment's retry lifts it. The crash is the ledger's `set_restricted` failing
once, through the ledger the confirmer is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo.errors import AutoReconnect

from shared.funding.confirmation import FundingConfirmer
from shared.ledger import Ledger, LedgerReads, wallet_id
from shared.ledger.accounts import receivable_id
from tests.support.funding_support import funding_record, notify, pay, reverse
from tests.support.polling import wait_until


class CrashingLedger(Ledger):
    """The real ledger, whose first `set_restricted` fails as a dying process would."""

    crashes = 1

    def set_restricted(self, account_id: str, restricted: bool, reason: str, **kw: Any) -> None:
        if self.crashes:
            self.crashes -= 1
            raise AutoReconnect("injected: the process died before the restriction")
        super().set_restricted(account_id, restricted, reason, **kw)


@pytest.fixture()
def confirmers(runtime):
    """A confirmer that crashes once at the restriction, and a healthy one (the retry)."""
    monnify = runtime.monnify()
    ledger = runtime.ledger()
    crashing = CrashingLedger(ledger.db, ledger.redis)
    return FundingConfirmer(ledger.db, crashing, monnify), FundingConfirmer(
        ledger.db, ledger, monnify
    )


def owed(db, user) -> int:
    return -LedgerReads(db).wallet(receivable_id(ObjectId(user.id), "NGN")).balance


def spend_and_reverse(monnify_sim, user, runtime) -> dict[str, Any]:
    """5000 credited, 3000 of it held by a call, then Monnify reverses the payment (and,
    as for a real reversal, sends no event)."""
    funding = user.fund(5000)
    pay(monnify_sim, funding)
    user.wait_for_balance(5000)
    expires = datetime.now(UTC) + timedelta(minutes=10)
    wallet = wallet_id(ObjectId(user.id), "NGN")
    runtime.ledger().hold(f"test-call-{ObjectId()}", wallet, 300000, expires)
    reverse(monnify_sim, funding)
    return funding


def test_a_reversal_retried_after_a_crash_restricts_the_wallet(
    monnify_sim, user, db, runtime, confirmers
):
    crashing, healthy = confirmers
    funding = spend_and_reverse(monnify_sim, user, runtime)

    with pytest.raises(AutoReconnect):
        crashing.confirm(payment_reference=funding["paymentReference"])
    # Posted (2000 taken, 3000 owed) but not restricted: the first run's half.
    assert (user.balance()["available"], owed(db, user)) == (0, 300000)
    assert user.balance()["restricted"] is False

    outcome = healthy.confirm(payment_reference=funding["paymentReference"])
    assert outcome.status == "reversed"
    assert user.balance()["restricted"] is True
    assert owed(db, user) == 300000  # nothing taken twice
    assert funding_record(db, funding)["status"] == "reversed"


def test_a_repayment_retried_after_a_crash_lifts_the_restriction(
    monnify_sim, user, db, runtime, confirmers
):
    crashing, healthy = confirmers
    funding = spend_and_reverse(monnify_sim, user, runtime)
    healthy.confirm(payment_reference=funding["paymentReference"])
    assert user.balance()["restricted"] is True

    second = user.fund(4000)
    pay(monnify_sim, second, notify=False)  # confirmed here, not by the worker
    with pytest.raises(AutoReconnect):
        crashing.confirm(payment_reference=second["paymentReference"])
    # Credited and repaid, but still restricted: the first run's half.
    assert owed(db, user) == 0
    assert user.balance()["restricted"] is True

    outcome = healthy.confirm(payment_reference=second["paymentReference"])
    assert (outcome.status, outcome.credited_minor) == ("paid", 400000)
    after = user.balance()
    assert (after["restricted"], after["balance"], after["available"]) == (False, 4000, 1000)
    assert funding_record(db, second)["status"] == "paid"


def test_a_partial_repayment_keeps_the_wallet_restricted_until_all_is_repaid(
    monnify_sim, user, db, runtime
):
    funding = spend_and_reverse(monnify_sim, user, runtime)
    notify(monnify_sim, funding)  # the reversal, pushed by a redelivered notification
    wait_until(user.balance, lambda body: body["restricted"])
    assert owed(db, user) == 300000

    part = user.fund(1000)
    pay(monnify_sim, part)
    wait_until(lambda: funding_record(db, part)["status"], lambda status: status == "paid")
    # All 1000 went to the receivable, which shrank; the rest is still owed.
    assert owed(db, user) == 200000
    assert user.balance()["restricted"] is True

    rest = user.fund(2000)
    pay(monnify_sim, rest)
    lifted = wait_until(user.balance, lambda body: not body["restricted"])
    assert owed(db, user) == 0
    assert (lifted["balance"], lifted["held"], lifted["available"]) == (3000, 3000, 0)
