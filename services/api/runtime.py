"""The gateway's one `Runtime`: what a request needs, built for the settings of the app
serving it."""

from __future__ import annotations

from flask import current_app

from shared.runtime import Runtime
from shared.settings import Settings


def _app_settings() -> Settings:
    return current_app.extensions["settings"]


runtime = Runtime(_app_settings)
