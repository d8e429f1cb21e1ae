"""The ledger: the one place where money moves (`shared/ledger/ledger.py`)."""

from shared.ledger.accounts import SystemAccount, system_account_id, wallet_id
from shared.ledger.invariants import RecentCheck, Violation, check_invariants, check_recent
from shared.ledger.ledger import (
    Credit,
    EntryResult,
    HoldNotOpen,
    HoldResult,
    IdempotencyConflict,
    InsufficientFunds,
    Ledger,
    Posting,
)
from shared.ledger.locks import AccountBusy
from shared.ledger.reads import HistoryItem, LedgerReads, WalletState

__all__ = [
    "AccountBusy",
    "Credit",
    "EntryResult",
    "HistoryItem",
    "HoldNotOpen",
    "HoldResult",
    "IdempotencyConflict",
    "InsufficientFunds",
    "Ledger",
    "LedgerReads",
    "Posting",
    "RecentCheck",
    "SystemAccount",
    "Violation",
    "WalletState",
    "check_invariants",
    "check_recent",
    "system_account_id",
    "wallet_id",
]
