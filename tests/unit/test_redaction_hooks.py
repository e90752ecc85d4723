"""The redaction hooks of issue 11 part 8: printed output, log records, journal rows; and --flow parsing.

Real components: a real SQLite journal file, real loggers and handlers, the real typer app.
"""
from __future__ import annotations

import io
import logging
import math
import sqlite3

import pandas as pd
import pytest
from typer.testing import CliRunner

from trimtab.cli.main import app
from trimtab.engine.flows import FlowError, check_window, parse_flow, unpaid_withdrawals
from trimtab.engine.journal import Journal
from trimtab import secrets

SECRET = "Qx81-bybit-secret-abcdef"


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("TRIMTAB_BYBIT_SECRET", SECRET)


@pytest.fixture
def no_secret_env(monkeypatch):
    for k in list(__import__("os").environ):
        if k.startswith("TRIMTAB_"):
            monkeypatch.delenv(k)
    monkeypatch.setattr(secrets, "_registered", set())


def test_journal_rows_are_redacted_when_a_secret_is_loaded(secret_env, tmp_path):
    j = Journal(tmp_path / "journal.sqlite")
    assert isinstance(j.db, secrets.ScrubbingConnection)
    j.meta("note", {"msg": f"key was {SECRET}"})
    j.feed_error(0, "2024-06-01T00:00Z", "perp.bybit.ETHUSDT", "ccxt", f"401 for apiKey={SECRET.upper()}")
    j.checkpoint(0, f'{{"state": "{SECRET}"}}'.encode())
    j.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert SECRET.encode() not in raw and SECRET.upper().encode() not in raw
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    assert db.execute("SELECT message FROM feed_errors").fetchone()[0] == "401 for apiKey=***"
    assert db.execute("SELECT state FROM checkpoints").fetchone()[0] == b'{"state": "***"}'


def test_journal_is_the_bare_connection_without_secrets(no_secret_env, tmp_path):
    j = Journal(tmp_path / "journal.sqlite")
    assert type(j.db) is sqlite3.Connection  # a backtest pays nothing per row
    j.meta("note", SECRET)
    j.close()
    assert SECRET.encode() in (tmp_path / "journal.sqlite").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("journal.sqlite-*"))


def test_stream_and_child_logger_records_are_redacted(secret_env):
    buf = io.StringIO()
    s = secrets.RedactingStream(buf)
    s.write(f"token {SECRET} end\n")
    assert buf.getvalue() == "token *** end\n"
    assert not hasattr(s, "buffer")  # nothing writes around the mask

    secrets.install_process_log_redaction()
    out = io.StringIO()
    h = logging.StreamHandler(out)  # a handler added after install, on a child logger
    lg = logging.getLogger("ccxt.base.exchange.test")
    lg.addHandler(h)
    lg.setLevel(logging.INFO)
    try:
        lg.info("GET /api?signature=%s", SECRET)
        try:
            raise RuntimeError(f"auth failed for {SECRET}")
        except RuntimeError:
            lg.exception("request failed")
    finally:
        lg.removeHandler(h)
    text = out.getvalue()
    assert "signature=***" in text and "auth failed for ***" in text and SECRET not in text


def test_cli_output_is_redacted_in_process(secret_env):
    res = CliRunner().invoke(app, ["run", "configs/pure_lending_usdt.yaml", "--start", SECRET])
    assert res.exit_code == 2
    assert SECRET not in res.stdout + res.stderr
    assert "error: Invalid value for '--start': not a date/time: '***'" in res.stderr


@pytest.mark.parametrize("text, message", [
    ("2024-06-01:inf", "amount must be a finite number or 'all', got 'inf'"),
    ("2024-06-01:-inf", "amount must be a finite number or 'all', got '-inf'"),
    ("2024-06-01:nan", "amount must be a finite number or 'all', got 'nan'"),
    ("NaT:100", "unparsable time 'NaT'"),
    ("  :100", "expected TIME:AMOUNT"),
    ("2024-06-01:  ", "expected TIME:AMOUNT"),
])
def test_bad_flows_are_refused(text, message):
    with pytest.raises(FlowError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_flow(text)


def test_flows_parse_and_window():
    f = parse_flow("2024-06-02T12:00:-2500.5")
    assert (f.time, f.amount) == (pd.Timestamp("2024-06-02T12:00Z"), -2500.5)
    assert math.isinf(parse_flow("2024-06-02:all").amount)
    t0, t1 = pd.Timestamp("2024-06-01", tz="UTC"), pd.Timestamp("2024-06-03", tz="UTC")
    check_window([f], t0, t1)
    with pytest.raises(FlowError, match="outside the run's window"):
        check_window([parse_flow("2024-06-03T01:00:5")], t0, t1)


def test_unpaid_withdrawals_from_a_flow_log():
    log = [{"kind": "withdrawal_request", "amount": 500.0}, {"kind": "payout", "amount": 120.0},
           {"kind": "withdrawal_request", "amount": 10.0}, {"kind": "payout", "amount": 5.0}]
    assert unpaid_withdrawals(log) == pytest.approx(385.0)
    assert unpaid_withdrawals(log + [{"kind": "remainder_waived", "amount": 385.0}]) == 0.0
    assert unpaid_withdrawals(log + [{"kind": "withdrawal_request", "amount": "all"}, {"kind": "payout", "amount": 3.0}]) == 0.0
    assert unpaid_withdrawals([{"kind": "withdrawal_request", "amount": 50.0}, {"kind": "payout", "amount": 50.0}]) == 0.0
