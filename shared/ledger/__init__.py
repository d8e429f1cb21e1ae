"""The ledger: the one place where money moves. See `shared/ledger/ledger.py`."""
