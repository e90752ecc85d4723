"""`trimtab audit | diagram | explain | schema | test`, run as real subprocesses.

`explain` reads the journal of the session's flagship run (2024-06-01 -> 2025-09-01 on the real
bundled data, shared with test_flagship.py) around the 2024-08-05 crash.
"""
from __future__ import annotations

import json
import math
import re
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from trimtab.engine.journal import metrics_at

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"
CASES = ROOT / "tests" / "cases" / "audit"


def trimtab(*args, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m trimtab.cli.main ARGS`` and capture stdout/stderr separately."""
    return subprocess.run([sys.executable, "-m", "trimtab.cli.main", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout)


# --------------------------------------------------------------------------- audit
def test_audit_the_shipped_flagship_exits_0_with_a_table():
    p = trimtab("audit", FLAGSHIP)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "severity" in p.stdout and "finding" in p.stdout and "where" in p.stdout
    assert re.search(r"usdt_eth_staking_hedged_leveraged\.yaml: 0 errors, \d+ warnings", p.stdout), p.stdout
    assert "data window 2024-05-13T00:00Z" in p.stdout


def test_audit_a_broken_config_exits_1_with_json_findings():
    cfg = CASES / "entry_hf_at_emergency" / "configs" / "x.yaml"
    p = trimtab("audit", cfg, FLAGSHIP, "--format", "json")
    assert p.returncode == 1, p.stderr
    out = json.loads(p.stdout)
    assert out["errors"] == 1
    broken, shipped = out["configs"]
    (f,) = [f for f in broken["findings"] if f["severity"] == "error"]
    assert (f["code"], f["line"], f["col"], f["path"]) == ("entry-hf-at-emergency", 22, 15, "parameters.target_ltv")
    assert f["file"].endswith("tests/cases/audit/entry_hf_at_emergency/configs/x.yaml")
    assert "health factor 1.0440" in f["message"]
    assert shipped["errors"] == 0


def test_audit_markdown_and_no_data():
    # data_gaps, not data_missing: an unknown series is refused at load since issue 11
    p = trimtab("audit", CASES / "data_gaps" / "configs" / "x.yaml", "--format", "markdown", "--no-data")
    assert p.returncode == 0, p.stdout + p.stderr  # the only error is a data finding, skipped
    assert p.stdout.startswith("## audit `")
    assert "| severity | finding | where | message |" in p.stdout
    assert "data-" not in p.stdout


def test_audit_a_window_needs_both_ends():
    p = trimtab("audit", FLAGSHIP, "--start", "2024-06-01")
    assert p.returncode == 2 and "--start" in p.stderr


# --------------------------------------------------------------------------- diagram
def test_diagram_prints_mermaid_and_writes_svg_and_png(tmp_path):
    svg = tmp_path / "m.svg"
    p = trimtab("diagram", FLAGSHIP, "-o", svg)
    assert p.returncode == 0, p.stderr
    assert "stateDiagram-v2" in p.stdout and "[*] --> idle" in p.stdout
    # `source: "*"` becomes one edge per state
    for s in ("idle", "entry_full", "entry_partial", "exit_partial", "exit_full"):
        assert f"    {s} --> emergency : 1. enter_emergency [emergency_enter]" in p.stdout
    assert "emergency --> idle : 3. leave_emergency [emergency_leave ∧ plan_complete]" in p.stdout
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    text = svg.read_text()
    assert "emergency" in text and "reduce_risk" in text
    png = tmp_path / "m.png"
    p = trimtab("diagram", FLAGSHIP, "-o", png, "--expressions")
    assert p.returncode == 0, p.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "health_factor #lt; 1.08" in p.stdout  # thresholds folded in, escaped for Mermaid


# --------------------------------------------------------------------------- schema
def test_schema_out_writes_the_committed_files(tmp_path):
    p = trimtab("schema", "--out", tmp_path)
    assert p.returncode == 0, p.stderr
    written = sorted(f.name for f in tmp_path.iterdir())
    assert written == sorted(f.name for f in (ROOT / "schema").glob("*.schema.json"))
    for f in tmp_path.iterdir():
        assert f.read_text() == (ROOT / "schema" / f.name).read_text(), f"{f.name} differs: run `trimtab schema --out schema/`"
    p = trimtab("schema", "machine")
    assert json.loads(p.stdout)["title"].startswith("trimtab state machine")


# --------------------------------------------------------------------------- test
def test_rule_tests_pass_with_full_coverage():
    p = trimtab("test")
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"(\d+) passed, 0 failed .* transitions (\d+)/(\d+) \(100%\), rules (\d+)/(\d+) \(100%\)", p.stdout)
    assert m and int(m[1]) > 20 and m[2] == m[3] and m[4] == m[5], p.stdout


def test_a_failing_rule_test_exits_1(tmp_path):
    f = tmp_path / "bad.yaml"
    text = (ROOT / "tests" / "rules" / "lifecycle.yaml").read_text()
    text = text.replace("config: ../../configs/", f"config: {ROOT}/configs/")
    text = text.replace("    metrics: {health_factor: 1.07}\n    expect: reduce_risk", "    metrics: {health_factor: 1.07}\n    expect: rebalance_margin", 1)
    f.write_text(text)
    p = trimtab("test", f)
    assert p.returncode == 1
    assert "FAIL" in p.stdout and "expected rebalance_margin, got reduce_risk" in p.stdout


# --------------------------------------------------------------------------- explain
@pytest.fixture(scope="module")
def crash(flagship_run):
    p = trimtab("explain", flagship_run.run_dir, "--at", "2024-08-05T03:00Z", "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["at"], flagship_run


def _comparisons(e, metric):
    return {(r["rule"], c["op"], c["threshold"]): c for r in e["rules"] for c in r["comparisons"] if c["left"] == metric}


def test_explain_at_the_crash_shows_health_factor_and_margin_against_thresholds(crash):
    e, run = crash
    assert e["time"] == "2024-08-05T03:00Z" and e["state"] == "idle"
    params = json.loads(sqlite3.connect(run.run_dir / "journal.sqlite").execute("SELECT value FROM meta WHERE key='parameters'").fetchone()[0])
    hf = _comparisons(e, "health_factor")
    assert set(hf) >= {("health_factor_critical", "<", params["hf_reduce"]), ("emergency_enter", "<", params["hf_emergency_enter"]),
                       ("emergency_leave", ">", params["hf_emergency_leave"])}
    mr = _comparisons(e, "margin_ratio_min")
    assert set(mr) >= {("cex_margin_critical", "<", params["margin_critical"]), ("emergency_enter", "<", params["margin_emergency_enter"]),
                       ("emergency_leave", ">", params["margin_emergency_leave"])}
    # The observed values are what the risk monitor published at that tick (journal metrics table).
    db = sqlite3.connect(run.run_dir / "journal.sqlite")
    row = db.execute("SELECT health_factor, margin_ratio_min, tick FROM metrics WHERE time = '2024-08-05T03:00Z'").fetchone()
    assert all(c["observed"] == pytest.approx(row[0], rel=1e-12) for c in hf.values())
    assert all(c["observed"] == pytest.approx(row[1], rel=1e-12) for c in mr.values())
    m = metrics_at(db, row[2])  # every metric of the tick, one column each, read back as floats
    assert (m["health_factor"], m["margin_ratio_min"]) == row[:2]
    per_venue = {k: v for k, v in m.items() if k.startswith("margin_ratio.")}
    assert per_venue and all(float(e["metrics"][k]) == v for k, v in per_venue.items())  # explain shows inf as "inf"
    numeric = [v for v in per_venue.values() if math.isfinite(v)]  # inf: a venue with no position
    assert min(numeric) == pytest.approx(row[1])
    # a leveraged position on: the health factor is finite and above every threshold that day
    assert params["hf_reduce"] < row[0] < 1.5


def test_explain_shows_the_plan_in_force_with_steps_and_costs(crash):
    e, run = crash
    p = e["plan"]
    assert p is not None and p["time"] <= e["time"]
    assert p["steps"] and all({"description", "venue", "operation", "expected_cost", "status"} <= s.keys() for s in p["steps"])
    assert p["expected_cost"] == pytest.approx(sum(s["expected_cost"] for s in p["steps"]), rel=1e-6)
    assert p["status"] in ("completed", "failed", "in flight")
    db = sqlite3.connect(run.run_dir / "journal.sqlite")
    last = db.execute("SELECT plan_id FROM plans WHERE time <= '2024-08-05T03:00Z' ORDER BY tick DESC LIMIT 1").fetchone()[0]
    assert p["plan_id"] == last


def test_explain_readable_output(flagship_run):
    p = trimtab("explain", flagship_run.run_dir, "--at", "2024-08-05T03:30Z")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "2024-08-05T03:00Z (tick" in out and "the last tick at or before 2024-08-05T03:30Z" in out
    assert "state in force: idle" in out
    assert re.search(r"health_factor_critical.*health_factor\s+1\.\d+\s+<\s+1\.08", out), out
    assert re.search(r"cex_margin_critical.*margin_ratio_min\s+[\d.]+\s+<\s+0\.5", out), out
    assert "margin_ratio.okx" in out and "plan in force:" in out


def test_explain_transitions_lists_every_transition(flagship_run):
    p = trimtab("explain", flagship_run.run_dir, "--transitions", "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)["transitions"]["transitions"]
    assert len(rows) == flagship_run.summary["transitions"]
    first = rows[0]
    assert (first["from"], first["to"], first["trigger"]) == ("idle", "entry_full", "enter_full")
    assert first["plan_id"] and first["plan_cost"] > 0
    assert first["rules"][0]["rule"] == "capital_idle" and first["rules"][0]["result"] is True


def test_explain_outside_the_run_is_one_line_exit_1(flagship_run):
    p = trimtab("explain", flagship_run.run_dir, "--at", "2019-01-01")
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("error:") and "before the run starts" in p.stderr
    p = trimtab("explain", "no-such-run")
    assert p.returncode == 1 and "no run journal" in p.stderr
