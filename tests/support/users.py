"""Signed-up users, whichever way a test signs them up: through the in-process app (the
`signup` fixture) or over real HTTP to the session's gateway (`signup` here)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests
from pymongo.database import Database

from shared.ledger import wallet_id
from shared.users import set_role
from tests.support.polling import wait_until


def unique_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


@dataclass(frozen=True)
class User:
    """A signed-up user: email, id, bearer headers and NGN wallet. Its HTTP helpers talk to
    the gateway it signed up with; one signed up through the in-process app has none."""

    email: str
    id: str
    headers: dict[str, str]
    gateway: str = ""

    @classmethod
    def signed_up(cls, body: dict[str, Any], gateway: str = "") -> User:
        """The user a signup (or login) response body names."""
        return cls(
            email=body["user"]["email"],
            id=body["user"]["id"],
            headers={"Authorization": f"Bearer {body['access_token']}"},
            gateway=gateway,
        )

    @property
    def wallet(self) -> str:
        return wallet_id(self.id, "NGN")

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self._url(path), headers=self.headers, timeout=10, **kwargs)

    def post(
        self, path: str, json: Any = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        return requests.post(
            self._url(path), json=json, headers={**self.headers, **(headers or {})}, timeout=10
        )

    def fund(self, amount: int | Decimal = 5000, **extra: Any) -> dict[str, Any]:
        response = self.post("/wallet/fund", {"amount": amount, **extra})
        assert response.status_code == 201, response.text
        return response.json()

    def balance(self) -> dict[str, Any]:
        response = self.get("/wallet/balance")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for_balance(self, expected: int | Decimal) -> dict[str, Any]:
        return wait_until(self.balance, lambda body: body["balance"] == expected)

    def _url(self, path: str) -> str:
        assert self.gateway, "signed up through the in-process app: use the Flask client"
        return f"{self.gateway}{path}"


def signup(gateway: str) -> User:
    """A new user signed up over HTTP with `gateway`."""
    response = requests.post(
        f"{gateway}/auth/signup",
        json={"email": unique_email(), "password": "password123"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return User.signed_up(response.json(), gateway)


def make_admin(db: Database, user: User) -> User:
    assert set_role(db, user.email, "admin")
    return user
