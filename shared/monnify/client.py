"""The Monnify API client: login and token cache, checkout, dynamic accounts, status
queries, refunds and disbursements (payouts), with timeouts, bounded retries and typed
errors.

Idempotent calls (GETs and login) are retried with exponential backoff on connection
errors and 5xx; calls that create something at Monnify are sent once, since a retry after
a lost answer could create it twice. On a 401 the token is renewed once and the call
repeated: Monnify did not act on a request it refused to authenticate.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
import simplejson

from shared.logs import get_logger
from shared.money import exponent_of, to_major
from shared.monnify.disbursements import Bank, Disbursement, ResolvedAccount
from shared.monnify.errors import (
    MonnifyAuthError,
    MonnifyNotFound,
    MonnifyProtocolError,
    MonnifyRejected,
    MonnifyUnavailable,
)
from shared.monnify.models import (
    BankTransferAccount,
    CheckoutSession,
    Refund,
    Transaction,
    parse_amount,
    parse_optional_amount,
)
from shared.monnify.reserved_accounts import (
    CREATE_PATH,
    DETAILS_PATH,
    TRANSACTIONS_PATH,
    ReservedAccount,
    TransferPage,
)

log = get_logger(__name__)

LOGIN_PATH = "/api/v1/auth/login"
INIT_TRANSACTION_PATH = "/api/v1/merchant/transactions/init-transaction"
INIT_BANK_TRANSFER_PATH = "/api/v1/merchant/bank-transfer/init-payment"
TRANSACTION_PATH = "/api/v2/transactions/{reference}"
TRANSACTION_QUERY_PATH = "/api/v2/merchant/transactions/query"
INITIATE_REFUND_PATH = "/api/v1/refunds/initiate-refund"
REFUND_PATH = "/api/v1/refunds/{reference}"
BANKS_PATH = "/api/v1/banks"
VALIDATE_ACCOUNT_PATH = "/api/v1/disbursements/account/validate"
SINGLE_DISBURSEMENT_PATH = "/api/v2/disbursements/single"
DISBURSEMENT_OTP_PATH = "/api/v2/disbursements/single/validate-otp"
DISBURSEMENT_SUMMARY_PATH = "/api/v2/disbursements/single/summary"
WALLET_BALANCE_PATH = "/api/v2/disbursements/wallet-balance"

DEFAULT_PAYMENT_METHODS = ("ACCOUNT_TRANSFER", "CARD")


@dataclass(frozen=True)
class RetryPolicy:
    """How idempotent calls are retried: `attempts` in all, sleeping base * 2**n (+ jitter)."""

    attempts: int = 3
    base_seconds: float = 0.25
    max_seconds: float = 4.0

    def delay(self, retry: int) -> float:
        backoff = min(self.max_seconds, self.base_seconds * 2**retry)
        return backoff + random.uniform(0, backoff / 4)


@dataclass
class _Token:
    value: str
    renew_at: float


class MonnifyClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        secret_key: str,
        contract_code: str,
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        self.contract_code = contract_code
        self._credentials = (api_key, secret_key)
        self._timeout = (connect_timeout, read_timeout)
        self._retry = retry or RetryPolicy()
        self._session = session or requests.Session()
        self._clock = clock
        self._sleep = sleep
        self._token: _Token | None = None
        self._token_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the keys or the token
        return f"MonnifyClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._session.close()

    # --- the API -------------------------------------------------------------------------

    def init_transaction(
        self,
        *,
        amount_minor: int,
        currency: str,
        payment_reference: str,
        customer_name: str,
        customer_email: str,
        payment_description: str,
        redirect_url: str | None = None,
        payment_methods: tuple[str, ...] = DEFAULT_PAYMENT_METHODS,
        metadata: Mapping[str, Any] | None = None,
    ) -> CheckoutSession:
        """Start a one-time payment; Monnify answers with its transactionReference."""
        payload: dict[str, Any] = {
            "amount": to_major(amount_minor, exponent_of(currency)),
            "customerName": customer_name,
            "customerEmail": customer_email,
            "paymentReference": payment_reference,
            "paymentDescription": payment_description,
            "currencyCode": currency,
            "contractCode": self.contract_code,
            "paymentMethods": list(payment_methods),
        }
        if redirect_url:
            payload["redirectUrl"] = redirect_url
        if metadata:
            payload["metaData"] = dict(metadata)
        body = self._call("POST", INIT_TRANSACTION_PATH, json_body=payload)
        session = CheckoutSession.from_payload(body)
        _expect_same("paymentReference", session.payment_reference, payment_reference)
        _expect_same_amount(body.get("amount"), amount_minor, currency)
        return session

    def init_bank_transfer(
        self,
        transaction_reference: str,
        *,
        bank_code: str | None = None,
        currency: str = "NGN",
        expected_amount_minor: int | None = None,
    ) -> BankTransferAccount:
        """Get the dynamic account a customer pays into by bank transfer."""
        payload: dict[str, Any] = {"transactionReference": transaction_reference}
        if bank_code:
            payload["bankCode"] = bank_code
        body = self._call("POST", INIT_BANK_TRANSFER_PATH, json_body=payload)
        account = BankTransferAccount.from_payload(
            body, transaction_reference, datetime.now(UTC), currency
        )
        if expected_amount_minor is not None and account.amount_minor is not None:
            _expect_same("amount", account.amount_minor, expected_amount_minor)
        return account

    def get_transaction(self, transaction_reference: str) -> Transaction:
        """The status API by Monnify's transactionReference."""
        path = TRANSACTION_PATH.format(reference=quote(transaction_reference, safe=""))
        transaction = Transaction.from_payload(self._call("GET", path))
        _expect_same(
            "transactionReference", transaction.transaction_reference, transaction_reference
        )
        return transaction

    def get_transaction_by_payment_reference(self, payment_reference: str) -> Transaction:
        """The status API by our own paymentReference."""
        body = self._call(
            "GET", TRANSACTION_QUERY_PATH, params={"paymentReference": payment_reference}
        )
        transaction = Transaction.from_payload(body)
        _expect_same("paymentReference", transaction.payment_reference, payment_reference)
        return transaction

    def initiate_refund(
        self,
        *,
        transaction_reference: str,
        refund_reference: str,
        amount_minor: int,
        reason: str,
        currency: str = "NGN",
        customer_note: str | None = None,
        destination_account_number: str | None = None,
        destination_bank_code: str | None = None,
    ) -> Refund:
        payload: dict[str, Any] = {
            "transactionReference": transaction_reference,
            "refundReference": refund_reference,
            "refundAmount": to_major(amount_minor, exponent_of(currency)),
            "refundReason": reason,
        }
        if customer_note:
            payload["customerNote"] = customer_note
        if destination_account_number:
            payload["destinationAccountNumber"] = destination_account_number
            payload["destinationAccountBankCode"] = destination_bank_code
        refund = Refund.from_payload(
            self._call("POST", INITIATE_REFUND_PATH, json_body=payload), currency
        )
        _expect_same("refundReference", refund.refund_reference, refund_reference)
        _expect_same("refundAmount", refund.refund_amount_minor, amount_minor)
        return refund

    def get_refund(self, refund_reference: str, currency: str = "NGN") -> Refund:
        path = REFUND_PATH.format(reference=quote(refund_reference, safe=""))
        refund = Refund.from_payload(self._call("GET", path), currency)
        _expect_same("refundReference", refund.refund_reference, refund_reference)
        return refund

    # --- reserved accounts ---------------------------------------------------------------

    def create_reserved_account(
        self,
        *,
        account_reference: str,
        account_name: str,
        currency: str,
        customer_email: str,
        customer_name: str,
        kyc: tuple[str, str],
        preferred_banks: tuple[str, ...] = (),
    ) -> ReservedAccount:
        """Reserve a customer's permanent accounts. `kyc` is ("bvn" or "nin", number).
        Monnify refuses a reference it already has (MonnifyRejected): ask for its details."""
        kyc_type, kyc_number = kyc
        payload: dict[str, Any] = {
            "accountReference": account_reference,
            "accountName": account_name,
            "currencyCode": currency,
            "contractCode": self.contract_code,
            "customerEmail": customer_email,
            "customerName": customer_name,
            kyc_type: kyc_number,
        }
        if preferred_banks:
            payload["getAllAvailableBanks"] = False
            payload["preferredBanks"] = list(preferred_banks)
        else:
            payload["getAllAvailableBanks"] = True
        account = ReservedAccount.from_payload(self._call("POST", CREATE_PATH, json_body=payload))
        _expect_same("accountReference", account.account_reference, account_reference)
        return account

    def get_reserved_account(self, account_reference: str) -> ReservedAccount:
        path = DETAILS_PATH.format(reference=quote(account_reference, safe=""))
        account = ReservedAccount.from_payload(self._call("GET", path))
        _expect_same("accountReference", account.account_reference, account_reference)
        return account

    def reserved_account_transactions(
        self, account_reference: str, *, page: int, size: int
    ) -> TransferPage:
        """One page of the transfers into a reserved account, newest first."""
        params = {"accountReference": account_reference, "page": str(page), "size": str(size)}
        return TransferPage.from_payload(self._call("GET", TRANSACTIONS_PATH, params=params))

    # --- authentication ------------------------------------------------------------------

    def _bearer(self) -> str:
        with self._token_lock:
            if self._token is None or self._clock() >= self._token.renew_at:
                self._token = self._login()
            return self._token.value

    def _forget_token(self, stale: str) -> None:
        with self._token_lock:
            if self._token is not None and self._token.value == stale:
                self._token = None

    def _login(self) -> _Token:
        response = self._send_with_retries("POST", LOGIN_PATH, auth=self._credentials)
        if response.status_code == 401:
            raise MonnifyAuthError("Monnify refused the API key and secret key", http_status=401)
        body = _response_body(response)
        token = body.get("accessToken")
        expires_in = body.get("expiresIn")
        if not isinstance(token, str) or not token or not _is_number(expires_in):
            raise MonnifyProtocolError("Monnify's login answer lacks accessToken or expiresIn")
        lifetime = float(expires_in)
        # Renew a little early so a token never expires in flight.
        margin = min(60.0, lifetime / 10)
        log.info("monnify.login", expires_in=int(lifetime))
        return _Token(token, self._clock() + lifetime - margin)

    # --- transport -----------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        shape: type = dict,
    ) -> Any:
        """An authenticated call: the envelope's responseBody (a `shape`: an object, or
        a list for the bank list), or a typed error."""
        data = None if json_body is None else simplejson.dumps(json_body, use_decimal=True)
        for renewed in (False, True):
            token = self._bearer()
            headers = {"Authorization": f"Bearer {token}"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            if method == "GET":
                response = self._send_with_retries(method, path, headers=headers, params=params)
            else:
                response = self._send(method, path, headers=headers, params=params, data=data)
            if response.status_code != 401:
                return _response_body(response, shape)
            self._forget_token(token)
            if renewed:
                break
            log.info("monnify.token_refused", path=path)
        raise MonnifyAuthError("Monnify refused a freshly issued access token", http_status=401)

    def _send_with_retries(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send an idempotent request, retrying connection errors and 5xx with backoff."""
        for retry in range(self._retry.attempts):
            last = retry == self._retry.attempts - 1
            try:
                response = self._send(method, path, **kwargs)
            except MonnifyUnavailable:
                if last:
                    raise
            else:
                if response.status_code < 500 or last:
                    return response
            delay = self._retry.delay(retry)
            log.warning(
                "monnify.retry",
                method=method,
                path=path,
                attempt=retry + 1,
                delay_seconds=round(delay, 3),
            )
            self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        started = time.perf_counter()
        try:
            response = self._session.request(
                method, self.base_url + path, timeout=self._timeout, **kwargs
            )
        except requests.Timeout:
            log.warning("monnify.timeout", method=method, path=path)
            raise MonnifyUnavailable("Monnify did not answer in time") from None
        except requests.RequestException as exc:
            log.warning("monnify.unreachable", method=method, path=path, error=type(exc).__name__)
            raise MonnifyUnavailable("Monnify could not be reached") from None
        log.info(
            "monnify.response",
            method=method,
            path=path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    # Disbursements ------------------------------------------------------------------------

    def list_banks(self) -> list[Bank]:
        return [Bank.from_payload(bank) for bank in self._call("GET", BANKS_PATH, shape=list)]

    def resolve_account(self, account_number: str, bank_code: str) -> ResolvedAccount:
        """The name on a bank account; an account Monnify can't resolve is MonnifyRejected."""
        params = {"accountNumber": account_number, "bankCode": bank_code}
        account = ResolvedAccount.from_payload(
            self._call("GET", VALIDATE_ACCOUNT_PATH, params=params)
        )
        _expect_same("accountNumber", account.account_number, account_number)
        return account

    def send_disbursement(
        self,
        *,
        reference: str,
        amount_minor: int,
        currency: str,
        bank_code: str,
        account_number: str,
        account_name: str | None,
        narration: str,
        source_account_number: str,
    ) -> Disbursement:
        """A single transfer, sent once: `reference` is ours and unique, so after a lost
        answer the caller looks it up (`disbursement_summary`) instead of sending again."""
        payload: dict[str, Any] = {
            "amount": to_major(amount_minor, exponent_of(currency)),
            "reference": reference,
            "narration": narration,
            "destinationBankCode": bank_code,
            "destinationAccountNumber": account_number,
            "currency": currency,
            "sourceAccountNumber": source_account_number,
        }
        if account_name:
            payload["destinationAccountName"] = account_name
        body = self._call("POST", SINGLE_DISBURSEMENT_PATH, json_body=payload)
        return _same_disbursement(
            Disbursement.from_payload(body, currency), reference, amount_minor
        )

    def authorize_disbursement(
        self, reference: str, otp: str, currency: str = "NGN"
    ) -> Disbursement:
        """A transfer waiting for its OTP (PENDING_AUTHORIZATION), authorized."""
        payload = {"reference": reference, "authorizationCode": otp}
        body = self._call("POST", DISBURSEMENT_OTP_PATH, json_body=payload)
        disbursement = Disbursement.from_payload(body, currency)
        _expect_same("reference", disbursement.reference, reference)
        return disbursement

    def disbursement_summary(self, reference: str, currency: str = "NGN") -> Disbursement:
        """A transfer's current status by our reference; MonnifyNotFound if never made."""
        body = self._call("GET", DISBURSEMENT_SUMMARY_PATH, params={"reference": reference})
        disbursement = Disbursement.from_payload(body, currency)
        _expect_same("reference", disbursement.reference, reference)
        return disbursement

    def wallet_balance(self, account_number: str, currency: str = "NGN") -> int:
        """The merchant wallet's available balance, in minor units."""
        body = self._call("GET", WALLET_BALANCE_PATH, params={"accountNumber": account_number})
        return parse_amount(body.get("availableBalance"), "availableBalance", currency)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def _response_body(response: requests.Response, shape: type = dict) -> Any:
    """Unwrap Monnify's envelope, turning every kind of failure into a typed error."""
    status = response.status_code
    envelope = _parse_envelope(response)
    if status >= 500:
        message = _message(envelope) or f"HTTP {status}"
        raise MonnifyUnavailable(f"Monnify failed: {message}", http_status=status)
    if envelope is None:
        raise MonnifyProtocolError(
            f"Monnify answered HTTP {status} without a JSON envelope", http_status=status
        )
    code = _response_code(envelope)
    if status >= 400 or envelope.get("requestSuccessful") is not True or code != "0":
        message = _message(envelope) or f"HTTP {status}"
        error = MonnifyNotFound if status == 404 else MonnifyRejected
        raise error(message, response_code=code, http_status=status)
    body = envelope.get("responseBody")
    if not isinstance(body, shape):
        raise MonnifyProtocolError("Monnify's answer lacks responseBody", http_status=status)
    return body


def _parse_envelope(response: requests.Response) -> dict[str, Any] | None:
    try:
        envelope = simplejson.loads(response.content, use_decimal=True)
    except ValueError:
        return None
    return envelope if isinstance(envelope, dict) else None


def _response_code(envelope: Mapping[str, Any]) -> str | None:
    """responseCode comes as "0" or 0 or "R9": compare as trimmed text."""
    code = envelope.get("responseCode")
    return None if code is None else str(code).strip()


def _message(envelope: Mapping[str, Any] | None) -> str | None:
    if not envelope:
        return None
    message = envelope.get("responseMessage")
    return str(message)[:300] if message else None


def _expect_same(name: str, received: Any, sent: Any) -> None:
    if received != sent:
        raise MonnifyProtocolError(
            f"Monnify answered with {name} {received!r} for a request with {sent!r}"
        )


def _expect_same_amount(received: Any, amount_minor: int, currency: str) -> None:
    """Where Monnify echoes the amount, it must be the amount we asked for."""
    echoed = parse_optional_amount(received, "amount", currency)
    if echoed is not None:
        _expect_same("amount", echoed, amount_minor)


def _same_disbursement(
    disbursement: Disbursement, reference: str, amount_minor: int
) -> Disbursement:
    _expect_same("reference", disbursement.reference, reference)
    _expect_same("amount", disbursement.amount_minor, amount_minor)
    return disbursement
