"""Payouts: bank accounts and withdrawals to them through Monnify's disbursements."""

from shared.payouts.banks import bank_list, payout_account, set_payout_account
from shared.payouts.withdrawals import (
    UnknownWithdrawal,
    WithdrawalRequest,
    Withdrawals,
    view,
)

__all__ = [
    "UnknownWithdrawal",
    "WithdrawalRequest",
    "Withdrawals",
    "bank_list",
    "payout_account",
    "set_payout_account",
    "view",
]
