"""Capture the log lines the services write, exactly as written (the project's JSON
formatter), from every logger: the app's, the libraries', and Celery's own."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

# Loggers configured not to propagate to the root (shared/logs.py).
_OWN_HANDLERS = ("celery", "gunicorn.error", "gunicorn.access")


class CapturedLogs:
    def __init__(self, stream: io.StringIO):
        self._stream = stream

    def text(self) -> str:
        return self._stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines() if line.startswith("{")]


def _structured_formatter() -> logging.Formatter:
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter):
            return handler.formatter
    raise AssertionError("shared.logs.configure_logging has not set up the root logger")


@contextmanager
def capture_logs() -> Iterator[CapturedLogs]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_structured_formatter())
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in _OWN_HANDLERS)]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield CapturedLogs(stream)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
