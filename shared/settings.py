"""Configuration, read from the environment once at start-up and validated.

Every process (gateway, worker, beat, simulator, launcher) calls `load_settings()`;
a missing or malformed value raises `ConfigError` naming the variable, and the
entry points turn that into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TypeVar
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from limits import parse_many

from shared.calls.config import CallConfig
from shared.funding.config import MAX_TASK_RETRY_DELAY_SECONDS
from shared.money import CURRENCY_EXPONENTS, to_minor
from shared.payouts.config import PayoutPolicy
from shared.redis_url import validate_redis_url

T = TypeVar("T")


DEFAULT_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"
# A Fernet key for development and tests only (production refuses it).
DEFAULT_KYC_ENCRYPTION_KEY = "ZGV2LW9ubHkta3ljLWtleS1jaGFuZ2UtbWUtMzJieXQ="
MIN_PRODUCTION_SECRET_LENGTH = 32
MIN_PRODUCTION_SECRET_DISTINCT_CHARACTERS = 8
_SIMULATOR_HOSTS = ("localhost", "monnify-sim", "0.0.0.0")
ENVIRONMENTS = ("development", "test", "production")
_DEV_DATABASE_URL = "mongodb://127.0.0.1:27017/payment_calls"


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    app_env: str
    port: int
    database_url: str
    redis_url: str
    jwt_secret: str
    access_token_seconds: int
    refresh_token_seconds: int
    session_max_age_seconds: int
    monnify_api_key: str
    monnify_secret_key: str
    monnify_contract_code: str
    monnify_base_url: str
    monnify_sim_port: int
    monnify_webhook_url: str
    currencies: tuple[str, ...]
    max_amount_minor: int
    min_funding_minor: int
    max_body_bytes: int
    signup_rate_limit: str
    login_rate_limit: str
    calls: CallConfig
    lock_timeout_seconds: float
    lock_wait_seconds: float
    log_json: bool
    log_level: str
    worker_metrics_port: int
    prometheus_multiproc_dir: str
    sse_heartbeat_seconds: float
    audit_seal_interval_seconds: float
    monnify_allowed_ips: tuple[str, ...]
    monnify_accept_legacy_hash: bool
    trusted_proxy_count: int
    confirmation_retry_window_seconds: int
    reconcile_pending_after_seconds: int
    inbox_requeue_after_seconds: int
    broker_visibility_timeout_seconds: int
    reconcile_interval_seconds: int
    reconcile_credited_lookback_seconds: int
    reconcile_credited_every_seconds: int
    refund_review_after_seconds: int
    invariants_settle_seconds: int
    otel_exporter_otlp_endpoint: str
    otel_traces_sample_ratio: float
    kyc_encryption_keys: tuple[str, ...]
    reserved_account_banks: tuple[str, ...]
    payouts: PayoutPolicy

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def monnify_is_simulator(self) -> bool:
        """Monnify is the local simulator: a loopback, unspecified or `monnify-sim` host."""
        host = urlsplit(self.monnify_base_url).hostname or ""
        if host in _SIMULATOR_HOSTS:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return address.is_loopback or address.is_unspecified

    @property
    def default_currency(self) -> str:
        return self.currencies[0]


def _parse_non_negative_int(raw: str) -> int:
    value = int(raw, 10)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def _parse_port(raw: str) -> int:
    value = int(raw, 10)
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port, 1 to 65535")
    return value


def parse_positive_int(raw: str) -> int:
    value = int(raw, 10)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _parse_port_or_off(raw: str) -> int:
    value = int(raw, 10)
    if not 0 <= value < 65536:
        raise ValueError("must be a TCP port, or 0 for off")
    return value


def parse_positive_float(raw: str) -> float:
    value = float(raw)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError("must be a positive number")
    return value


def _parse_log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in logging.getLevelNamesMapping():
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def _parse_rate_limit(raw: str) -> str:
    """flask-limiter notation, e.g. `10 per minute` or `5/minute;100/day`."""
    parse_many(raw)  # raises ValueError when malformed
    return raw


def parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def choice(options: tuple[str, ...]) -> Callable[[str], str]:
    """A parser accepting exactly one of `options`."""

    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return raw

    return parse


def _parse_currencies(raw: str) -> tuple[str, ...]:
    codes = tuple(code.strip().upper() for code in raw.split(",") if code.strip())
    unknown = [code for code in codes if code not in CURRENCY_EXPONENTS]
    if not codes or unknown:
        supported = ", ".join(CURRENCY_EXPONENTS)
        raise ValueError(f"must be a comma-separated list of {supported}")
    return codes


def _parse_major_amount(raw: str) -> int:
    try:
        return to_minor(Decimal(raw))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError("must be an amount in major units, at most 2 decimals") from exc


def _parse_positive_amount(raw: str) -> int:
    value = _parse_major_amount(raw)
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def _parse_fernet_keys(raw: str) -> tuple[str, ...]:
    """Comma-separated Fernet keys: the first encrypts, every one decrypts (rotation)."""
    keys = tuple(part.strip() for part in raw.split(",") if part.strip())
    try:
        for key in keys:
            Fernet(key)
    except (ValueError, TypeError):
        raise ValueError(
            "must be Fernet keys (urlsafe base64 of 32 bytes), comma-separated"
        ) from None
    if not keys:
        raise ValueError("must hold at least one Fernet key")
    return keys


def _parse_bank_codes(raw: str) -> tuple[str, ...]:
    """Empty: every bank Monnify offers; else comma-separated bank codes (digits)."""
    codes = tuple(part.strip() for part in raw.split(",") if part.strip())
    if any(not code.isdigit() for code in codes):
        raise ValueError("must be empty or a comma-separated list of bank codes like 035")
    return codes


def _parse_ip_list(raw: str) -> tuple[str, ...]:
    """`*` allows every source; otherwise a comma-separated list of IP addresses."""
    if raw.strip() == "*":
        return ()
    addresses = tuple(str(ipaddress.ip_address(part.strip())) for part in raw.split(","))
    if not addresses:
        raise ValueError("must be * or a comma-separated list of IP addresses")
    return addresses


def _url(*schemes: str) -> Callable[[str], str]:
    """A parser for URLs with one of `schemes` and a host."""

    def parse(raw: str) -> str:
        parts = urlsplit(raw.strip())
        if parts.scheme not in schemes or not parts.netloc.rsplit("@", 1)[-1].strip(":"):
            raise ValueError(f"must be a URL like {schemes[0]}://host:port/...")
        return raw.strip().rstrip("/")

    return parse


http_url = _url("http", "https")


def _parse_ratio(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1:
        raise ValueError("must be a number from 0 to 1")
    return value


def _optional_http_url(raw: str) -> str:
    return http_url(raw) if raw.strip() else ""


def _parse_fee_amount(raw: str) -> int:
    value = _parse_major_amount(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _parse_percent(raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError("must be a percentage between 0 and 100") from None
    if not value.is_finite() or not 0 <= value <= 100 or value.as_tuple().exponent < -2:
        raise ValueError("must be a percentage between 0 and 100, at most 2 decimals")
    return value


def _read_call_settings(read: Callable[..., object]) -> CallConfig:
    calls = CallConfig(
        default_rate_per_minute=read("CALL_DEFAULT_RATE_PER_MINUTE", _parse_major_amount, "50"),
        min_rate_per_minute=read("CALL_MIN_RATE_PER_MINUTE", _parse_major_amount, "1"),
        max_rate_per_minute=read("CALL_MAX_RATE_PER_MINUTE", _parse_major_amount, "1000"),
        connect_fee=read("CALL_CONNECT_FEE", _parse_fee_amount, "0"),
        billing_increment_seconds=read("CALL_BILLING_INCREMENT_SECONDS", parse_positive_int, "60"),
        hold_block_seconds=read("CALL_HOLD_BLOCK_SECONDS", parse_positive_int, "300"),
        renew_lead_seconds=read("CALL_RENEW_LEAD_SECONDS", parse_positive_int, "15"),
        max_concurrent=read("CALL_MAX_CONCURRENT", parse_positive_int, "1"),
        max_duration_seconds=read("CALL_MAX_DURATION_SECONDS", parse_positive_int, "14400"),
        sweep_interval_seconds=read("CALL_SWEEP_INTERVAL_SECONDS", parse_positive_int, "30"),
        sweep_grace_seconds=read("CALL_SWEEP_GRACE_SECONDS", parse_positive_int, "30"),
        hold_expiry_grace_seconds=read(
            "CALL_HOLD_EXPIRY_GRACE_SECONDS", parse_positive_int, "86400"
        ),
        platform_fee_percent=read("PLATFORM_FEE_PERCENT", _parse_percent, "20"),
        low_funds_warning_seconds=read("CALL_LOW_FUNDS_WARNING_SECONDS", parse_positive_int, "60"),
    )
    _check_call_settings(calls)
    return calls


def _check_call_settings(calls: CallConfig) -> None:
    """Relations between the call settings that rating and billing rely on."""
    increment = calls.billing_increment_seconds
    if calls.hold_block_seconds % increment:
        raise ConfigError("CALL_HOLD_BLOCK_SECONDS must be a multiple of the billing increment")
    if calls.renew_lead_seconds >= calls.hold_block_seconds:
        raise ConfigError("CALL_RENEW_LEAD_SECONDS must be shorter than CALL_HOLD_BLOCK_SECONDS")
    if calls.max_duration_seconds < increment:
        raise ConfigError("CALL_MAX_DURATION_SECONDS must be at least one billing increment")
    # Every increment must cost at least one minor unit, so a held amount always maps
    # back to exactly one reserved duration.
    if calls.min_rate_per_minute * increment < 60:
        raise ConfigError(
            "CALL_MIN_RATE_PER_MINUTE must make one billing increment cost at least one minor unit"
        )
    if not calls.min_rate_per_minute <= calls.default_rate_per_minute <= calls.max_rate_per_minute:
        raise ConfigError(
            "CALL_DEFAULT_RATE_PER_MINUTE must lie between CALL_MIN_RATE_PER_MINUTE and "
            "CALL_MAX_RATE_PER_MINUTE"
        )
    # A live call's hold must outlive the sweeper's chance to end the call.
    sweeper_reach = calls.sweep_grace_seconds + calls.sweep_interval_seconds
    if calls.hold_expiry_grace_seconds <= 2 * sweeper_reach:
        raise ConfigError(
            "CALL_HOLD_EXPIRY_GRACE_SECONDS must exceed twice the sweeper's grace plus interval"
        )


def _read_payout_settings(read: Callable[..., object], production: bool) -> PayoutPolicy:
    payouts = PayoutPolicy(
        wallet_account_number=read(
            "MONNIFY_WALLET_ACCOUNT_NUMBER", _parse_nuban, None if production else "8000000001"
        ),
        fee=read("WITHDRAWAL_FEE", _parse_fee_amount, "0"),
        minimum=read("WITHDRAWAL_MIN", _parse_positive_amount, "100"),
        maximum=read("WITHDRAWAL_MAX", _parse_positive_amount, "1000000"),
        daily_maximum=read("WITHDRAWAL_DAILY_MAX", _parse_positive_amount, "2000000"),
        poll_after_seconds=read("WITHDRAWAL_POLL_AFTER_SECONDS", parse_positive_int, "300"),
        poll_interval_seconds=read("WITHDRAWAL_POLL_INTERVAL_SECONDS", parse_positive_int, "60"),
        banks_cache_seconds=read("BANKS_CACHE_SECONDS", parse_positive_int, "86400"),
    )
    if not payouts.minimum <= payouts.maximum <= payouts.daily_maximum:
        raise ConfigError(
            "WITHDRAWAL_MIN must not exceed WITHDRAWAL_MAX, nor WITHDRAWAL_MAX WITHDRAWAL_DAILY_MAX"
        )
    return payouts


def _parse_nuban(raw: str) -> str:
    """A Nigerian bank account number: 10 digits."""
    if len(raw) != 10 or not raw.isascii() or not raw.isdigit():
        raise ValueError("must be a 10-digit account number")
    return raw


FILE_SUFFIX = "_FILE"


class Reader:
    """Reads variables from an environment mapping, collecting the first error.

    Any variable may instead name a file holding its value, as `NAME_FILE` (Docker and
    Kubernetes secrets mounted as files): the secret then never sits in the environment,
    where `ps e`, `/proc/<pid>/environ` and crash reports can read it."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def raw(self, name: str) -> str:
        value = self.env.get(name, "")
        path = self.env.get(name + FILE_SUFFIX, "")
        if not path:
            return value
        if value:
            raise ConfigError(f"set {name} or {name}{FILE_SUFFIX}, not both")
        try:
            with open(path, encoding="utf-8") as file:
                return file.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{name}{FILE_SUFFIX} is malformed: cannot read {path} ({type(exc).__name__})"
            ) from None

    def get(self, name: str, parse: Callable[[str], T], default: str | None) -> T:
        raw = self.raw(name)
        if raw == "":
            if default is None:
                raise ConfigError(f"{name} is required but not set")
            raw = default
        try:
            return parse(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{name} is malformed: {exc}") from None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment, raising ConfigError on the first bad value."""
    read = Reader(os.environ if env is None else env).get
    app_env = read("APP_ENV", choice(ENVIRONMENTS), "development")
    port = read("PORT", _parse_port, "3000")
    sim_port = read("MONNIFY_SIM_PORT", _parse_port, "3100")
    production = app_env == "production"
    settings = Settings(
        app_env=app_env,
        port=port,
        database_url=read(
            "DATABASE_URL",
            _url("mongodb", "mongodb+srv"),
            None if production else _DEV_DATABASE_URL,
        ),
        redis_url=read(
            "REDIS_URL", validate_redis_url, None if production else "redis://127.0.0.1:6379/0"
        ),
        jwt_secret=read("JWT_SECRET", str, None if production else DEFAULT_JWT_SECRET),
        access_token_seconds=read("ACCESS_TOKEN_SECONDS", parse_positive_int, "900"),
        refresh_token_seconds=read("REFRESH_TOKEN_SECONDS", parse_positive_int, "1209600"),
        # A login's absolute lifetime: refreshing rotates its tokens, never extends it.
        session_max_age_seconds=read("SESSION_MAX_AGE_SECONDS", parse_positive_int, "2592000"),
        monnify_api_key=read("MONNIFY_API_KEY", str, None if production else "MK_TEST_SIMULATOR"),
        monnify_secret_key=read(
            "MONNIFY_SECRET_KEY", str, None if production else "simulator-secret-key"
        ),
        monnify_contract_code=read(
            "MONNIFY_CONTRACT_CODE", str, None if production else "1234567890"
        ),
        monnify_base_url=read(
            "MONNIFY_BASE_URL", http_url, None if production else f"http://127.0.0.1:{sim_port}"
        ),
        monnify_sim_port=sim_port,
        monnify_webhook_url=read(
            "MONNIFY_WEBHOOK_URL",
            http_url,
            f"http://127.0.0.1:{port}/payments/monnify/webhook",
        ),
        currencies=read("CURRENCIES", _parse_currencies, "NGN,USD"),
        max_amount_minor=read("MAX_AMOUNT", _parse_positive_amount, "10000000"),
        min_funding_minor=read("MIN_FUNDING_AMOUNT", _parse_positive_amount, "20"),
        max_body_bytes=read("MAX_BODY_BYTES", parse_positive_int, "65536"),
        signup_rate_limit=read("SIGNUP_RATE_LIMIT", _parse_rate_limit, "10 per minute"),
        login_rate_limit=read("LOGIN_RATE_LIMIT", _parse_rate_limit, "10 per minute"),
        calls=_read_call_settings(read),
        lock_timeout_seconds=read("LOCK_TIMEOUT_SECONDS", parse_positive_float, "10"),
        lock_wait_seconds=read("LOCK_WAIT_SECONDS", parse_positive_float, "5"),
        log_json=read("LOG_JSON", parse_bool, "true" if production else "false"),
        log_level=read("LOG_LEVEL", _parse_log_level, "INFO"),
        worker_metrics_port=read("WORKER_METRICS_PORT", _parse_port_or_off, "9808"),
        # prometheus-client reads it itself; here so a service can check and create it.
        prometheus_multiproc_dir=read("PROMETHEUS_MULTIPROC_DIR", str, ""),
        sse_heartbeat_seconds=read("SSE_HEARTBEAT_SECONDS", parse_positive_float, "15"),
        audit_seal_interval_seconds=read("AUDIT_SEAL_INTERVAL_SECONDS", parse_positive_float, "5"),
        monnify_allowed_ips=read("MONNIFY_ALLOWED_IPS", _parse_ip_list, "*"),
        # The original API's `transactionHash` (a plain SHA-512, not an HMAC): off.
        monnify_accept_legacy_hash=read("MONNIFY_ACCEPT_LEGACY_HASH", parse_bool, "false"),
        trusted_proxy_count=read("TRUSTED_PROXY_COUNT", _parse_non_negative_int, "0"),
        confirmation_retry_window_seconds=read(
            "CONFIRMATION_RETRY_WINDOW_SECONDS", parse_positive_int, "3600"
        ),
        reconcile_pending_after_seconds=read(
            "RECONCILE_PENDING_AFTER_SECONDS", parse_positive_int, "900"
        ),
        inbox_requeue_after_seconds=read("INBOX_REQUEUE_AFTER_SECONDS", parse_positive_int, "60"),
        # A task taken by a worker that died unacknowledged goes back to its queue this
        # long after it was taken (Redis transport); see _check_visibility_timeout.
        broker_visibility_timeout_seconds=read(
            "BROKER_VISIBILITY_TIMEOUT_SECONDS", parse_positive_int, "360"
        ),
        reconcile_interval_seconds=read("RECONCILE_INTERVAL_SECONDS", parse_positive_int, "60"),
        # Monnify sends no reversal event: credits this recent are re-checked this often.
        reconcile_credited_lookback_seconds=read(
            "RECONCILE_CREDITED_LOOKBACK_SECONDS", parse_positive_int, "604800"
        ),
        reconcile_credited_every_seconds=read(
            "RECONCILE_CREDITED_EVERY_SECONDS", parse_positive_int, "3600"
        ),
        # A refund still open at Monnify after this long is raised for review.
        refund_review_after_seconds=read(
            "REFUND_REVIEW_AFTER_SECONDS", parse_positive_int, "259200"
        ),
        # The incremental invariant check reads entries older than this: by then no
        # transaction that stamped an older time can still commit (MongoDB's own
        # transaction lifetime limit is 60 s).
        invariants_settle_seconds=read("INVARIANTS_SETTLE_SECONDS", _parse_non_negative_int, "120"),
        # Where spans go (an OTLP/HTTP collector); none leave the process when unset.
        otel_exporter_otlp_endpoint=read("OTEL_EXPORTER_OTLP_ENDPOINT", _optional_http_url, ""),
        otel_traces_sample_ratio=read("OTEL_TRACES_SAMPLE_RATIO", _parse_ratio, "1"),
        kyc_encryption_keys=read(
            "KYC_ENCRYPTION_KEY",
            _parse_fernet_keys,
            None if production else DEFAULT_KYC_ENCRYPTION_KEY,
        ),
        reserved_account_banks=read("MONNIFY_RESERVED_ACCOUNT_BANKS", _parse_bank_codes, ""),
        payouts=_read_payout_settings(read, production),
    )
    if settings.min_funding_minor > settings.max_amount_minor:
        raise ConfigError("MIN_FUNDING_AMOUNT must not exceed MAX_AMOUNT")
    _check_visibility_timeout(settings)
    if production:
        _check_production(settings)
    return settings


def settings_or_report() -> Settings | None:
    """For command-line tools: the settings, or None once the one-line configuration
    error is on stderr (the tool then exits 2)."""
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return None


def _check_visibility_timeout(settings: Settings) -> None:
    """With the Redis transport a worker holds a task due later (a countdown or eta)
    unacknowledged until it runs; one held past the visibility timeout is handed to
    another worker as well. So the timeout must outlast the longest delay a task is
    scheduled with: a call's renewal (under one hold block ahead) and a webhook event's
    retry (MAX_TASK_RETRY_DELAY_SECONDS)."""
    longest = max(settings.calls.hold_block_seconds, MAX_TASK_RETRY_DELAY_SECONDS)
    if settings.broker_visibility_timeout_seconds <= longest:
        raise ConfigError(
            "BROKER_VISIBILITY_TIMEOUT_SECONDS must exceed CALL_HOLD_BLOCK_SECONDS and "
            f"{MAX_TASK_RETRY_DELAY_SECONDS} (the longest retry delay of a webhook event)"
        )


def _check_production(settings: Settings) -> None:
    secret = settings.jwt_secret
    if (
        secret == DEFAULT_JWT_SECRET
        or len(secret) < MIN_PRODUCTION_SECRET_LENGTH
        or len(set(secret.strip())) < MIN_PRODUCTION_SECRET_DISTINCT_CHARACTERS
    ):
        raise ConfigError(
            f"JWT_SECRET must be a random secret of at least {MIN_PRODUCTION_SECRET_LENGTH} "
            "characters in production"
        )
    if DEFAULT_KYC_ENCRYPTION_KEY in settings.kyc_encryption_keys:
        raise ConfigError("KYC_ENCRYPTION_KEY must be a key of your own in production")
    if settings.monnify_is_simulator:
        raise ConfigError("MONNIFY_BASE_URL points at the simulator; production needs Monnify")
    if not settings.monnify_base_url.startswith("https://"):
        raise ConfigError("MONNIFY_BASE_URL must be an https URL in production")
