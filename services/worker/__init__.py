"""Celery workers: they confirm payments and bill calls through the ledger in `shared/`.
Tasks only orchestrate; the domain logic they call lives in `shared/`."""
