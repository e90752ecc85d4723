"""Secrets never leave the process: not on stdout, not on stderr, not in any byte of a journal.

Real ``trimtab`` subprocesses with ``TRIMTAB_*`` secret variables set to a distinctive value,
on a small project (the shipped machines, rules and venues) whose config carries that value
as a string, so a journal would store it and an error would echo it. The same run without the
variable stores the value, which shows each assertion could fail.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Zk7-binance-SECRET-value-90210"
WINDOW = ["--start", "2024-06-01", "--end", "2024-06-03"]


def trimtab(*args, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("TRIMTAB_")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "trimtab.cli.main", *map(str, args)], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(tmp_path) -> Path:
    """tmp/configs/x.yaml: pure_lending_usdt with its description set to SECRET; bad.yaml names SECRET as its machine."""
    for d in ("machines", "rules", "venues"):
        (tmp_path / d).symlink_to(ROOT / d)
    (tmp_path / "configs").mkdir()
    text = (ROOT / "configs" / "pure_lending_usdt.yaml").read_text()
    assert "description: Supply USDT to Aave v3 and hold." in text
    (tmp_path / "configs" / "x.yaml").write_text(text.replace("description: Supply USDT to Aave v3 and hold.", f"description: {SECRET}"))
    (tmp_path / "configs" / "bad.yaml").write_text(text.replace("machine: lifecycle", f"machine: {SECRET}"))
    return tmp_path


def _journal_bytes(out: Path) -> bytes:
    files = [p for p in out.rglob("*") if p.is_file() and p.name.startswith("journal.sqlite")]
    assert files, f"no journal under {out}"
    return b"".join(p.read_bytes() for p in files)


def _all_bytes(out: Path) -> bytes:
    """Every file the run wrote (journal and its WAL, summary.json, equity.csv, ...)."""
    return b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())


def test_a_secret_in_a_config_never_reaches_stdout_stderr_or_the_journal(project, tmp_path):
    env = {"TRIMTAB_BINANCE_SECRET": SECRET, "TRIMTAB_ETH_PRIVATE_KEY": "0x" + "ab12" * 16}
    out = tmp_path / "runs"
    p = trimtab("run", project / "configs" / "x.yaml", *WINDOW, "--out", out, "--json", env=env)
    assert p.returncode == 0, p.stderr
    assert SECRET not in p.stdout and SECRET not in p.stderr
    data = _journal_bytes(out)
    assert SECRET.encode() not in data and SECRET.lower().encode() not in data
    assert SECRET.encode() not in _all_bytes(out)
    # The journal stored the masked value where the config's description goes.
    db = sqlite3.connect(next(out.rglob("journal.sqlite")))
    assert '"description":"***"' in db.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0]

    # Without the variable the same value is an ordinary string, stored as it is.
    out2 = tmp_path / "runs2"
    p2 = trimtab("run", project / "configs" / "x.yaml", *WINDOW, "--out", out2, "--json")
    assert p2.returncode == 0, p2.stderr
    assert SECRET.encode() in _journal_bytes(out2)


def test_an_error_that_quotes_a_secret_prints_it_masked(project):
    env = {"TRIMTAB_OKX_SECRET": SECRET}
    for args in (["run", project / "configs" / "bad.yaml", *WINDOW], ["validate", project / "configs" / "bad.yaml"]):
        p = trimtab(*args, env=env)
        assert p.returncode in (1, 2), p
        text = p.stdout + p.stderr
        assert SECRET not in text and SECRET.lower() not in text
        assert "***" in text  # the error is there, with the value masked
        assert "Traceback" not in text
        unmasked = trimtab(*args)
        assert SECRET in unmasked.stdout + unmasked.stderr
