"""The worker's one `Runtime`, over settings loaded once; what it builds is made lazily,
after Celery's fork."""

from __future__ import annotations

from functools import cache

from shared.runtime import Runtime
from shared.settings import Settings, load_settings


@cache
def _loaded_settings() -> Settings:
    return load_settings()


runtime = Runtime(_loaded_settings)
