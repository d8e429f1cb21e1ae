"""Monnify: the API client, webhook signatures, and the parsed shapes of its responses.

`MonnifyClient` talks to whatever `MONNIFY_BASE_URL` names: Monnify's sandbox or live API,
or the local simulator in `services/monnify_sim/`. The contract is in
`reference/monnify.md`.
"""

from shared.monnify.client import MonnifyClient
from shared.monnify.errors import (
    MonnifyAuthError,
    MonnifyError,
    MonnifyNotFound,
    MonnifyProtocolError,
    MonnifyRejected,
    MonnifyUnavailable,
)
from shared.monnify.models import (
    BankTransferAccount,
    CheckoutSession,
    PaymentStatus,
    Refund,
    RefundStatus,
    Transaction,
)
from shared.monnify.signature import (
    SIGNATURE_HEADER,
    compute_signature,
    compute_transaction_hash,
    verify_signature,
    verify_transaction_hash,
)

__all__ = [
    "SIGNATURE_HEADER",
    "BankTransferAccount",
    "CheckoutSession",
    "MonnifyAuthError",
    "MonnifyClient",
    "MonnifyError",
    "MonnifyNotFound",
    "MonnifyProtocolError",
    "MonnifyRejected",
    "MonnifyUnavailable",
    "PaymentStatus",
    "Refund",
    "RefundStatus",
    "Transaction",
    "compute_signature",
    "compute_transaction_hash",
    "verify_signature",
    "verify_transaction_hash",
]
