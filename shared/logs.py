"""One log shape for gunicorn, Flask, Celery and libraries: structlog over stdlib logging.

JSON lines in production, readable console lines under `make run`. A request id bound
with `bind_request_id` rides on every line of the request or task that bound it, and
so do the trace and span ids of the current span (shared/tracing.py).
Values under sensitive keys are masked before anything is written.
"""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Any

import structlog

from shared.tracing import trace_ids

SENSITIVE_KEY = re.compile(
    r"pass(word)?|secret|token|authorization|signature|api_?key|hash|cookie", re.IGNORECASE
)
MASK = "[redacted]"


def _redact(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if key != "event" and SENSITIVE_KEY.search(key):
            event[key] = MASK
    return event


def _add_trace_ids(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    event.update(trace_ids())
    return event


_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    _add_trace_ids,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _redact,
]


def configure_logging(*, json: bool, level: str = "INFO") -> None:
    """Route structlog and stdlib loggers through one formatter. Safe to call twice."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structured": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "foreign_pre_chain": _SHARED_PROCESSORS,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info,
                        renderer,
                    ],
                }
            },
            "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "structured"}},
            "root": {"handlers": ["default"], "level": level},
            "loggers": {
                "gunicorn.error": {"handlers": ["default"], "propagate": False},
                "gunicorn.access": {"handlers": ["default"], "propagate": False},
                "celery": {"handlers": ["default"], "propagate": False, "level": level},
                "pymongo": {"level": "WARNING"},
                "urllib3": {"level": "WARNING"},
                "werkzeug": {"level": "WARNING"},
            },
        }
    )
    structlog.configure(
        processors=[
            *_SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def bind_request_id(request_id: str) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)


def current_request_id() -> str | None:
    return structlog.contextvars.get_contextvars().get("request_id")


def task_headers() -> dict[str, str | None]:
    """Message headers for a task enqueued now: the current request id, which the worker
    binds back onto the task's log lines (services/worker/celery_app.py), so work that
    enqueues more work keeps the id of the request that started it."""
    return {"request_id": current_request_id()}


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
