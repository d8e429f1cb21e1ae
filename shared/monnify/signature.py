"""Webhook authenticity, as Monnify signs.

`monnify-signature` is the lowercase hex HMAC-SHA512 of the raw request body bytes, keyed
with the client secret. Monnify's docs word it as "SHA-512(secret + body)", but their own
worked example only reproduces as an HMAC, so an HMAC it is. Always hash the bytes as
received: a re-serialised JSON differs in spacing, key order or number formatting.

Legacy flat notifications carried `transactionHash`, the SHA-512 hex of
`clientSecret|paymentReference|amountPaid|paidOn|transactionReference`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from decimal import Decimal

SIGNATURE_HEADER = "monnify-signature"


def compute_signature(body: bytes, secret_key: str) -> str:
    return hmac.new(secret_key.encode(), body, hashlib.sha512).hexdigest()


def verify_signature(body: bytes, signature: str | None, secret_key: str) -> bool:
    """True only for the exact signature of these bytes; constant-time comparison."""
    if not signature or not secret_key:
        return False
    expected = compute_signature(body, secret_key)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def signature_from_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> str | None:
    """The `monnify-signature` header value whatever the case of its name, else None."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if name.lower() == SIGNATURE_HEADER:
            return value
    return None


def verify_request(
    body: bytes, headers: Mapping[str, str] | Iterable[tuple[str, str]], secret_key: str
) -> bool:
    return verify_signature(body, signature_from_headers(headers), secret_key)


def compute_transaction_hash(
    secret_key: str,
    payment_reference: str,
    amount_paid: str | Decimal | int,
    paid_on: str,
    transaction_reference: str,
) -> str:
    """The legacy `transactionHash`. `amount_paid` must be written exactly as it appeared in
    the notification ("100.00" and "100" hash differently), which `str()` of the parsed
    Decimal or string preserves."""
    message = "|".join(
        (secret_key, payment_reference, str(amount_paid), paid_on, transaction_reference)
    )
    return hashlib.sha512(message.encode()).hexdigest()


def verify_transaction_hash(
    transaction_hash: str | None,
    *,
    secret_key: str,
    payment_reference: str,
    amount_paid: str | Decimal | int,
    paid_on: str,
    transaction_reference: str,
) -> bool:
    if not transaction_hash or not secret_key:
        return False
    expected = compute_transaction_hash(
        secret_key, payment_reference, amount_paid, paid_on, transaction_reference
    )
    return hmac.compare_digest(expected.encode(), transaction_hash.strip().lower().encode())
