"""Webhook signatures against Monnify's own published example, and what must fail."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from shared.monnify.signature import (
    compute_signature,
    compute_transaction_hash,
    signature_from_headers,
    verify_request,
    verify_signature,
    verify_transaction_hash,
)

# Monnify's worked example ("Computing Request Validation Hash", developers.monnify.com
# webhooks page and the TeamApt Confluence page it came from): their sample client
# secret, the compact request body and the hash they publish for it.
DOC_SECRET = "91MUDL9N6U3BQRXBQ2PJ9M0PW4J22M1Y"
DOC_BODY = (
    b'{"eventData":{"product":{"reference":"111222333","type":"OFFLINE_PAYMENT_AGENT"},'
    b'"transactionReference":"MNFY|76|20211117154810|000001",'
    b'"paymentReference":"0.01462001097368737","paidOn":"17/11/2021 3:48:10 PM",'
    b'"paymentDescription":"Mockaroo Jesse","metaData":{},"destinationAccountInformation":{},'
    b'"paymentSourceInformation":{},"amountPaid":78000,"totalPayable":78000,'
    b'"offlineProductInformation":{"code":"41470","type":"DYNAMIC"},"cardDetails":{},'
    b'"paymentMethod":"CASH","currency":"NGN","settlementAmount":77600,"paymentStatus":"PAID",'
    b'"customer":{"name":"Mockaroo Jesse","email":"111222333@ZZAMZ4WT4Y3E.monnify"}},'
    b'"eventType":"SUCCESSFUL_TRANSACTION"}'
)
DOC_HASH = (
    "f04fb635e04d71648bd3cc7999003da6861483342c856d05ddfa9b2dafacb873"
    "b0de1d0f8f67405d0010b4348b721c49fa171d317972618debba6b638aedcd3c"
)


def test_reproduces_monnifys_documented_example() -> None:
    assert compute_signature(DOC_BODY, DOC_SECRET) == DOC_HASH
    assert verify_signature(DOC_BODY, DOC_HASH, DOC_SECRET)


def test_known_answer_computed_with_openssl() -> None:
    # printf '%s' BODY | openssl dgst -sha512 -hmac 'simulator-secret-key'
    body = b'{"eventType":"SUCCESSFUL_TRANSACTION","eventData":{"amountPaid":"100.00"}}'
    expected = (
        "711d98eb1e180a75123d73f0db61724560fd7e0de90034ce0d0852ab6d524609"
        "64a176fd00d90f6ddbb7e4af151f20bdbc2976ab0a5cee707538e934bee78909"
    )
    assert compute_signature(body, "simulator-secret-key") == expected


@pytest.mark.parametrize(
    "tampered",
    [
        DOC_BODY.replace(b'"amountPaid":78000', b'"amountPaid":780000'),
        DOC_BODY.replace(b'"amountPaid":78000', b'"amountPaid":-78000'),
        DOC_BODY + b" ",
        DOC_BODY[:-1],
    ],
)
def test_tampered_body_fails(tampered: bytes) -> None:
    assert not verify_signature(tampered, DOC_HASH, DOC_SECRET)


def test_reserialised_json_fails_so_raw_bytes_matter() -> None:
    pretty = json.dumps(json.loads(DOC_BODY), indent=2).encode()
    assert not verify_signature(pretty, DOC_HASH, DOC_SECRET)


def test_wrong_key_fails() -> None:
    assert not verify_signature(DOC_BODY, DOC_HASH, "simulator-secret-key")
    assert not verify_signature(DOC_BODY, compute_signature(DOC_BODY, "other"), DOC_SECRET)


@pytest.mark.parametrize("signature", [None, "", "   ", "0" * 128, DOC_HASH[:64], "zz"])
def test_missing_or_malformed_signature_fails(signature: str | None) -> None:
    assert not verify_signature(DOC_BODY, signature, DOC_SECRET)


def test_empty_secret_never_verifies() -> None:
    assert not verify_signature(DOC_BODY, compute_signature(DOC_BODY, ""), "")


@pytest.mark.parametrize(
    "name", ["monnify-signature", "Monnify-Signature", "MONNIFY-SIGNATURE", "mOnNiFy-SiGnAtUrE"]
)
def test_header_name_in_any_case(name: str) -> None:
    headers = {"Content-Type": "application/json", name: DOC_HASH}
    assert signature_from_headers(headers) == DOC_HASH
    assert signature_from_headers(list(headers.items())) == DOC_HASH
    assert verify_request(DOC_BODY, headers, DOC_SECRET)


def test_missing_header_fails() -> None:
    headers = {"Content-Type": "application/json", "X-Signature": DOC_HASH}
    assert signature_from_headers(headers) is None
    assert not verify_request(DOC_BODY, headers, DOC_SECRET)


def test_uppercase_hex_and_surrounding_space_are_tolerated() -> None:
    assert verify_signature(DOC_BODY, f" {DOC_HASH.upper()} ", DOC_SECRET)


# Legacy transactionHash, known answer from coreutils:
# printf '%s' 'simulator-secret-key|pay-0001|5000.00|17/11/2021 3:48:10 PM|MNFY|...' | sha512sum
LEGACY = {
    "secret_key": "simulator-secret-key",
    "payment_reference": "pay-0001",
    "amount_paid": "5000.00",
    "paid_on": "17/11/2021 3:48:10 PM",
    "transaction_reference": "MNFY|20261126120000|000001",
}
LEGACY_HASH = (
    "23fa3fcaa7038f2140ebc9c82e2e41e1b0c19e6fc099f61a6ce160db658e139a"
    "4d5751da025728cea24147d1b6ca9c2e1ddae1a64fa51265e843df0afb73288b"
)


def test_legacy_transaction_hash_known_answer() -> None:
    assert compute_transaction_hash(*LEGACY.values()) == LEGACY_HASH
    assert verify_transaction_hash(LEGACY_HASH, **LEGACY)


def test_legacy_hash_keeps_the_amount_as_written() -> None:
    assert verify_transaction_hash(LEGACY_HASH, **{**LEGACY, "amount_paid": Decimal("5000.00")})
    assert not verify_transaction_hash(LEGACY_HASH, **{**LEGACY, "amount_paid": "5000"})


@pytest.mark.parametrize(
    "change",
    [
        {"amount_paid": "50000.00"},
        {"payment_reference": "pay-0002"},
        {"secret_key": "wrong"},
        {"transaction_reference": "MNFY|20261126120000|000002"},
    ],
)
def test_legacy_hash_rejects_any_change(change: dict[str, str]) -> None:
    assert not verify_transaction_hash(LEGACY_HASH, **{**LEGACY, **change})


def test_legacy_hash_missing_fails() -> None:
    assert not verify_transaction_hash(None, **LEGACY)
    assert not verify_transaction_hash("", **LEGACY)
