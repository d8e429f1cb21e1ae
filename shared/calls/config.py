"""How pay-per-minute calls are priced and timed. Read from the environment with the rest
of the configuration (`load_settings`), which also checks how the values relate."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class CallConfig:
    """Pay-per-minute calls: prices in minor units, timings in seconds."""

    default_rate_per_minute: int
    min_rate_per_minute: int
    max_rate_per_minute: int
    connect_fee: int
    billing_increment_seconds: int
    hold_block_seconds: int
    renew_lead_seconds: int
    max_concurrent: int
    max_duration_seconds: int
    sweep_interval_seconds: int
    sweep_grace_seconds: int
    hold_expiry_grace_seconds: int
    platform_fee_percent: Decimal
    low_funds_warning_seconds: int
