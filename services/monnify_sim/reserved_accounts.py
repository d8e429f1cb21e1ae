"""Reserved (static) accounts, as Monnify serves them, and transfers into them.

API (behind the same token check and faults as the rest of /api):
- POST /api/v2/bank-transfer/reserved-accounts: reserve; a known accountReference is
  refused (422), as Monnify refuses it; so is a BVN/NIN starting 0000 (unverifiable).
- GET /api/v2/bank-transfer/reserved-accounts/<accountReference>: the details.
- GET /api/v1/bank-transfer/reserved-accounts/transactions?accountReference=&page=&size=:
  the transfers into it, newest first, in Monnify's page shape.

Control:
- POST /sim/reserved-accounts/<accountReference>/transfer {"amount", "notify"?, "bankCode"?}:
  a customer's transfer arrives: a PAID transaction the status API knows (paymentReference =
  transactionReference, product RESERVED_ACCOUNT), and its signed SUCCESSFUL_TRANSACTION
  webhook unless "notify" is false (a lost webhook). /sim/transactions/<ref>/reverse and
  /notify work on it like on any transaction.
- GET /sim/reserved-accounts[?customerEmail=]: what is reserved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, request

from services.monnify_sim.api import envelope
from services.monnify_sim.config import SimConfig
from services.monnify_sim.http import amount_minor, json_object, json_response, text
from services.monnify_sim.render import amount, timestamp, transaction_body
from services.monnify_sim.simulator import current_sim
from services.monnify_sim.state import ApiError, SimState, SimTransaction, now

api_blp = Blueprint("monnify_reserved_accounts", __name__)
control_blp = Blueprint("monnify_sim_reserved_accounts", __name__)

# Code -> name of the banks the simulator reserves accounts with, and their NUBAN prefix.
BANKS = {"035": ("Wema bank", "70"), "50515": ("Moniepoint Microfinance Bank", "60")}
KYC_FIELDS = ("bvn", "nin")
UNVERIFIABLE_PREFIX = "0000"  # test numbers the simulated KYC check refuses
MAX_PAGE_SIZE = 100


@dataclass
class SimReservedAccount:
    account_reference: str
    account_name: str
    currency: str
    customer_email: str
    customer_name: str
    kyc_type: str
    accounts: list[dict[str, str]]
    created_on: datetime
    reservation_reference: str
    transactions: list[str] = field(default_factory=list)  # oldest first


# ---- rules ---------------------------------------------------------------------------------


def reserve(state: SimState, body: dict[str, Any]) -> SimReservedAccount:
    reference = text(body, "accountReference")
    currency = (text(body, "currencyCode") or "").upper()
    email = text(body, "customerEmail")
    kyc_type = _kyc(body)
    banks = _banks(body)
    if "@" not in email:
        raise ApiError(400, "customerEmail must be a valid email address")
    if text(body, "contractCode") != state.config.contract_code:
        raise ApiError(422, "Invalid contract code")
    if currency != "NGN":
        raise ApiError(422, f"Currency {currency} is not supported for reserved accounts")
    with state.lock:
        if reference in state.reserved_accounts:
            raise ApiError(
                422, "You cannot reserve more than one account with the same accountReference"
            )
        serial = len(state.reserved_accounts) + 1
        name = text(body, "accountName")
        account = SimReservedAccount(
            account_reference=reference,
            account_name=name,
            currency=currency,
            customer_email=email,
            customer_name=text(body, "customerName", required=False) or name,
            kyc_type=kyc_type,
            accounts=[_bank_account(code, serial, name) for code in banks],
            created_on=now(),
            reservation_reference=f"RSV{serial:012d}",
        )
        state.reserved_accounts[reference] = account
        return account


def _kyc(body: dict[str, Any]) -> str:
    given = [name for name in KYC_FIELDS if body.get(name) not in (None, "")]
    if not given:
        raise ApiError(400, "bvn or nin is required to reserve an account")
    for name in given:
        value = body[name]
        if not isinstance(value, str) or len(value) != 11 or not value.isdigit():
            raise ApiError(400, f"{name} must be 11 digits")
        if value.startswith(UNVERIFIABLE_PREFIX):  # quoting it, as a provider might
            raise ApiError(422, f"The {name.upper()} {value} could not be verified")
    return given[0]


def _banks(body: dict[str, Any]) -> list[str]:
    if body.get("getAllAvailableBanks") is True:
        return list(BANKS)
    preferred = body.get("preferredBanks")
    if not isinstance(preferred, list) or not preferred:
        raise ApiError(400, "preferredBanks is required when getAllAvailableBanks is not true")
    unknown = [code for code in preferred if code not in BANKS]
    if unknown:
        raise ApiError(422, f"Bank(s) not available for reserved accounts: {unknown}")
    return list(dict.fromkeys(preferred))


def _bank_account(code: str, serial: int, name: str) -> dict[str, str]:
    bank_name, prefix = BANKS[code]
    return {
        "bankCode": code,
        "bankName": bank_name,
        "accountNumber": f"{prefix}{serial:08d}",
        "accountName": f"PCS Sim-{name}"[:60],
    }


def reserved_account(state: SimState, reference: str) -> SimReservedAccount:
    with state.lock:
        account = state.reserved_accounts.get(reference)
    if account is None:
        raise ApiError(404, f"Cannot find reserved account with reference {reference}")
    return account


def transfer(
    state: SimState, reference: str, amount_paid: int, bank_code: str | None
) -> SimTransaction:
    """A customer's transfer into the account: PAID at once, as Monnify reports them."""
    with state.lock:
        account = reserved_account(state, reference)
        into = next(
            (a for a in account.accounts if bank_code in (None, a["bankCode"])),
            None,
        )
        if into is None:
            raise ApiError(400, f"The account has no account at bank {bank_code}")
        paid_on = now()
        transaction_reference = state.next_transaction_reference(paid_on)
        transaction = SimTransaction(
            transaction_reference=transaction_reference,
            payment_reference=transaction_reference,
            amount_minor=amount_paid,
            currency=account.currency,
            customer_name=account.customer_name,
            customer_email=account.customer_email,
            payment_description=f"Transfer to {account.account_name}",
            redirect_url=None,
            payment_methods=["ACCOUNT_TRANSFER"],
            meta_data={},
            created_at=paid_on,
            status="PAID",
            amount_paid_minor=amount_paid,
            paid_on=paid_on,
            payment_method="ACCOUNT_TRANSFER",
            account=into,
            product_type="RESERVED_ACCOUNT",
            product_reference=reference,
        )
        state.add_transaction(transaction)
        account.transactions.append(transaction_reference)
        return transaction


