"""The simulator instance a Flask app serves: config, state and webhook dispatcher."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from services.monnify_sim.config import SimConfig
from services.monnify_sim.delivery import Delivery, Dispatcher
from services.monnify_sim.payout_state import DisbursementBook
from services.monnify_sim.render import refund_event_data, transaction_event_data
from services.monnify_sim.state import SimRefund, SimState, SimTransaction

EXTENSION = "monnify_sim"


@dataclass
class Simulator:
    config: SimConfig
    state: SimState
    dispatcher: Dispatcher
    disbursements: DisbursementBook = field(default_factory=DisbursementBook)

    def notify_transaction(
        self, transaction: SimTransaction, *, times: int = 1, delay_seconds: float = 0.0
    ) -> list[Delivery]:
        """SUCCESSFUL_TRANSACTION with the transaction as it is now."""
        with self.state.lock:
            data = transaction_event_data(transaction, self.config)
        return self.dispatcher.send(
            "SUCCESSFUL_TRANSACTION",
            data,
            transaction.transaction_reference,
            times=times,
            delay_seconds=delay_seconds,
        )

    def notify_refund(self, refund: SimRefund) -> list[Delivery]:
        event_type = "SUCCESSFUL_REFUND" if refund.status == "COMPLETED" else "FAILED_REFUND"
        with self.state.lock:
            data = refund_event_data(refund, self.config)
        return self.dispatcher.send(event_type, data, refund.refund_reference)

    def reset(self) -> None:
        self.dispatcher.reset()
        self.state.reset()
        self.disbursements.reset()


def current_sim() -> Simulator:
    return current_app.extensions[EXTENSION]
