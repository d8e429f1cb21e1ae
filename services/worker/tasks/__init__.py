"""Celery tasks, one module per domain. Each task is idempotent."""
