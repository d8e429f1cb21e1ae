"""Wallet funding through Monnify: start a funding, take in webhooks, confirm payments
against Monnify's status API, reverse, reconcile and refund. Money moves only through
the ledger, with keys like `monnify:<transactionReference>`."""
