"""A Python client generated from the committed document (openapi-python-client) runs a
short journey against the session's gateway over HTTP: what a client developer gets
from the repository works, bearer tokens included, where the document asks for them."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from services.api.openapi import COMMITTED
from tests.integration.funding_support import unique_email

PACKAGE = "payment_calls_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> object:
    """The generated package, imported from a temporary directory."""
    root = tmp_path_factory.mktemp("client")
    target = root / PACKAGE
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [generator, "generate", "--path", COMMITTED, "--output-path", target, "--meta", "none"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))


def _module(name: str):
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_generated_client_signs_up_logs_in_reads_the_balance_and_funds(generated, gateway):
    auth = {name: _module(f"api.auth.auth_{name}") for name in ("signup", "login", "me")}
    wallet = {name: _module(f"api.wallet.wallet_{name}") for name in ("balance", "fund")}
    models = _module("models")
    anonymous = generated.Client(base_url=gateway, raise_on_unexpected_status=True)
    email = unique_email()
    credentials = models.Credentials(email=email, password="password123")

    signed_up = auth["signup"].sync(client=anonymous, body=credentials)
    assert isinstance(signed_up, models.Tokens) and signed_up.user.email == email

    refused = auth["login"].sync(
        client=anonymous, body=models.Credentials(email=email, password="wrong-password")
    )
    assert isinstance(refused, models.Error) and refused.code == "invalid_credentials"

    tokens = auth["login"].sync(client=anonymous, body=credentials)
    assert isinstance(tokens, models.Tokens)
    user = generated.AuthenticatedClient(base_url=gateway, token=tokens.access_token)
    assert auth["me"].sync(client=user).role == "user"

    balance = wallet["balance"].sync(client=user)
    assert isinstance(balance, models.Balance)
    assert (balance.balance, balance.available, balance.restricted) == (0, 0, False)

    funding = wallet["fund"].sync(client=user, body=models.FundRequest(amount=1234.56))
    assert isinstance(funding, models.FundResponse), funding
    assert funding.amount == 1234.56 and funding.checkout_url.startswith("http")
