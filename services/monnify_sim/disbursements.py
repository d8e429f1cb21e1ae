"""Monnify's disbursements (payouts) in the simulator: the bank list, account-name
look-ups, single transfers with their OTP step and summary, the merchant wallet's
balance, and the signed SUCCESSFUL/FAILED/REVERSED_DISBURSEMENT webhooks.

Outcomes are chosen by the last digit of the destination account number, so any client
can reach each of them without a control call:

- `...0`: no such account (the name look-up answers 400); a transfer to it FAILS;
- `...2`: the transfer FAILS at once (FAILED_DISBURSEMENT);
- `...3`: PENDING until `POST /sim/disbursements/<reference>/settle`;
- `...4`: PENDING_AUTHORIZATION: `validate-otp` with authorizationCode `123456` completes it;
- `...6`: done (SUCCESS), but the answer is lost (HTTP 504) and no webhook is sent, as
  when a request times out after Monnify acted on it;
- any other digit: SUCCESS at once (SUCCESSFUL_DISBURSEMENT).

The merchant wallet (MONNIFY_WALLET_ACCOUNT_NUMBER, the only source account accepted)
starts with 100,000,000.00 NGN; a transfer of more than it holds (amount plus
the simulator's fee) is refused with 400, as Monnify refuses it.

Control routes:
- POST /sim/disbursements/<reference>/settle {"status": "SUCCESS"|"FAILED"|"REVERSED",
  "notify"?}: a pending transfer succeeds or fails, a successful one is reversed; the
  webhook is sent unless "notify" is false.
- GET /sim/disbursements/<reference>: the transfer (or null) and how many times its
  reference was posted.
- POST /sim/disbursements/wallet {"balance"}: set the merchant wallet's balance.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request

from services.monnify_sim import api, control
from services.monnify_sim.http import amount_minor, json_object, json_response, text
from services.monnify_sim.payout_state import (
    BANKS,
    EVENTS,
    FEE_MINOR,
    SETTLE_FROM,
    DisbursementBook,
    SimDisbursement,
    account_name,
    answer_is_lost,
    bank_name,
    nuban,
)
from services.monnify_sim.render import amount, timestamp
from services.monnify_sim.simulator import current_sim
from services.monnify_sim.state import ApiError

# ---- shapes --------------------------------------------------------------------------


def transfer_body(transfer: SimDisbursement) -> dict[str, Any]:
    config = current_sim().config
    return {
        "amount": amount(transfer.amount_minor, config),
        "reference": transfer.reference,
        "status": transfer.status,
        "dateCreated": timestamp(transfer.created_on, config),
        "totalFee": amount(FEE_MINOR, config),
        "destinationAccountName": transfer.account_name,
        "destinationBankName": bank_name(transfer.bank_code),
        "destinationAccountNumber": transfer.account_number,
        "destinationBankCode": transfer.bank_code,
        "transactionReference": transfer.transaction_reference,
        "narration": transfer.narration,
        "currency": transfer.currency,
    }


def event_data(transfer: SimDisbursement) -> dict[str, Any]:
    config = current_sim().config
    body = transfer_body(transfer)
    return {
        "amount": body["amount"],
        "transactionReference": transfer.transaction_reference,
        "fee": body["totalFee"],
        "transactionDescription": "Approved or completed successfully"
        if transfer.status == "SUCCESS"
        else f"Transfer {transfer.status.lower()}",
        "destinationAccountNumber": transfer.account_number,
        "sessionId": f"0900{transfer.transaction_reference[4:]}",
        "createdOn": timestamp(transfer.created_on, config),
        "destinationAccountName": transfer.account_name,
        "reference": transfer.reference,
        "destinationBankCode": transfer.bank_code,
        "completedOn": timestamp(transfer.completed_on, config),
        "narration": transfer.narration,
        "currency": transfer.currency,
        "destinationBankName": body["destinationBankName"],
        "status": transfer.status,
    }


def book() -> DisbursementBook:
    return current_sim().disbursements


def notify(transfer: SimDisbursement) -> list[int]:
    """The webhook of a transfer's final status (none while it is still open)."""
    event_type = EVENTS.get(transfer.status)
    if event_type is None:
        return []
    sim = current_sim()
    with sim.state.lock:
        data = event_data(transfer)
    return [d.id for d in sim.dispatcher.send(event_type, data, transfer.reference)]


# ---- Monnify's API ---------------------------------------------------------------------


@api.blp.get("/v1/banks")
def banks() -> Response:
    return api.envelope(
        [
            {
                "name": name,
                "code": code,
                "ussdTemplate": f"*{ussd}*Amount*AccountNumber#" if ussd else None,
                "baseUssdCode": f"*{ussd}#" if ussd else None,
                "transferUssdTemplate": f"*{ussd}*AccountNumber#" if ussd else None,
            }
            for name, code, ussd in BANKS
        ]
    )


@api.blp.get("/v1/disbursements/account/validate")
def validate_account() -> Response:
    account = nuban(request.args.get("accountNumber"), "accountNumber")
    bank_code = request.args.get("bankCode", "")
    bank_name(bank_code)
    if account.endswith("0"):
        raise ApiError(400, "Could not resolve account name. Please check the account number")
    return api.envelope(
        {"accountNumber": account, "accountName": account_name(account), "bankCode": bank_code}
    )


@api.blp.post("/v2/disbursements/single")
def single_transfer() -> Response:
    sim = current_sim()
    transfer = book().create(json_object(), sim.config.wallet_account_number)
    if answer_is_lost(transfer):
        raise ApiError(504, "Gateway Timeout")
    notify(transfer)
    return api.envelope(transfer_body(transfer))


@api.blp.post("/v2/disbursements/single/validate-otp")
def validate_otp() -> Response:
    body = json_object()
    transfer = book().authorize(text(body, "reference"), text(body, "authorizationCode"))
    notify(transfer)
    return api.envelope(transfer_body(transfer))


@api.blp.get("/v2/disbursements/single/summary")
def summary() -> Response:
    reference = request.args.get("reference", "").strip()
    if not reference:
        raise ApiError(400, "reference is required")
    return api.envelope(transfer_body(book().get(reference)))


@api.blp.get("/v2/disbursements/wallet-balance")
def wallet_balance() -> Response:
    sim = current_sim()
    if request.args.get("accountNumber") != sim.config.wallet_account_number:
        raise ApiError(404, "Wallet not found")
    balance = amount(book().balance_minor, sim.config)
    return api.envelope({"availableBalance": balance, "ledgerBalance": balance})


# ---- /sim controls ---------------------------------------------------------------------


@control.blp.post("/disbursements/<path:reference>/settle")
def settle(reference: str) -> Response:
    body = json_object()
    status = (text(body, "status") or "").upper()
    if status not in SETTLE_FROM:
        raise ApiError(400, f"status must be one of {', '.join(SETTLE_FROM)}")
    transfer = book().settle(reference, status)
    deliveries = notify(transfer) if body.get("notify", True) is not False else []
    return json_response({"transfer": transfer_body(transfer), "deliveries": deliveries})


@control.blp.get("/disbursements/<path:reference>")
def transfer_record(reference: str) -> Response:
    transfers = book()
    with transfers.lock:
        posts = transfers.posts[reference]
        transfer = transfers.transfers.get(reference)
    body = transfer_body(transfer) if transfer else None
    return json_response({"transfer": body, "posts": posts})


@control.blp.post("/disbursements/wallet")
def set_wallet() -> Response:
    balance = amount_minor(json_object().get("balance"), "balance")
    with book().lock:
        book().balance_minor = balance
    return json_response({"balance": amount(balance, current_sim().config)})
