"""Property-based: random sequences of credits, debits, transfers, holds, extensions,
captures, releases, expiries and repeats against the real servers keep every invariant
and agree with a small model of the wallets written in plain Python."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from pymongo.database import Database

from shared.errors import InvalidRequest
from shared.indexes import ensure_indexes
from shared.ledger import (
    HoldNotOpen,
    IdempotencyConflict,
    InsufficientFunds,
    Ledger,
    SystemAccount,
    system_account_id,
)
from shared.ledger.reads import LedgerReads
from tests.support.ledger_support import (
    account_state,
    assert_ledger_healthy,
    new_key,
    new_wallet,
)

WALLETS = 3
REVENUE = system_account_id(SystemAccount.PLATFORM_REVENUE, "NGN")
# Hold expiries count from here: long past, so no other test's holds fall due with ours.
EPOCH = datetime(2001, 1, 1, tzinfo=UTC)

wallet_index = st.integers(0, WALLETS - 1)
amounts = st.integers(1, 2_000)
minutes = st.integers(0, 120)  # the expire rule looks at most 60 in: half the holds outlive it


@dataclass(frozen=True)
class Done:
    """A call that succeeded: repeating it must replay it, changing it must conflict."""

    repeat: Callable[[], Any]
    change: Callable[[], Any]
    identity: str | None

    @staticmethod
    def identity_of(result: Any) -> str | None:
        return getattr(result, "hold_id", None) or getattr(result, "entry_id", None)


@dataclass(frozen=True)
class HoldRef:
    hold_id: str
    repeat: Callable[[], Any]


class LedgerModel(RuleBasedStateMachine):
    done = Bundle("done")
    holds = Bundle("holds")

    def __init__(self, db, ledger: Ledger):
        super().__init__()
        self.db, self.ledger = db, ledger
        self.wallets = [new_wallet() for _ in range(WALLETS)]
        self.balance = dict.fromkeys(self.wallets, 0)
        self.open_holds: dict[str, tuple[str, int, datetime]] = {}  # id: wallet, amount, expiry

    # ---- the model --------------------------------------------------------------------

    def held(self, wallet: str) -> int:
        return sum(amount for w, amount, _ in self.open_holds.values() if w == wallet)

    def available(self, wallet: str) -> int:
        return self.balance[wallet] - self.held(wallet)

    def succeeded(self, call: Callable[..., Any], change: Callable[[], Any]) -> Done:
        result = call()
        assert result.replayed is False
        return Done(call, change, Done.identity_of(result))

    # ---- rules ------------------------------------------------------------------------

    @initialize()
    def fund_the_wallets(self):
        """Start with money, so most holds and debits have something to work on."""
        for wallet in self.wallets:
            self.ledger.credit(new_key("fund"), wallet, 10_000)
            self.balance[wallet] = 10_000

    @rule(target=done, index=wallet_index, amount=amounts)
    def credit(self, index, amount):
        wallet, key = self.wallets[index], new_key("credit")
        done = self.succeeded(
            lambda: self.ledger.credit(key, wallet, amount),
            lambda: self.ledger.credit(key, wallet, amount + 1),
        )
        self.balance[wallet] += amount
        return done

    @rule(target=done, index=wallet_index, amount=amounts)
    def debit(self, index, amount):
        wallet, key = self.wallets[index], new_key("debit")
        if amount > self.available(wallet):
            with pytest.raises(InsufficientFunds):
                self.ledger.debit(key, wallet, amount)
            return multiple()
        done = self.succeeded(
            lambda: self.ledger.debit(key, wallet, amount),
            lambda: self.ledger.credit(key, wallet, amount),
        )
        self.balance[wallet] -= amount
        return done

    @rule(target=done, index=wallet_index, offset=st.integers(1, WALLETS - 1), amount=amounts)
    def transfer_with_a_fee(self, index, offset, amount):
        source, payee = self.wallets[index], self.wallets[(index + offset) % WALLETS]
        fee, key = amount // 10, new_key("transfer")
        shares = [(payee, amount - fee), *([(REVENUE, fee)] if fee else [])]
        if amount > self.available(source):
            with pytest.raises(InsufficientFunds):
                self.ledger.transfer(key, source, shares)
            return multiple()
        done = self.succeeded(
            lambda: self.ledger.transfer(key, source, shares),
            lambda: self.ledger.transfer(key, source, [(payee, amount + 1)]),
        )
        self.balance[source] -= amount
        self.balance[payee] += amount - fee
        return done

    @rule(targets=(holds, done), index=wallet_index, amount=amounts, expires=minutes)
    def hold(self, index, amount, expires):
        wallet, key = self.wallets[index], new_key("hold")
        expires_at = EPOCH + timedelta(minutes=expires)
        call = partial(self.ledger.hold, key, wallet, amount, expires_at)
        if amount > self.available(wallet):
            with pytest.raises(InsufficientFunds):
                call()
            return multiple()
        done = self.succeeded(call, partial(self.ledger.hold, key, wallet, amount + 1, expires_at))
        self.open_holds[done.identity] = (wallet, amount, expires_at)
        return done

    @rule(target=done, hold=holds, amount=amounts, expires=minutes)
    def extend(self, hold, amount, expires):
        key, expires_at = new_key("extend"), EPOCH + timedelta(minutes=expires)
        call = partial(self.ledger.extend_hold, key, hold.identity, amount, expires_at)
        if hold.identity not in self.open_holds:
            with pytest.raises(HoldNotOpen):
                call()
            return multiple()
        wallet, held, _ = self.open_holds[hold.identity]
        if amount > self.available(wallet):
            with pytest.raises(InsufficientFunds):
                call()
            return multiple()
        change = partial(self.ledger.extend_hold, key, hold.identity, amount + 1, expires_at)
        done = self.succeeded(call, change)
        self.open_holds[hold.identity] = (wallet, held + amount, expires_at)
        return done

    @rule(target=done, hold=consumes(holds), percent=st.integers(0, 110))
    def capture_to_revenue(self, hold, percent):
        return self.capture(hold.identity, percent, payee=None)

    @rule(target=done, hold=consumes(holds), percent=st.integers(0, 110), payee=wallet_index)
    def capture_with_a_split(self, hold, percent, payee):
        return self.capture(hold.identity, percent, payee=self.wallets[payee])

    def capture(self, hold_id: str, percent: int, payee: str | None):
        """Capture `percent` of the hold (above 100 is refused): all of it to platform
        revenue, or four fifths to `payee` and the rest to revenue."""
        key = new_key("capture")
        if hold_id not in self.open_holds:
            with pytest.raises(HoldNotOpen):
                self.ledger.capture(key, hold_id, 0)
            return multiple()
        wallet, held, _ = self.open_holds[hold_id]
        amount = held * percent // 100
        fee = amount // 5 if payee else amount
        shares = [(payee, amount - fee), (REVENUE, fee)] if payee else None
        call = partial(self.ledger.capture, key, hold_id, amount, shares)
        if amount > held:
            with pytest.raises(InvalidRequest):
                call()
            return multiple()
        done = self.succeeded(call, partial(self.ledger.release, key, hold_id))
        del self.open_holds[hold_id]
        self.balance[wallet] -= amount
        if payee:
            self.balance[payee] += amount - fee
        return done

    @rule(target=done, hold=consumes(holds))
    def release(self, hold):
        key = new_key("release")
        call = partial(self.ledger.release, key, hold.identity)
        if hold.identity not in self.open_holds:
            with pytest.raises(HoldNotOpen):
                call()
            return multiple()
        done = self.succeeded(call, partial(self.ledger.capture, key, hold.identity, 0))
        del self.open_holds[hold.identity]
        return done

    @rule(at=st.integers(0, 60))
    def expire(self, at):
        now = EPOCH + timedelta(minutes=at)
        due = [h for h, (_, _, expires_at) in self.open_holds.items() if expires_at <= now]
        assert self.ledger.expire_holds(now) >= len(due)
        for hold_id in due:
            del self.open_holds[hold_id]
            assert self.db.holds.find_one({"_id": hold_id})["status"] == "expired"

    @rule(call=done)
    def repeat(self, call):
        result = call.repeat()
        assert result.replayed is True
        assert Done.identity_of(result) == call.identity

    @rule(call=done)
    def reuse_the_key_for_something_else(self, call):
        with pytest.raises(IdempotencyConflict):
            call.change()

    # ---- checks -----------------------------------------------------------------------

    @invariant()
    def wallets_match_the_model_and_their_journals(self):
        # One scan of the journal for the three wallets, not one each: it runs every step.
        posted = LedgerReads(self.db).posted_sums(self.wallets)
        for wallet in self.wallets:
            state = account_state(self.db, wallet)
            assert state["balance"] == self.balance[wallet]
            assert state["held"] == self.held(wallet)
            assert state["available"] >= 0
            assert posted.get(wallet, 0) == state["balance"]

    def teardown(self):
        """Expire what is left open, then check the invariants over the whole database."""
        self.ledger.expire_holds(EPOCH + timedelta(days=1))
        assert all(account_state(self.db, w)["held"] == 0 for w in self.wallets)
        assert_ledger_healthy(self.db)


@pytest.fixture()
def own_db(db: Database) -> Iterator[Database]:
    """A database of the test's own: the per-step journal scans and the full check after
    each run then read this test's movements, not everything the session wrote before
    (which made this test minutes long late in the suite; other tests check theirs)."""
    name = f"ledger_properties_{uuid.uuid4().hex[:10]}"
    database = db.client[name]
    ensure_indexes(database)
    yield database
    db.client.drop_database(name)


def test_random_operations_keep_the_invariants_and_match_the_model(own_db, redis_client):
    ledger = Ledger(own_db, redis_client)
    run_state_machine_as_test(
        lambda: LedgerModel(own_db, ledger),
        settings=settings(
            max_examples=20,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
