"""`trimtab run` audits the config first: an error finding refuses the run and writes nothing;
--allow-audit-errors runs it and records the findings in summary.json and the journal; a
withdrawal larger than the equity is reported, in the summary too. Real subprocesses, real data.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BROKEN = "tests/cases/audit/unreachable_state/configs/x.yaml"
WINDOW = ["--start", "2024-06-01", "--end", "2024-06-03"]


def trimtab(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trimtab.cli.main", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_an_audit_error_refuses_the_run_and_writes_nothing(tmp_path):
    out = tmp_path / "runs"
    p = trimtab("run", BROKEN, *WINDOW, "--out", out)
    assert p.returncode == 1 and p.stdout == ""
    lines = p.stderr.splitlines()
    assert lines[0].startswith("tests/cases/audit/unreachable_state/machines/lifecycle.yaml:30:3: error: [unreachable-state] states.paused:")
    assert lines[-1].startswith(f"{BROKEN}: 1 audit error; nothing was run")
    assert not out.exists() or not any(out.iterdir())


def test_allow_audit_errors_runs_and_records_the_findings(tmp_path):
    out = tmp_path / "runs"
    p = trimtab("run", BROKEN, *WINDOW, "--out", out, "--allow-audit-errors", "--json")
    assert p.returncode == 0, p.stderr
    printed = json.loads(p.stdout)
    (run_dir,) = [d for d in out.iterdir() if d.is_dir()]
    on_disk = json.loads((run_dir / "summary.json").read_text())
    db = sqlite3.connect(run_dir / "journal.sqlite")
    in_journal = json.loads(db.execute("SELECT value FROM meta WHERE key='summary'").fetchone()[0])
    for s in (printed, on_disk, in_journal):
        (f,) = s["audit"]["allowed_errors"]
        assert (f["code"], f["line"], f["severity"]) == ("unreachable-state", 30, "error")


def test_shipped_config_runs_without_an_audit_note(tmp_path):
    p = trimtab("run", "configs/pure_lending_usdt.yaml", *WINDOW, "--out", tmp_path, "--json")
    assert p.returncode == 0, p.stderr
    assert "audit" not in json.loads(p.stdout) and "audit" not in p.stderr


def test_a_withdrawal_above_equity_is_reported_not_capped_silently(tmp_path):
    p = trimtab("run", "configs/pure_lending_usdt.yaml", *WINDOW, "--out", tmp_path, "--json", "--flow", "2024-06-02:-1000000")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    paid = sum(f["amount"] for f in s["flows"] if f["kind"] == "payout")
    assert 0 < paid < 1_000_000
    assert abs(s["unpaid_withdrawals"] - (1_000_000 - paid)) < 1e-6
    assert f"warning: {1_000_000 - paid:,.2f} of the withdrawals asked for" in p.stderr
