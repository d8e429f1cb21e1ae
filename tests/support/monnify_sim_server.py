"""Test harness: the Monnify simulator and a webhook receiver, each a real HTTP server on a
free port in a background thread (werkzeug's make_server, threaded)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from flask import Flask, Response, request
from werkzeug.serving import make_server

from services.monnify_sim.app import create_app
from services.monnify_sim.config import load_sim_config
from shared.settings import Settings, load_settings

# Fast, deterministic defaults every test starts from (POST /sim/config).
TEST_SIM_CONFIG = {
    "tokenSeconds": 3600,
    "webhookRetrySeconds": 0.2,
    "webhookMaxTries": 3,
    "webhookTimeoutSeconds": 2,
    "amountFormat": "number",
    "paidOnFormat": "millis",
    "numericResponseCodes": False,
    "slowSeconds": 1,
}


class ServerThread:
    def __init__(self, app: Flask, port: int = 0):
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """Records every POST to /webhook; answers 200 unless told to fail the next ones."""

    def __init__(self) -> None:
        self._received: list[Received] = []
        self._script: list[int] = []
        self._changed = threading.Condition()
        app = Flask("webhook_receiver")
        app.post("/webhook")(self._receive)
        self._server = ServerThread(app)
        self.url = f"{self._server.url}/webhook"

    def _receive(self) -> Response:
        with self._changed:
            self._received.append(Received(dict(request.headers), request.get_data()))
            status = self._script.pop(0) if self._script else 200
            self._changed.notify_all()
        return Response("ok" if status == 200 else "no", status=status)

    def answer_next(self, *statuses: int) -> None:
        with self._changed:
            self._script = list(statuses)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        with self._changed:
            self._changed.wait_for(lambda: len(self._received) >= count, timeout)
            return list(self._received)

    def received(self) -> list[Received]:
        with self._changed:
            return list(self._received)

    def clear(self) -> None:
        with self._changed:
            self._received.clear()
            self._script.clear()

    def stop(self) -> None:
        self._server.stop()


class SimHarness:
    """The simulator on a free port, with helpers for its /sim controls."""

    def __init__(self, webhook_url: str):
        self.webhook_url = webhook_url
        self.settings: Settings = load_settings(
            {"APP_ENV": "test", "MONNIFY_WEBHOOK_URL": webhook_url}
        )
        self.config = load_sim_config(self.settings, {})
        self.app = create_app(self.config)
        self._server = ServerThread(self.app)
        self.url = self._server.url
        self.config.public_url = self.url
        self.http = requests.Session()

    def post(self, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        return self.http.post(self.url + path, json=body, timeout=10)

    def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.post(path, body)
        assert response.status_code == 200, response.text
        return response.json()

    def pay(self, transaction_reference: str, **body: Any) -> dict[str, Any]:
        return self.control(f"/sim/transactions/{quote(transaction_reference, safe='')}/pay", body)

    def act(self, transaction_reference: str, action: str, **body: Any) -> dict[str, Any]:
        path = f"/sim/transactions/{quote(transaction_reference, safe='')}/{action}"
        return self.control(path, body)

    def configure(self, **changes: Any) -> None:
        self.control("/sim/config", changes)

    def stats(self) -> dict[str, Any]:
        return self.http.get(self.url + "/sim/stats", timeout=10).json()

    def webhooks(self, reference: str | None = None) -> list[dict[str, Any]]:
        params = {"reference": reference} if reference else None
        return self.http.get(self.url + "/sim/webhooks", params=params, timeout=10).json()[
            "deliveries"
        ]

    def reset(self) -> None:
        self.control("/sim/reset")
        self.configure(**TEST_SIM_CONFIG, webhookUrl=self.webhook_url)

    def stop(self) -> None:
        self.app.extensions["monnify_sim"].dispatcher.close()
        self._server.stop()
