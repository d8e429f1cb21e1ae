"""The document's security is what the routes do: an operation that declares bearerAuth
answers 401 `unauthorized` without a token, and one that declares none does not. Every
operation of the committed document (kept equal to the served one) is asked, so a new
route is checked as soon as it is documented."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from services.api.openapi import COMMITTED
from shared.exact_json import loads_exact

OBJECT_ID = "65a1b2c3d4e5f60718293a4b"


def _operations() -> list[tuple[str, str, bool]]:
    document = loads_exact(COMMITTED.read_text())
    return [
        (method, path, bool(operation.get("security")))
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    ]


@pytest.mark.parametrize("method, path, secured", _operations())
def test_declared_security_is_what_the_route_asks(client: FlaskClient, method, path, secured):
    # Every path parameter a well-formed id: the token, if asked, is checked first anyway.
    url = re.sub(r"\{[^}]+\}", OBJECT_ID, path)
    body = {"json": {}} if method in ("post", "put") else {}
    response = client.open(url, method=method.upper(), **body)
    asked_for_a_token = (
        response.status_code == 401 and response.get_json()["code"] == "unauthorized"
    )
    assert asked_for_a_token == secured, response.get_data(as_text=True)[:300]
