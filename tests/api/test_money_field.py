"""The Money marshmallow field: JSON numbers in major units in, integer minor units out,
every rule named in its error, and documented in OpenAPI as a number."""

from __future__ import annotations

from decimal import Decimal

import pytest
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, ValidationError

from services.api.schemas.fields import Money
from shared.exact_json import loads_exact


class AmountSchema(Schema):
    amount = Money(required=True, minimum_minor=100, maximum_minor=1_000_000)


class PlainAmountSchema(Schema):
    amount = Money(required=True)


def _load(raw_json: str, schema: Schema | None = None) -> dict:
    return (schema or AmountSchema()).load(loads_exact(raw_json))


def _error(raw_json: str, schema: Schema | None = None) -> str:
    with pytest.raises(ValidationError) as caught:
        _load(raw_json, schema)
    [message] = caught.value.messages["amount"]
    return message


@pytest.mark.parametrize(
    "raw, minor",
    [("49.99", 4999), ("1", 100), ("10000", 1_000_000), ("49.990", 4999), ("1e2", 10000)],
)
def test_json_numbers_load_exactly(raw, minor):
    loaded = _load(f'{{"amount": {raw}}}')["amount"]
    assert loaded == minor
    assert type(loaded) is int


@pytest.mark.parametrize(
    "raw, rule",
    [
        ("49.999", "at most 2 decimal places"),
        ("0.001", "at most 2 decimal places"),
        ('"49.99"', "must be a number"),
        ('"NaN"', "must be a number"),
        ("true", "must be a number"),
        ("false", "must be a number"),
        ("[49.99]", "must be a number"),
        ('{"$gt": 0}', "must be a number"),
        ("0", "greater than zero"),
        ("0.00", "greater than zero"),
        ("-0", "greater than zero"),
        ("-5", "greater than zero"),
        ("-49.99", "greater than zero"),
        ("0.99", "at least 1"),
        ("10000.01", "at most 10000"),
        ("1e999999999", "between"),
        ("null", "may not be null"),
    ],
)
def test_refusals_name_the_rule(raw, rule):
    assert rule in _error(f'{{"amount": {raw}}}')


def test_nan_and_infinity_never_reach_the_field():
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError):
            loads_exact(f'{{"amount": {constant}}}')


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), 49.99])
def test_non_finite_decimals_and_floats_are_refused(value):
    with pytest.raises(ValidationError) as caught:
        PlainAmountSchema().load({"amount": value})
    assert caught.value.messages["amount"][0].startswith("must be")


def test_without_bounds_only_positivity_applies():
    assert _load('{"amount": 0.01}', PlainAmountSchema())["amount"] == 1
    assert _load('{"amount": 1000000000}', PlainAmountSchema())["amount"] == 100_000_000_000


def test_missing_amount_is_required():
    with pytest.raises(ValidationError) as caught:
        AmountSchema().load({})
    assert "amount" in caught.value.messages


def test_dumps_major_units():
    assert PlainAmountSchema().dump({"amount": 4999}) == {"amount": Decimal("49.99")}
    assert PlainAmountSchema().dump({"amount": 500000}) == {"amount": 5000}


def test_openapi_documents_money_as_a_number_with_its_bounds_and_no_multiple_of():
    """`multipleOf: 0.01` made JSON Schema validators (binary floating point) refuse 19.99;
    the precision is said in the description instead."""
    spec = APISpec("t", "1", "3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.schema("Amount", schema=AmountSchema)
    prop = spec.to_dict()["components"]["schemas"]["Amount"]["properties"]["amount"]
    assert prop["type"] == "number"
    assert "multipleOf" not in prop
    assert (prop["minimum"], prop["maximum"]) == (1, 10_000)
    assert "at most 2 decimal places" in prop["description"]
