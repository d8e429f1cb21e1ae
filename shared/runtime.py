"""A process's composition root: the one place its dependencies are built.

The gateway reads its settings from the Flask app and the worker loads them once; each
makes one `Runtime` with that settings provider (services/api/runtime.py,
services/worker/runtime.py) and asks it for what it needs. Domain classes take their
collaborators in their constructors; only this module reads settings to build them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import redis
from pymongo.database import Database

from shared.calls.deps import CallContext
from shared.funding.confirmation import FundingConfirmer
from shared.funding.reconciliation import Reconciler
from shared.funding.refunds import Refunds
from shared.funding.reserved_accounts import ReservedAccounts
from shared.kyc import KycVault
from shared.ledger import Ledger, LedgerReads
from shared.mongo import get_db
from shared.monnify.client import MonnifyClient
from shared.payouts.withdrawals import Withdrawals
from shared.redis_conn import get_redis
from shared.settings import Settings

T = TypeVar("T")


class Runtime:
    """Dependencies built lazily from `settings()`, each belonging to the current process."""

    def __init__(self, settings: Callable[[], Settings]):
        self.settings = settings
        # Reentrant: building one object asks for the others it is made of.
        self._lock = threading.RLock()
        self._built: dict[Hashable, Any] = {}

    def _once(self, name: str, build: Callable[[Settings], T]) -> T:
        """`build(settings)`, once per (process, settings): nothing holding a connection
        or an HTTP session may cross a fork, and two apps configured differently (as
        tests make them) must not share one."""
        settings = self.settings()
        key = (name, os.getpid(), settings)
        with self._lock:
            if key not in self._built:
                self._built[key] = build(settings)
            return self._built[key]

    # ---- clients -------------------------------------------------------------------------

    def db(self) -> Database:
        return get_db(self.settings().database_url)  # shared/mongo.py keeps one per process

    def redis_client(self) -> redis.Redis:
        return get_redis(self.settings().redis_url)  # shared/redis_conn.py: one per process

    def monnify(self) -> MonnifyClient:
        return self._once(
            "monnify",
            lambda s: MonnifyClient(
                s.monnify_base_url, s.monnify_api_key, s.monnify_secret_key, s.monnify_contract_code
            ),
        )

    def kyc_vault(self) -> KycVault:
        return self._once("kyc_vault", lambda s: KycVault(s.kyc_encryption_keys))

    # ---- money ---------------------------------------------------------------------------

    def ledger(self) -> Ledger:
        return self._once(
            "ledger",
            lambda s: Ledger(
                self.db(),
                self.redis_client(),
                lock_timeout=s.lock_timeout_seconds,
                lock_wait=s.lock_wait_seconds,
            ),
        )

    def ledger_reads(self) -> LedgerReads:
        return self.ledger().reads

    def calls(self) -> CallContext:
        return self._once(
            "calls",
            lambda s: CallContext(
                db=self.db(),
                ledger=self.ledger(),
                redis=self.redis_client(),
                config=s.calls,
                currency=s.default_currency,
                lock_timeout=s.lock_timeout_seconds,
                lock_wait=s.lock_wait_seconds,
            ),
        )

    def confirmer(self) -> FundingConfirmer:
        return self._once(
            "confirmer", lambda _: FundingConfirmer(self.db(), self.ledger(), self.monnify())
        )

    def refunds(self) -> Refunds:
        return self._once("refunds", lambda _: Refunds(self.db(), self.ledger(), self.monnify()))

    def reconciler(self) -> Reconciler:
        return self._once(
            "reconciler", lambda _: Reconciler(self.db(), self.confirmer(), self.refunds())
        )

    def withdrawals(self) -> Withdrawals:
        return self._once(
            "withdrawals",
            lambda s: Withdrawals(self.db(), self.ledger(), self.monnify(), s.payouts),
        )

    def reserved_accounts(self) -> ReservedAccounts:
        return self._once(
            "reserved_accounts",
            lambda s: ReservedAccounts(
                self.db(), self.monnify(), self.kyc_vault(), s.reserved_account_banks
            ),
        )
