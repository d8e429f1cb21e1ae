"""A Python client generated from the committed document (openapi-python-client) runs a
short journey, and then the README walkthrough's (signup to a settled call), against
the session's gateway over HTTP: what a client developer gets
from the repository works, bearer tokens included, where the document asks for them."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.api.openapi import COMMITTED
from tests.support.funding_support import pay
from tests.support.polling import wait_until
from tests.support.users import unique_email

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


def test_a_generated_client_runs_the_readme_walkthrough(generated, gateway, monnify_sim):
    """Sign up a caller and a receiver, fund the caller (paid at the simulator, which posts
    the signed webhook), set a rate, call, hang up, and see it in both histories."""
    auth, wallet = _module("api.auth.auth_signup"), _module("api.wallet.wallet_balance")
    calls = {name: _module(f"api.calls.calls_{name}") for name in ("initiate", "end", "history")}
    models = _module("models")
    anonymous = generated.Client(base_url=gateway, raise_on_unexpected_status=True)

    def signed_up() -> tuple[object, str]:
        credentials = models.Credentials(email=unique_email(), password="password123")
        tokens = auth.sync(client=anonymous, body=credentials)
        client = generated.AuthenticatedClient(base_url=gateway, token=tokens.access_token)
        return client, tokens.user.id

    (caller, _), (receiver, receiver_id) = signed_up(), signed_up()
    funding = _module("api.wallet.wallet_fund").sync(
        client=caller, body=models.FundRequest(amount=5000)
    )
    pay(monnify_sim, {"transactionReference": funding.transaction_reference})
    wait_until(lambda: wallet.sync(client=caller).balance, lambda balance: balance == 5000)

    rate = _module("api.users.users_put_rate").sync(
        client=receiver, body=models.Rate(rate_per_minute=60)
    )
    assert rate.rate_per_minute == 60
    started = calls["initiate"].sync(
        client=caller, body=models.InitiateCall(receiver_id=receiver_id)
    )
    assert isinstance(started, models.CallStarted), started
    time.sleep(2)  # talk, as the walkthrough does: a call ended at once costs nothing
    ended = calls["end"].sync(started.call_id, client=caller)
    assert isinstance(ended, models.CallEnded) and ended.end_reason == "caller_hangup"

    history = calls["history"].sync(client=caller)
    assert [call.call_id for call in history][:1] == [started.call_id]
    earned = wait_until(lambda: wallet.sync(client=receiver).balance, lambda balance: balance > 0)
    assert earned < ended.cost  # the cost less the platform's share
