"""Credentials come only from the environment and never show in errors, logs or journals."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict

import pytest

from trimtab import secrets
from trimtab.live.adapters.base import AdapterError, OrderResult, wrap_errors
from trimtab.live.adapters.registry import exchange_from_env

KEY, SECRET, PASS = "AKIAbinanceKey998877", "s3cr3t-binance-sig-key-0042", "okx-pass-phrase-7"
PK = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("TRIMTAB_BINANCE_KEY", KEY)
    monkeypatch.setenv("TRIMTAB_BINANCE_SECRET", SECRET)
    monkeypatch.setenv("TRIMTAB_OKX_KEY", "okx-key-123456")
    monkeypatch.setenv("TRIMTAB_OKX_SECRET", "okx-secret-123456")
    monkeypatch.setenv("TRIMTAB_OKX_PASSPHRASE", PASS)
    monkeypatch.setenv("TRIMTAB_ETH_PRIVATE_KEY", PK)
    monkeypatch.setenv("TRIMTAB_ETH_RPC_URL", "https://eth-mainnet.example/v2/rpcKeyAbc123XYZ")
    return monkeypatch


def test_credentials_come_from_the_environment(env):
    c = secrets.exchange_credentials("binance")
    assert c.ccxt_config() == {"apiKey": KEY, "secret": SECRET}
    assert secrets.exchange_credentials("okx").ccxt_config()["password"] == PASS
    assert secrets.eth_private_key().reveal() == PK
    a = exchange_from_env("binance")
    assert (a.exchange.apiKey, a.exchange.secret) == (KEY, SECRET)


def test_missing_credentials_name_the_variable_only(env):
    env.delenv("TRIMTAB_OKX_PASSPHRASE")
    with pytest.raises(secrets.MissingCredentials, match="TRIMTAB_OKX_PASSPHRASE") as ei:
        exchange_from_env("okx")  # venues/okx.yaml live.passphrase: the key has one
    assert "okx-key-123456" not in str(ei.value)
    env.delenv("TRIMTAB_BYBIT_KEY", raising=False)
    with pytest.raises(KeyError, match="TRIMTAB_BYBIT_KEY"):
        exchange_from_env("bybit")


def test_secret_values_print_as_mask(env):
    c = secrets.exchange_credentials("binance")
    for text in (str(c), repr(c), f"{c.api_key}", json.dumps(asdict(c), default=str)):
        assert KEY not in text and SECRET not in text
        assert secrets.MASK in text


def test_adapter_error_message_containing_a_key_is_redacted(env):
    secrets.exchange_credentials("binance")
    with pytest.raises(AdapterError) as ei:
        with wrap_errors("binance", "place_order"):
            raise RuntimeError(f"GET https://fapi.binance.com/fapi/v1/order?apiKey={KEY}&secret={SECRET} failed")
    msg = str(ei.value)
    assert KEY not in msg and SECRET not in msg and "apiKey=***" in msg
    assert ei.value.__cause__ is None and ei.value.__suppress_context__  # no chained original text
    direct = AdapterError("chain", "send", f"bad key {PK} / {PK[2:].upper()}")
    assert PK[2:].lower() not in str(direct).lower() and str(direct).count("***") == 2


def test_rpc_url_with_provider_key_is_redacted(env):
    url = secrets.eth_rpc_url()
    assert "rpcKeyAbc123XYZ" not in secrets.redact(f"connection to {url.reveal()} refused")


def test_log_records_are_redacted(env, caplog):
    logger = logging.getLogger("trimtab.test.redaction")
    f = secrets.RedactingFilter()
    caplog.handler.addFilter(f)
    try:
        with caplog.at_level(logging.INFO, logger="trimtab.test.redaction"):
            logger.info("signing with %s and %s", SECRET, PK)
            logger.error("venue said: %s", {"apiKey": KEY})
    finally:
        caplog.handler.removeFilter(f)
    assert caplog.records and all(s not in caplog.text for s in (KEY, SECRET, PK, PK[2:]))
    assert "***" in caplog.text


def test_order_results_hold_no_credentials(env):
    r = OrderResult("binance", "binance:Perp:ETHUSDT", "ETH/USDT:USDT", "tt00", "1", "buy", 1.0, 1.0, 1.0, 3000.0,
                    "closed", False)
    dumped = json.dumps(r.to_dict())
    assert KEY not in dumped and SECRET not in dumped


def test_short_values_are_not_treated_as_secrets():
    assert secrets.redact("order 1 of 2") == "order 1 of 2"
