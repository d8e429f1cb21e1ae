"""Nothing secret reaches a log line: a whole journey (signup, login, refresh, fund, a
signed webhook, the worker's confirmation and credit, logout) is logged, and no line
holds a password, a token, the Monnify keys or a full signature."""

from __future__ import annotations

import base64

import requests

from shared.monnify.signature import compute_signature
from tests.support.funding_support import notification, pay
from tests.support.log_capture import capture_logs
from tests.support.polling import wait_until
from tests.support.users import unique_email

PASSWORD = "correct-horse-battery-staple-42"


def test_a_whole_journey_logs_no_secret(gateway, monnify_sim, settings):
    email = unique_email()
    with capture_logs() as logs:
        secrets = _journey(gateway, monnify_sim, settings, email)
        # The worker's credit is logged after the balance shows: wait for that line.
        wait_until(logs.text, lambda text: "funding_credited" in text)
    text = logs.text()

    # The journey really was logged, by the gateway and by the worker.
    assert "funding_started" in text and "webhook_stored" in text
    assert "funding_credited" in text and "monnify.response" in text
    leaked = {name for name, secret in secrets.items() if secret in text}
    assert not leaked, f"secrets in the logs: {sorted(leaked)}"


def _journey(gateway: str, monnify_sim: str, settings, email: str) -> dict[str, str]:
    def post(path: str, **kwargs) -> requests.Response:
        return requests.post(f"{gateway}{path}", timeout=10, **kwargs)

    signed_up = post("/auth/signup", json={"email": email, "password": PASSWORD}).json()
    login = post("/auth/login", json={"email": email, "password": PASSWORD}).json()
    refreshed = post(
        "/auth/refresh", headers={"Authorization": f"Bearer {login['refresh_token']}"}
    ).json()
    headers = {"Authorization": f"Bearer {refreshed['access_token']}"}
    funding = post("/wallet/fund", json={"amount": 5000}, headers=headers).json()
    pay(monnify_sim, funding, notify=False)
    body = notification(funding, 5000)
    signature = compute_signature(body, settings.monnify_secret_key)
    hook = post(
        "/payments/monnify/webhook",
        data=body,
        headers={"Content-Type": "application/json", "monnify-signature": signature},
    )
    assert hook.status_code == 200, hook.text
    wait_until(
        lambda: requests.get(f"{gateway}/wallet/balance", headers=headers, timeout=10).json(),
        lambda balance: balance["balance"] == 5000,
    )
    assert post("/auth/logout", headers=headers).status_code in (200, 204)
    basic = f"{settings.monnify_api_key}:{settings.monnify_secret_key}".encode()
    return {
        "password": PASSWORD,
        "signup access token": signed_up["access_token"],
        "signup refresh token": signed_up["refresh_token"],
        "login access token": login["access_token"],
        "login refresh token": login["refresh_token"],
        "refreshed access token": refreshed["access_token"],
        "Monnify secret key": settings.monnify_secret_key,
        "Monnify API key": settings.monnify_api_key,
        "Monnify basic credentials": base64.b64encode(basic).decode(),
        "webhook signature": signature,
        "JWT secret": settings.jwt_secret,
    }
