"""Monnify's JSON shapes for the simulator's state, in the configured amount and date
formats, so the client's loose parsing is exercised both ways."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import simplejson

from services.monnify_sim.config import SimConfig
from services.monnify_sim.state import MERCHANT_NAME, SimRefund, SimTransaction


def amount(minor: int, config: SimConfig) -> Decimal | str:
    """Major units with two decimals: 100.00 as a number or "100.00" as a string."""
    value = Decimal(minor).scaleb(-2).quantize(Decimal("0.01"))
    return str(value) if config.amount_format == "string" else value


def timestamp(moment: datetime | None, config: SimConfig) -> str | None:
    if moment is None:
        return None
    if config.paid_on_format == "ampm":
        hour = moment.hour % 12 or 12
        return f"{moment:%d/%m/%Y} {hour}:{moment:%M:%S %p}"
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}"


def response_code(code: str, config: SimConfig) -> str | int:
    return int(code) if config.numeric_response_codes and code.isdigit() else code


def dumps(payload: Any) -> str:
    """Compact JSON, as Monnify writes its webhook bodies; Decimal stays a number."""
    return simplejson.dumps(payload, use_decimal=True, separators=(",", ":"))


def checkout_url(transaction: SimTransaction, config: SimConfig) -> str:
    return f"{config.public_url}/checkout/{quote(transaction.transaction_reference, safe='')}"


def init_transaction_body(transaction: SimTransaction, config: SimConfig) -> dict[str, Any]:
    return {
        "transactionReference": transaction.transaction_reference,
        "paymentReference": transaction.payment_reference,
        "merchantName": MERCHANT_NAME,
        "apiKey": config.api_key,
        "enabledPaymentMethod": transaction.payment_methods,
        "checkoutUrl": checkout_url(transaction, config),
    }


def bank_transfer_body(transaction: SimTransaction, config: SimConfig) -> dict[str, Any]:
    account = transaction.account or {}
    return {
        **account,
        "accountDurationSeconds": 2400,
        "ussdPayment": f"*{account.get('bankCode', '035')}*000*{account.get('accountNumber')}#",
        "requestTime": timestamp(transaction.created_at, config),
        "transactionReference": transaction.transaction_reference,
        "paymentReference": transaction.payment_reference,
        "amount": amount(transaction.amount_minor, config),
        "fee": amount(0, config),
        "totalPayable": amount(transaction.amount_minor, config),
        "collectionChannel": "API_NOTIFICATION",
        "productInformation": None,
    }


def transaction_body(transaction: SimTransaction, config: SimConfig) -> dict[str, Any]:
    """The status API's responseBody, also the eventData of a transaction webhook."""
    paid = transaction.amount_paid_minor
    return {
        "transactionReference": transaction.transaction_reference,
        "paymentReference": transaction.payment_reference,
        "amountPaid": amount(paid, config),
        "totalPayable": amount(transaction.amount_minor, config),
        "settlementAmount": amount(paid - transaction.fee_minor if paid else 0, config),
        "paidOn": timestamp(transaction.paid_on, config),
        "paymentStatus": transaction.status,
        "paymentDescription": transaction.payment_description,
        "currency": transaction.currency,
        "paymentMethod": transaction.payment_method,
        "product": {
            "type": transaction.product_type,
            "reference": transaction.product_reference or transaction.payment_reference,
        },
        "cardDetails": None,
        "metaData": transaction.meta_data,
        "customer": {"email": transaction.customer_email, "name": transaction.customer_name},
    }


def transaction_event_data(transaction: SimTransaction, config: SimConfig) -> dict[str, Any]:
    account = transaction.account or {}
    return {
        **transaction_body(transaction, config),
        "cardDetails": {},
        "paymentSourceInformation": [
            {
                "bankCode": "058",
                "amountPaid": amount(transaction.amount_paid_minor, config),
                "accountName": transaction.customer_name,
                "sessionId": transaction.transaction_reference.replace("|", ""),
                "accountNumber": "0123456789",
            }
        ],
        "destinationAccountInformation": {
            "bankCode": account.get("bankCode", "035"),
            "bankName": account.get("bankName", "Wema bank"),
            "accountNumber": account.get("accountNumber", ""),
        },
    }


def refund_body(refund: SimRefund, config: SimConfig) -> dict[str, Any]:
    return {
        "refundReference": refund.refund_reference,
        "transactionReference": refund.transaction_reference,
        "refundReason": refund.reason,
        "customerNote": refund.customer_note,
        "refundAmount": amount(refund.amount_minor, config),
        "refundStatus": refund.status,
        "refundType": refund.refund_type,
        "createdOn": timestamp(refund.created_on, config),
        "completedOn": timestamp(refund.completed_on, config) or "",
        "comment": refund.comment,
    }


def refund_event_data(refund: SimRefund, config: SimConfig) -> dict[str, Any]:
    return {
        "transactionReference": refund.transaction_reference,
        "refundReference": refund.refund_reference,
        "refundAmount": amount(refund.amount_minor, config),
        "refundStatus": refund.status,
        "merchantReason": refund.reason,
        "customerNote": refund.customer_note,
        "createdOn": timestamp(refund.created_on, config),
        "completedOn": timestamp(refund.completed_on, config),
    }
