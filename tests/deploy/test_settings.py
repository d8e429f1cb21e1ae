"""Settings: parsed and validated once; a missing or malformed variable is a ConfigError
naming it; production refuses unsafe values."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shared.settings import (
    DEFAULT_JWT_SECRET,
    DEFAULT_KYC_ENCRYPTION_KEY,
    ConfigError,
    load_settings,
)

STRONG_SECRET = "k3J9x!Qw7Zp2Lm5Vb8Nc4Rt6Yh1Gf0Ds"  # 32 characters

PRODUCTION = {
    "APP_ENV": "production",
    "DATABASE_URL": "mongodb://db.internal:27017/payment_calls?replicaSet=rs0",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "JWT_SECRET": STRONG_SECRET,
    "MONNIFY_API_KEY": "MK_PROD_XXXXXXXX",
    "MONNIFY_SECRET_KEY": "prod-secret-key",
    "MONNIFY_CONTRACT_CODE": "1234567890",
    "MONNIFY_BASE_URL": "https://api.monnify.com",
    "MONNIFY_WEBHOOK_URL": "https://pay.example.com/payments/monnify/webhook",
    "KYC_ENCRYPTION_KEY": "cHJvZHVjdGlvbi1reWMta2V5LWZvci10ZXN0cy0zMmI=",
    "MONNIFY_WALLET_ACCOUNT_NUMBER": "3934178936",
}


def _error(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_development_defaults_load_from_an_empty_environment():
    settings = load_settings({})
    assert settings.app_env == "development"
    assert settings.port == 3000
    assert settings.access_token_seconds == 900
    assert settings.jwt_secret == DEFAULT_JWT_SECRET
    assert settings.monnify_is_simulator
    assert settings.default_currency == "NGN"
    assert not settings.is_production


def test_empty_values_mean_unset():
    assert load_settings({"PORT": "", "ACCESS_TOKEN_SECONDS": ""}).port == 3000


def test_values_are_parsed():
    settings = load_settings(
        {
            "PORT": "8080",
            "ACCESS_TOKEN_SECONDS": "60",
            "LOG_JSON": "yes",
            "LOG_LEVEL": "debug",
            "CURRENCIES": "usd, ngn",
            "MAX_AMOUNT": "49.99",
            "SIGNUP_RATE_LIMIT": "5/minute;100 per day",
            "REDIS_URL": "rediss://cache:6380/2",
            "DATABASE_URL": "mongodb+srv://cluster.example.net/payments",
        }
    )
    assert settings.port == 8080
    assert settings.access_token_seconds == 60
    assert settings.log_json is True
    assert settings.log_level == "DEBUG"
    assert settings.currencies == ("USD", "NGN")
    assert settings.max_amount_minor == 4999
    assert settings.signup_rate_limit == "5/minute;100 per day"


MALFORMED = [
    ("APP_ENV", "prod"),
    ("PORT", "abc"),
    ("PORT", "0"),
    ("PORT", "-1"),
    ("PORT", "70000"),
    ("PORT", "3000.5"),
    ("MONNIFY_SIM_PORT", "x"),
    ("DATABASE_URL", "localhost:27017"),
    ("DATABASE_URL", "http://db:27017/x"),
    ("DATABASE_URL", "mongodb://"),
    ("REDIS_URL", "localhost:6379"),
    ("REDIS_URL", "mongodb://cache:6379"),
    ("ACCESS_TOKEN_SECONDS", "0"),
    ("ACCESS_TOKEN_SECONDS", "15m"),
    ("REFRESH_TOKEN_SECONDS", "-5"),
    ("MONNIFY_BASE_URL", "sandbox.monnify.com"),
    ("MONNIFY_BASE_URL", "ftp://sandbox.monnify.com"),
    ("MONNIFY_WEBHOOK_URL", "not a url"),
    ("CURRENCIES", "EUR"),
    ("CURRENCIES", " , "),
    ("MAX_AMOUNT", "1.001"),
    ("MAX_AMOUNT", "abc"),
    ("MAX_AMOUNT", "NaN"),
    ("MAX_AMOUNT", "-5"),
    ("MAX_AMOUNT", "0"),
    ("MIN_FUNDING_AMOUNT", "0"),
    ("MIN_FUNDING_AMOUNT", "Infinity"),
    ("MAX_BODY_BYTES", "0"),
    ("MAX_BODY_BYTES", "64k"),
    ("SIGNUP_RATE_LIMIT", "lots"),
    ("LOGIN_RATE_LIMIT", "10 per fortnight"),
    ("LOCK_TIMEOUT_SECONDS", "0"),
    ("LOCK_TIMEOUT_SECONDS", "inf"),
    ("LOCK_TIMEOUT_SECONDS", "nan"),
    ("LOCK_WAIT_SECONDS", "soon"),
    ("LOG_JSON", "maybe"),
    ("LOG_LEVEL", "LOUD"),
    ("MONNIFY_ALLOWED_IPS", "1.2.3"),
    ("TRUSTED_PROXY_COUNT", "-1"),
    ("TRUSTED_PROXY_COUNT", "one"),
    ("CONFIRMATION_RETRY_WINDOW_SECONDS", "0"),
    ("RECONCILE_PENDING_AFTER_SECONDS", "x"),
    ("INBOX_REQUEUE_AFTER_SECONDS", "-1"),
    ("BROKER_VISIBILITY_TIMEOUT_SECONDS", "0"),
    ("CALL_BILLING_INCREMENT_SECONDS", "0"),
    ("PLATFORM_FEE_PERCENT", "101"),
    ("KYC_ENCRYPTION_KEY", "not-a-fernet-key"),
    ("KYC_ENCRYPTION_KEY", ","),
    ("MONNIFY_RESERVED_ACCOUNT_BANKS", "035,wema"),
    ("CALL_LOW_FUNDS_WARNING_SECONDS", "0"),
    ("CALL_LOW_FUNDS_WARNING_SECONDS", "a minute"),
    ("MONNIFY_WALLET_ACCOUNT_NUMBER", "12345"),
    ("MONNIFY_WALLET_ACCOUNT_NUMBER", "12345678x0"),
    ("WITHDRAWAL_FEE", "-1"),
    ("WITHDRAWAL_MIN", "0"),
    ("WITHDRAWAL_MAX", "1.001"),
    ("WITHDRAWAL_DAILY_MAX", "lots"),
    ("WITHDRAWAL_POLL_AFTER_SECONDS", "0"),
    ("WITHDRAWAL_POLL_INTERVAL_SECONDS", "-5"),
    ("BANKS_CACHE_SECONDS", "a day"),
]


@pytest.mark.parametrize("name, value", MALFORMED)
def test_malformed_variable_is_named(name, value):
    message = _error({name: value})
    assert message.startswith(f"{name} "), message


@pytest.mark.parametrize(
    "limits",
    [
        {"WITHDRAWAL_MIN": "500", "WITHDRAWAL_MAX": "100"},
        {"WITHDRAWAL_MAX": "5000", "WITHDRAWAL_DAILY_MAX": "1000"},
    ],
)
def test_withdrawal_limits_out_of_order_are_refused(limits):
    message = _error(limits)
    assert all(name in message for name in limits), message


def test_minimum_funding_above_the_maximum_is_refused():
    message = _error({"MIN_FUNDING_AMOUNT": "500", "MAX_AMOUNT": "100"})
    assert "MIN_FUNDING_AMOUNT" in message and "MAX_AMOUNT" in message


@pytest.mark.parametrize(
    "env",
    [
        # Not above the longest retry delay of a webhook event.
        {"BROKER_VISIBILITY_TIMEOUT_SECONDS": "300"},
        # Not above a call's hold block, which its renewal is scheduled within.
        {"BROKER_VISIBILITY_TIMEOUT_SECONDS": "400", "CALL_HOLD_BLOCK_SECONDS": "600"},
    ],
)
def test_a_visibility_timeout_shorter_than_a_scheduled_delay_is_refused(env):
    message = _error(env)
    assert message.startswith("BROKER_VISIBILITY_TIMEOUT_SECONDS must exceed"), message


def test_the_visibility_timeout_is_minutes_not_redis_default_hour():
    assert load_settings({}).broker_visibility_timeout_seconds == 360
    assert (
        load_settings(
            {"BROKER_VISIBILITY_TIMEOUT_SECONDS": "301"}
        ).broker_visibility_timeout_seconds
        == 301
    )


def test_production_loads_with_everything_set():
    settings = load_settings(PRODUCTION)
    assert settings.is_production
    assert settings.log_json is True
    assert not settings.monnify_is_simulator


@pytest.mark.parametrize(
    "name",
    [
        "DATABASE_URL",
        "REDIS_URL",
        "JWT_SECRET",
        "MONNIFY_API_KEY",
        "MONNIFY_SECRET_KEY",
        "MONNIFY_CONTRACT_CODE",
        "MONNIFY_BASE_URL",
        "KYC_ENCRYPTION_KEY",
        "MONNIFY_WALLET_ACCOUNT_NUMBER",
    ],
)
def test_production_requires(name):
    env = {key: value for key, value in PRODUCTION.items() if key != name}
    message = _error(env)
    assert message.startswith(f"{name} "), message


@pytest.mark.parametrize(
    "secret", [DEFAULT_JWT_SECRET, "short-secret", STRONG_SECRET[:-1], "x" * 40, " " * 40]
)
def test_production_refuses_a_default_short_or_trivial_jwt_secret(secret):
    message = _error({**PRODUCTION, "JWT_SECRET": secret})
    assert message.startswith("JWT_SECRET "), message
    assert secret.strip() == "" or secret not in message  # never echo the secret


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:3100",
        "http://localhost:3100",
        "http://monnify-sim:3100",
        "http://[::1]:3100",
        "http://0.0.0.0:3100",
        "http://api.monnify.com",
    ],
)
def test_production_refuses_the_simulator_or_plain_http_as_monnify(url):
    message = _error({**PRODUCTION, "MONNIFY_BASE_URL": url})
    assert message.startswith("MONNIFY_BASE_URL "), message


def test_malformed_value_is_not_echoed_for_secrets():
    message = _error(
        {
            "APP_ENV": "production",
            **{k: v for k, v in PRODUCTION.items() if k != "APP_ENV"},
            "JWT_SECRET": "tiny",
        }
    )
    assert "tiny" not in message


def test_production_refuses_the_development_kyc_key():
    keys = f"{PRODUCTION['KYC_ENCRYPTION_KEY']},{DEFAULT_KYC_ENCRYPTION_KEY}"
    message = _error({**PRODUCTION, "KYC_ENCRYPTION_KEY": keys})
    assert message.startswith("KYC_ENCRYPTION_KEY "), message
    assert DEFAULT_KYC_ENCRYPTION_KEY not in message


def test_kyc_keys_rotate_and_reserved_account_banks_parse():
    old, new = DEFAULT_KYC_ENCRYPTION_KEY, PRODUCTION["KYC_ENCRYPTION_KEY"]
    settings = load_settings(
        {"KYC_ENCRYPTION_KEY": f"{new}, {old}", "MONNIFY_RESERVED_ACCOUNT_BANKS": "035, 50515"}
    )
    assert settings.kyc_encryption_keys == (new, old)
    assert settings.reserved_account_banks == ("035", "50515")
    assert load_settings({}).reserved_account_banks == ()


# --- NAME_FILE: secrets mounted as files (Docker secrets, Kubernetes Secret volumes) ---


def _secret_files(tmp_path, **values: str) -> dict[str, str]:
    env = {}
    for name, value in values.items():
        path = tmp_path / name
        path.write_text(value + "\n")  # as `echo value > file` leaves it
        env[f"{name}_FILE"] = str(path)
    return env


def test_secrets_are_read_from_the_files_named_by_name_file(tmp_path):
    secrets = {name: PRODUCTION[name] for name in ("JWT_SECRET", "DATABASE_URL", "REDIS_URL")}
    env = {k: v for k, v in PRODUCTION.items() if k not in secrets}
    settings = load_settings(env | _secret_files(tmp_path, **secrets))
    assert settings.jwt_secret == STRONG_SECRET
    assert settings.database_url == PRODUCTION["DATABASE_URL"]
    assert settings.redis_url == PRODUCTION["REDIS_URL"]


def test_a_value_from_a_file_is_validated_like_any_other(tmp_path):
    env = {**PRODUCTION, "JWT_SECRET": ""} | _secret_files(tmp_path, JWT_SECRET="short")
    assert _error(env).startswith("JWT_SECRET must be a random secret")


def test_name_and_name_file_together_are_refused(tmp_path):
    env = PRODUCTION | _secret_files(tmp_path, JWT_SECRET=STRONG_SECRET)
    assert _error(env) == "set JWT_SECRET or JWT_SECRET_FILE, not both"


def test_an_unreadable_secret_file_is_named_without_any_content(tmp_path):
    missing = tmp_path / "nowhere"
    env = {**PRODUCTION, "JWT_SECRET": "", "JWT_SECRET_FILE": str(missing)}
    assert _error(env) == (
        f"JWT_SECRET_FILE is malformed: cannot read {missing} (FileNotFoundError)"
    )


def test_reading_settings_loads_no_metrics_database_or_domain_services():
    """Short-lived processes (the liveness probe, the CLI) read settings; a metrics module
    imported on the way leaves a file in the worker's metrics directory every run."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, shared.settings; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    heavy = ("prometheus_client", "pymongo", "shared.metrics", "shared.ledger", "shared.monnify")
    assert [name for name in loaded if name.startswith(heavy)] == []
