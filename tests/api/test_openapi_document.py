"""The committed OpenAPI document (docs/openapi.json) is what the app serves, and says
what a client generator needs: who needs a token, every operation named, headers,
enums, required fields, id patterns, amounts a validator accepts. No server needed:
the document depends on none."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from services.api.app import create_app
from services.api.openapi import COMMITTED, render
from shared.errors import ErrorCode
from shared.settings import load_settings

README = Path(__file__).resolve().parents[2] / "README.md"
LIST_OPERATIONS = [
    ("/wallet/transactions", "get"),
    ("/calls/history", "get"),
    ("/admin/reconciliation", "get"),
]


@pytest.fixture(scope="module")
def served() -> str:
    settings = load_settings({"APP_ENV": "test", "LOG_JSON": "true"})
    return render(create_app(settings, check_database=False))


@pytest.fixture(scope="module")
def spec(served: str) -> dict:
    return json.loads(served)


def _operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield path, method, operation


def _schema(spec: dict, name: str) -> dict:
    return spec["components"]["schemas"][name]


def test_the_committed_document_is_the_served_one(served):
    assert COMMITTED.read_text() == served, "docs/openapi.json is stale: run `make openapi`"


def test_every_operation_has_a_unique_operation_id(spec):
    ids = [operation.get("operationId") for _, _, operation in _operations(spec)]
    assert None not in ids
    assert len(ids) == len(set(ids))


def test_every_secured_operation_declares_its_401(spec):
    secured = [op for _, _, op in _operations(spec) if op.get("security")]
    assert secured
    for operation in secured:
        assert operation["security"] == [{"bearerAuth": []}]
        assert "401" in operation["responses"]


@pytest.mark.parametrize(
    "path, method",
    [
        ("/wallet/balance", "get"),
        ("/wallet/transactions", "get"),
        ("/wallet/fund", "post"),
        ("/wallet/events", "get"),
    ],
)
def test_routes_behind_a_bare_jwt_required_declare_security(spec, path, method):
    """They declared none, so generators that attach auth per operation sent no token."""
    operation = spec["paths"][path][method]
    assert operation["security"] == [{"bearerAuth": []}]
    assert "401" in operation["responses"]


@pytest.mark.parametrize("path, method", LIST_OPERATIONS)
def test_list_answers_declare_the_link_header(spec, path, method):
    assert "Link" in spec["paths"][path][method]["responses"]["200"]["headers"]


def test_every_429_declares_retry_after(spec):
    answers = [op["responses"]["429"] for _, _, op in _operations(spec) if "429" in op["responses"]]
    assert answers
    for answer in answers:
        assert answer["headers"]["Retry-After"]["schema"]["type"] == "integer"


def test_no_amount_is_a_multiple_of_anything(served):
    """`multipleOf: 0.01` made validators (binary floating point) refuse 19.99."""
    assert "multipleOf" not in served


def test_amounts_are_bounded_and_say_their_precision(spec):
    amount = _schema(spec, "FundRequest")["properties"]["amount"]
    assert Decimal(str(amount["minimum"])) == Decimal("0.01")
    assert "at most 2 decimal places" in amount["description"]
    assert _schema(spec, "Balance")["properties"]["balance"]["minimum"] == 0


def test_no_unused_pagination_metadata(spec):
    assert "PaginationMetadata" not in spec["components"]["schemas"]


@pytest.mark.parametrize(
    "schema, fields",
    [
        ("Tokens", {"access_token", "refresh_token", "user"}),
        ("Balance", {"balance", "available", "held", "currency", "restricted"}),
        ("Me", {"id", "email", "role", "createdAt"}),
        ("Transaction", {"description", "balanceAfter", "status", "type"}),
        ("Call", {"duration", "cost", "endedAt", "endReason"}),
        ("Error", {"statusCode", "error", "code", "message"}),
    ],
)
def test_always_returned_fields_are_required(spec, schema, fields):
    assert fields <= set(_schema(spec, schema)["required"])


@pytest.mark.parametrize(
    "schema, field, values",
    [
        ("Call", "status", {"initiated", "ended"}),
        ("Call", "endReason", {"caller_hangup", "insufficient_funds", "max_duration"}),
        ("CallEnded", "endReason", {"receiver_hangup", "renewal_missing"}),
        ("Transaction", "type", {"credit", "debit"}),
        ("Refund", "status", {"pending", "completed", "failed"}),
        ("WebhookEvent", "status", {"received", "processed", "unmatched"}),
        ("Me", "role", {"user", "admin"}),
    ],
)
def test_states_are_enums(spec, schema, field, values):
    assert values <= set(_schema(spec, schema)["properties"][field]["enum"])


@pytest.mark.parametrize(
    "path", ["/calls/{call_id}", "/calls/{call_id}/end", "/admin/wallets/{user_id}/unrestrict"]
)
def test_id_path_parameters_are_object_ids(spec, path):
    (parameter,) = [p for p in spec["paths"][path]["parameters"] if p["in"] == "path"]
    assert re.fullmatch(parameter["schema"]["pattern"], "65a1b2c3d4e5f60718293a4b")
    assert not re.fullmatch(parameter["schema"]["pattern"], "not-an-id")


def test_the_error_schema_lists_every_code(spec):
    assert set(_schema(spec, "Error")["properties"]["code"]["enum"]) == set(ErrorCode)


def test_the_readme_documents_every_error_code():
    """The README's table of error codes, one row a code, is the list clients read."""
    rows = re.findall(r"^\| `([a-z_]+)` \| \d{3}", README.read_text(), flags=re.MULTILINE)
    assert sorted(rows) == sorted(code.value for code in ErrorCode)
