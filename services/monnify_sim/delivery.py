"""Webhook delivery as Monnify does it: a compact JSON body signed with
`monnify-signature` (HMAC-SHA512 of the body with the secret key), POSTed to the
configured URL; any answer but 200 is a failure, tried again every
`webhook_retry_seconds` up to `webhook_max_tries` times. Each delivery runs in its own
thread, so duplicates sent together arrive concurrently. Every attempt is kept for
`GET /sim/webhooks`.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from services.monnify_sim.config import SimConfig
from services.monnify_sim.render import dumps
from shared.logs import get_logger
from shared.monnify.signature import SIGNATURE_HEADER, compute_signature

log = get_logger(__name__)


@dataclass
class Delivery:
    id: int
    event_type: str
    reference: str
    url: str
    body: bytes
    delay_seconds: float
    state: str = "scheduled"  # scheduled | delivered | failed | cancelled
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "eventType": self.event_type,
            "reference": self.reference,
            "url": self.url,
            "body": self.body.decode(),
            "delaySeconds": self.delay_seconds,
            "state": self.state,
            "attempts": list(self.attempts),
        }


class Dispatcher:
    def __init__(self, config: SimConfig):
        self.config = config
        self._lock = threading.Lock()
        self._deliveries: dict[int, Delivery] = {}
        self._ids = itertools.count(1)
        self._stop = threading.Event()

    def send(
        self,
        event_type: str,
        event_data: dict[str, Any],
        reference: str,
        *,
        times: int = 1,
        delay_seconds: float = 0.0,
    ) -> list[Delivery]:
        """Deliver one event `times` times (concurrently), after `delay_seconds`."""
        body = dumps({"eventType": event_type, "eventData": event_data}).encode()
        return [self._start(event_type, reference, body, delay_seconds) for _ in range(times)]

    def redeliver(self, delivery_id: int, delay_seconds: float = 0.0) -> Delivery:
        """The very same bytes again, as a late or replayed notification."""
        original = self.get(delivery_id)
        return self._start(original.event_type, original.reference, original.body, delay_seconds)

    def get(self, delivery_id: int) -> Delivery:
        with self._lock:
            delivery = self._deliveries.get(delivery_id)
        if delivery is None:
            raise KeyError(delivery_id)
        return delivery

    def log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [delivery.view() for delivery in self._deliveries.values()]

    def reset(self) -> None:
        """Cancel pending retries and forget the log."""
        with self._lock:
            self._stop.set()
            self._stop = threading.Event()
            self._deliveries.clear()

    def close(self) -> None:
        self._stop.set()

    def _start(self, event_type: str, reference: str, body: bytes, delay: float) -> Delivery:
        with self._lock:
            delivery = Delivery(
                next(self._ids), event_type, reference, self.config.webhook_url, body, delay
            )
            self._deliveries[delivery.id] = delivery
            stop = self._stop
        threading.Thread(
            target=self._run, args=(delivery, stop), name=f"webhook-{delivery.id}", daemon=True
        ).start()
        return delivery

    def _run(self, delivery: Delivery, stop: threading.Event) -> None:
        if stop.wait(delivery.delay_seconds):
            delivery.state = "cancelled"
            return
        tries = 0
        while True:
            tries += 1
            if self._attempt(delivery):
                delivery.state = "delivered"
                return
            if tries >= self.config.webhook_max_tries:
                delivery.state = "failed"
                log.warning("sim.webhook_gave_up", delivery=delivery.id, tries=tries)
                return
            if stop.wait(self.config.webhook_retry_seconds):
                delivery.state = "cancelled"
                return

    def _attempt(self, delivery: Delivery) -> bool:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: compute_signature(delivery.body, self.config.secret_key),
        }
        attempt: dict[str, Any] = {"at": datetime.now(UTC).isoformat()}
        try:
            response = requests.post(
                delivery.url,
                data=delivery.body,
                headers=headers,
                timeout=self.config.webhook_timeout_seconds,
            )
            attempt["status"] = response.status_code
        except requests.RequestException as exc:
            attempt["error"] = type(exc).__name__
        delivery.attempts.append(attempt)
        return attempt.get("status") == 200
