"""A user's KYC number (BVN or NIN), which Monnify needs to reserve a bank account.

Monnify needs the number itself, so it is kept encrypted (Fernet, keys from
KYC_ENCRYPTION_KEY; the first encrypts, any decrypts, so keys can be rotated) in its own
collection, away from the user documents the gateway loads on every request. Only the
type and the last four digits are kept in clear, as a hint for the user. The number is
never logged, returned or put in an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pymongo.database import Database

KYC_TYPES = ("bvn", "nin")
KYC_DIGITS = 11


@dataclass(frozen=True)
class KycNumber:
    """A validated BVN or NIN. Its repr hides the number, so it can't leak into a log."""

    type: str
    number: str

    def __post_init__(self) -> None:
        if self.type not in KYC_TYPES:
            raise ValueError(f"type must be one of {', '.join(KYC_TYPES)}")
        if len(self.number) != KYC_DIGITS or not self.number.isascii() or not self.number.isdigit():
            raise ValueError(f"a {self.type} is {KYC_DIGITS} digits")

    def __repr__(self) -> str:
        return f"KycNumber(type={self.type!r}, last4={self.number[-4:]!r})"


class KycVault:
    """Encrypts and decrypts KYC numbers with the configured keys."""

    def __init__(self, keys: tuple[str, ...]):
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def __repr__(self) -> str:  # never show the keys
        return "KycVault()"

    def encrypt(self, number: str) -> str:
        return self._fernet.encrypt(number.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise KycUnreadable("The stored KYC number cannot be decrypted with any key") from None


class KycUnreadable(Exception):
    """The stored number was encrypted with a key no longer configured."""


def save_kyc(db: Database, vault: KycVault, user_id: ObjectId, kyc: KycNumber) -> dict[str, Any]:
    """Store (or replace) the user's number; returns the public view."""
    now = datetime.now(UTC)
    record = {
        "type": kyc.type,
        "encrypted": vault.encrypt(kyc.number),
        "last4": kyc.number[-4:],
        "updatedAt": now,
    }
    db.kyc.update_one(
        {"_id": user_id}, {"$set": record, "$setOnInsert": {"createdAt": now}}, upsert=True
    )
    return kyc_view(record)


def load_kyc(db: Database, vault: KycVault, user_id: ObjectId) -> KycNumber | None:
    record = db.kyc.find_one({"_id": user_id})
    if record is None:
        return None
    return KycNumber(record["type"], vault.decrypt(record["encrypted"]))


def kyc_view(record: dict[str, Any]) -> dict[str, Any]:
    """What the user may see of it: the type and a hint, never the number."""
    return {"type": record["type"], "last4": record["last4"], "updatedAt": record["updatedAt"]}
