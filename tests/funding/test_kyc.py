"""KYC numbers: validated, encrypted with rotating keys, and never shown by a repr."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from shared.kyc import KycNumber, KycUnreadable, KycVault

BVN = "22212345678"


@pytest.mark.parametrize(
    "kind, number",
    [("bvn", "1234567890"), ("nin", "123456789012"), ("bvn", "1234567890a"), ("tin", BVN)],
)
def test_only_eleven_digit_bvns_and_nins(kind, number):
    with pytest.raises(ValueError) as refused:
        KycNumber(kind, number)
    assert number not in str(refused.value)


def test_the_repr_shows_the_last_four_digits_only():
    text = repr(KycNumber("bvn", BVN))
    assert BVN not in text and "5678" in text


def test_encrypted_numbers_survive_a_key_rotation_and_need_a_key():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = KycVault((old,)).encrypt(BVN)
    assert BVN not in token
    assert KycVault((new, old)).decrypt(token) == BVN
    with pytest.raises(KycUnreadable):
        KycVault((new,)).decrypt(token)
    assert old not in repr(KycVault((old,)))
