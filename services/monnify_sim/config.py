"""The simulator's configuration: Monnify credentials and URLs from shared Settings, plus
its own knobs, read from the environment:

- MONNIFY_API_KEY, MONNIFY_SECRET_KEY, MONNIFY_CONTRACT_CODE: the credentials it accepts
  and signs webhooks with (shared Settings).
- MONNIFY_WALLET_ACCOUNT_NUMBER: the merchant wallet payouts are sent from (shared
  Settings); the only source account its disbursements accept.
- MONNIFY_SIM_PORT (default 3100): where it listens (shared Settings).
- MONNIFY_WEBHOOK_URL: where notifications go (shared Settings; default the gateway's
  `/payments/monnify/webhook`).
- MONNIFY_SIM_HOST (default 127.0.0.1): the interface to bind; 0.0.0.0 in a container.
- SIM_PUBLIC_URL (default http://127.0.0.1:$MONNIFY_SIM_PORT): the base of checkoutUrl.
- SIM_TOKEN_SECONDS (default 3600): access-token lifetime (`expiresIn`).
- SIM_WEBHOOK_RETRY_SECONDS (default 300) and SIM_WEBHOOK_MAX_TRIES (default 12): a
  notification not answered 200 is tried again after this many seconds, this many times
  in all, as Monnify does.
- SIM_WEBHOOK_TIMEOUT_SECONDS (default 5): how long one delivery waits for an answer.
- SIM_AMOUNT_FORMAT (number|string, default number): amounts as JSON numbers (100.00)
  or strings ("100.00"); Monnify sends both.
- SIM_PAID_ON_FORMAT (millis|ampm, default millis): `2021-11-17 11:28:42.615` or
  `17/11/2021 3:48:10 PM`; Monnify sends both.
- SIM_NUMERIC_RESPONSE_CODES (default false): error responseCode as a number (99), not "99".
- SIM_SLOW_SECONDS (default 5): how long each API call stalls in the "slow" fault mode.

All but the credentials, URLs and port can also be changed at run time with
`POST /sim/config`, so tests can share one simulator.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.settings import (
    Reader,
    Settings,
    choice,
    http_url,
    load_settings,
    parse_bool,
    parse_positive_float,
    parse_positive_int,
)

AMOUNT_FORMATS = ("number", "string")
PAID_ON_FORMATS = ("millis", "ampm")

SIM_ENV_NAMES = (
    "MONNIFY_SIM_HOST",
    "SIM_PUBLIC_URL",
    "SIM_TOKEN_SECONDS",
    "SIM_WEBHOOK_RETRY_SECONDS",
    "SIM_WEBHOOK_MAX_TRIES",
    "SIM_WEBHOOK_TIMEOUT_SECONDS",
    "SIM_AMOUNT_FORMAT",
    "SIM_PAID_ON_FORMAT",
    "SIM_NUMERIC_RESPONSE_CODES",
    "SIM_SLOW_SECONDS",
)


@dataclass
class SimConfig:
    api_key: str
    secret_key: str
    contract_code: str
    wallet_account_number: str
    webhook_url: str
    host: str
    port: int
    public_url: str
    token_seconds: int = 3600
    webhook_retry_seconds: float = 300.0
    webhook_max_tries: int = 12
    webhook_timeout_seconds: float = 5.0
    amount_format: str = "number"
    paid_on_format: str = "millis"
    numeric_response_codes: bool = False
    slow_seconds: float = 5.0

    # Knobs `POST /sim/config` may change, by their JSON names.
    RUNTIME_KEYS = {
        "tokenSeconds": "token_seconds",
        "webhookUrl": "webhook_url",
        "webhookRetrySeconds": "webhook_retry_seconds",
        "webhookMaxTries": "webhook_max_tries",
        "webhookTimeoutSeconds": "webhook_timeout_seconds",
        "amountFormat": "amount_format",
        "paidOnFormat": "paid_on_format",
        "numericResponseCodes": "numeric_response_codes",
        "slowSeconds": "slow_seconds",
    }

    def public_view(self) -> dict[str, Any]:
        """The run-time knobs, for `GET /sim/config`; never the secret key."""
        return {name: getattr(self, attr) for name, attr in self.RUNTIME_KEYS.items()}

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply `POST /sim/config` changes, all or none; ValueError names a bad one."""
        parsed = {}
        for name, value in changes.items():
            attr = self.RUNTIME_KEYS.get(name)
            if attr is None:
                raise ValueError(f"unknown setting {name}")
            parsed[attr] = _PARSERS[attr](
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        for attr, value in parsed.items():
            setattr(self, attr, value)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "webhook_url": http_url,
    "token_seconds": parse_positive_int,
    "webhook_retry_seconds": parse_positive_float,
    "webhook_max_tries": parse_positive_int,
    "webhook_timeout_seconds": parse_positive_float,
    "amount_format": choice(AMOUNT_FORMATS),
    "paid_on_format": choice(PAID_ON_FORMATS),
    "numeric_response_codes": parse_bool,
    "slow_seconds": parse_positive_float,
}


def load_sim_config(
    settings: Settings | None = None, env: Mapping[str, str] | None = None
) -> SimConfig:
    """Build the simulator's config, raising ConfigError naming the first bad variable."""
    env = os.environ if env is None else env
    settings = settings or load_settings(env)
    read = Reader(env).get
    port = settings.monnify_sim_port
    return SimConfig(
        api_key=settings.monnify_api_key,
        secret_key=settings.monnify_secret_key,
        contract_code=settings.monnify_contract_code,
        wallet_account_number=settings.payouts.wallet_account_number,
        webhook_url=settings.monnify_webhook_url,
        host=read("MONNIFY_SIM_HOST", str, "127.0.0.1"),
        port=port,
        public_url=read("SIM_PUBLIC_URL", http_url, f"http://127.0.0.1:{port}"),
        token_seconds=read("SIM_TOKEN_SECONDS", parse_positive_int, "3600"),
        webhook_retry_seconds=read("SIM_WEBHOOK_RETRY_SECONDS", parse_positive_float, "300"),
        webhook_max_tries=read("SIM_WEBHOOK_MAX_TRIES", parse_positive_int, "12"),
        webhook_timeout_seconds=read("SIM_WEBHOOK_TIMEOUT_SECONDS", parse_positive_float, "5"),
        amount_format=read("SIM_AMOUNT_FORMAT", choice(AMOUNT_FORMATS), "number"),
        paid_on_format=read("SIM_PAID_ON_FORMAT", choice(PAID_ON_FORMATS), "millis"),
        numeric_response_codes=read("SIM_NUMERIC_RESPONSE_CODES", parse_bool, "false"),
        slow_seconds=read("SIM_SLOW_SECONDS", parse_positive_float, "5"),
    )
