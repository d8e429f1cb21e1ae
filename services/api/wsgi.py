"""gunicorn entry point: `gunicorn -c deploy/gunicorn.conf.py services.api.wsgi:app`."""

import sys

from flask import Flask

from services.api.app import create_app
from shared.settings import ConfigError


def _create_or_exit() -> Flask:
    try:
        return create_app()
    except ConfigError as exc:  # one line naming the variable, not a traceback
        sys.exit(f"configuration error: {exc}")


app = _create_or_exit()
