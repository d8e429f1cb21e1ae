"""Enqueueing the follow-up tasks a call step returns, one way for the gateway and the
worker: each task at its time, carrying the request id of the step that asked for it, so
a call's renewals, cut-off and settlement log under the request that started or ended it.

The domain knows no Celery: the process hands in its own `send_task`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from shared.calls.model import Followup
from shared.logs import task_headers


class SendTask(Protocol):
    """Celery's `send_task`, as far as follow-ups use it."""

    def __call__(
        self, name: str, *, kwargs: dict[str, Any], eta: datetime, headers: dict[str, Any]
    ) -> object: ...


def schedule(send_task: SendTask, followups: Iterable[Followup]) -> None:
    headers = task_headers()
    for step in followups:
        send_task(step.task, kwargs=step.kwargs, eta=step.eta, headers=headers)