# ---- Monnify's shapes ----------------------------------------------------------------------


def account_body(account: SimReservedAccount, config: SimConfig) -> dict[str, Any]:
    return {
        "contractCode": config.contract_code,
        "accountReference": account.account_reference,
        "accountName": account.account_name,
        "currencyCode": account.currency,
        "customerEmail": account.customer_email,
        "customerName": account.customer_name,
        "accounts": list(account.accounts),
        "collectionChannel": "RESERVED_ACCOUNT",
        "reservationReference": account.reservation_reference,
        "reservedAccountType": "GENERAL",
        "status": "ACTIVE",
        "createdOn": timestamp(account.created_on, config),
        "incomeSplitConfig": [],
        "restrictPaymentSource": False,
    }


def transactions_page(
    state: SimState, account: SimReservedAccount, page: int, size: int
) -> dict[str, Any]:
    """Spring's page shape, which Monnify's list answers in; newest first."""
    with state.lock:
        references = list(reversed(account.transactions))
        chunk = [state.transaction(r) for r in references[page * size : (page + 1) * size]]
        content = [_list_item(t, state.config) for t in chunk]
    total = len(references)
    pages = (total + size - 1) // size
    return {
        "content": content,
        "pageable": {"pageNumber": page, "pageSize": size, "offset": page * size},
        "totalElements": total,
        "totalPages": pages,
        "last": page >= pages - 1,
        "first": page == 0,
        "size": size,
        "number": page,
        "numberOfElements": len(content),
        "empty": not content,
    }


def _list_item(transaction: SimTransaction, config: SimConfig) -> dict[str, Any]:
    paid = transaction.amount_paid_minor
    return {
        "customerDTO": {
            "email": transaction.customer_email,
            "name": transaction.customer_name,
        },
        "providerAmount": amount(transaction.fee_minor, config),
        "paymentMethod": transaction.payment_method,
        "createdOn": timestamp(transaction.created_at, config),
        "amount": amount(paid, config),
        "flagged": False,
        "fee": amount(transaction.fee_minor, config),
        "currencyCode": transaction.currency,
        "completedOn": timestamp(transaction.paid_on, config),
        "paymentDescription": transaction.payment_description,
        "paymentStatus": transaction.status,
        "transactionReference": transaction.transaction_reference,
        "paymentReference": transaction.payment_reference,
        "payableAmount": amount(paid, config),
        "amountPaid": amount(paid, config),
        "completed": True,
    }


# ---- routes --------------------------------------------------------------------------------


@api_blp.post("/v2/bank-transfer/reserved-accounts")
def create() -> Response:
    sim = current_sim()
    account = reserve(sim.state, json_object())
    return envelope(account_body(account, sim.config))


@api_blp.get("/v2/bank-transfer/reserved-accounts/<path:reference>")
def details(reference: str) -> Response:
    sim = current_sim()
    return envelope(account_body(reserved_account(sim.state, reference), sim.config))


@api_blp.get("/v1/bank-transfer/reserved-accounts/transactions")
def transactions() -> Response:
    sim = current_sim()
    reference = request.args.get("accountReference", "").strip()
    if not reference:
        raise ApiError(400, "accountReference is required")
    page = _int_arg("page", 0, 0)
    size = _int_arg("size", 10, 1)
    if size > MAX_PAGE_SIZE:
        raise ApiError(400, f"size must be at most {MAX_PAGE_SIZE}")
    account = reserved_account(sim.state, reference)
    return envelope(transactions_page(sim.state, account, page, size))


def _int_arg(name: str, default: int, minimum: int) -> int:
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise ApiError(400, f"{name} must be an integer of at least {minimum}")
    return int(raw)


@control_blp.post("/reserved-accounts/<path:reference>/transfer")
def simulate_transfer(reference: str) -> Response:
    sim = current_sim()
    body = json_object()
    paid = amount_minor(body.get("amount"), "amount")
    transaction = transfer(sim.state, reference, paid, text(body, "bankCode", required=False))
    notify = body.get("notify", True) is not False
    deliveries = sim.notify_transaction(transaction) if notify else []
    with sim.state.lock:
        answer = transaction_body(transaction, sim.config)
    return json_response({"transaction": answer, "deliveries": [d.id for d in deliveries]})


@control_blp.get("/reserved-accounts")
def list_accounts() -> Response:
    sim = current_sim()
    email = request.args.get("customerEmail")
    with sim.state.lock:
        accounts = [
            account_body(a, sim.config)
            for a in sim.state.reserved_accounts.values()
            if email in (None, a.customer_email)
        ]
    return json_response({"accounts": accounts})
