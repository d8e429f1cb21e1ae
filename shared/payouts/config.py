"""How withdrawals are limited and paced. Read from the environment with the rest of the
configuration (`load_settings`); imports nothing else of the domain, so reading settings
loads no metrics, database or Monnify code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PayoutPolicy:
    """Withdrawals to a bank account (Monnify disbursements): amounts in minor units."""

    wallet_account_number: str  # the merchant's Monnify wallet payouts are sent from
    fee: int  # our flat fee per withdrawal, held and captured with the amount
    minimum: int
    maximum: int
    daily_maximum: int  # per user per UTC day, fee excluded
    poll_after_seconds: int  # a withdrawal with no verdict this long is asked about
    poll_interval_seconds: int
    banks_cache_seconds: int
