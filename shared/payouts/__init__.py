"""Payouts: bank accounts and withdrawals to them through Monnify's disbursements."""
