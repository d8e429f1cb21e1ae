"""The checkout page a checkoutUrl opens: shows the amount and the account to pay into,
and lets a person pay the full amount, less or more, then shows what Monnify recorded."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from flask import Blueprint, render_template, request

from services.monnify_sim.http import amount_minor
from services.monnify_sim.simulator import current_sim
from services.monnify_sim.state import MERCHANT_NAME, ApiError, SimTransaction

blp = Blueprint("monnify_sim_checkout", __name__, url_prefix="/checkout")


def _major(minor: int) -> str:
    return f"{Decimal(minor).scaleb(-2):,.2f}"


def _page(
    transaction: SimTransaction,
    *,
    error: str | None = None,
    result: bool = False,
    status: int = 200,
) -> tuple[str, int]:
    html = render_template(
        "checkout.html",
        merchant=MERCHANT_NAME,
        transaction=transaction,
        amount=_major(transaction.amount_minor),
        amount_value=f"{Decimal(transaction.amount_minor).scaleb(-2):.2f}",
        paid=_major(transaction.amount_paid_minor),
        error=error,
        result=result,
    )
    return html, status


@blp.get("/<path:reference>")
def show(reference: str) -> tuple[str, int]:
    state = current_sim().state
    try:
        transaction = state.assign_account(reference)
    except ApiError as exc:
        if exc.status == 404:
            return f"<h1>No such checkout</h1><p>{exc.message}</p>", 404
        transaction = state.transaction(reference)
        return _page(transaction, result=True)
    return _page(transaction)


@blp.post("/<path:reference>")
def pay(reference: str) -> tuple[str, int]:
    sim = current_sim()
    try:
        transaction = sim.state.transaction(reference)
    except ApiError as exc:
        return f"<h1>No such checkout</h1><p>{exc.message}</p>", 404
    try:
        amount = amount_minor(_form_amount(), "amount")
        transaction = sim.state.pay(reference, amount, "ACCOUNT_TRANSFER")
    except ApiError as exc:
        return _page(transaction, error=exc.message, status=exc.status)
    sim.notify_transaction(transaction)
    return _page(transaction, result=True)


def _form_amount() -> Decimal:
    try:
        return Decimal(request.form.get("amount", "").replace(",", "").strip())
    except InvalidOperation:
        raise ApiError(400, "Enter the amount to pay, e.g. 5000.00") from None
