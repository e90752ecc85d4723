"""The ``trimtab`` command line, run as real subprocesses on the real bundled data.

One short window (2024-06-01 -> 2024-07-15, a few seconds per run) keeps this quick; the
full-period acceptance checks live in test_flagship.py.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"
WINDOW = ["--start", "2024-06-01", "--end", "2024-07-15"]

REQUIRED_KEYS = {
    "mode", "share_class", "start", "end", "initial_equity", "final_equity", "apy", "apr",
    "max_drawdown", "sharpe", "attribution", "reconciliation_error", "transitions", "plans",
    "instructions", "liquidations", "run_dir",
}
ISSUE_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<path>\S.*?): (?P<msg>.+)$")


def trimtab(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m trimtab.cli.main ARGS`` and capture stdout/stderr separately."""
    return subprocess.run([sys.executable, "-m", "trimtab.cli.main", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def json_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-json")
    return trimtab("run", FLAGSHIP, *WINDOW, "--out", out, "--json"), out


@pytest.fixture(scope="module")
def human_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-human")
    return trimtab("run", FLAGSHIP, *WINDOW, "--out", out), out


@pytest.fixture
def project_copy(tmp_path) -> Path:
    """A scratch project: machines/, rules/, venues/ and the flagship config, to break freely."""
    for d in ("machines", "rules", "venues"):
        shutil.copytree(ROOT / d, tmp_path / d)
    (tmp_path / "configs").mkdir()
    shutil.copy(FLAGSHIP, tmp_path / "configs" / FLAGSHIP.name)
    return tmp_path


def break_config(project: Path, *edits: tuple[str, str]) -> Path:
    cfg = project / "configs" / FLAGSHIP.name
    text = cfg.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    cfg.write_text(text)
    return cfg


# --------------------------------------------------------------------------- run --json
def test_run_json_prints_exactly_one_object_with_the_summary_keys(json_run):
    p, _ = json_run
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith("\n") and p.stdout.count("\n") == 1, "stdout must be one JSON line, nothing else"
    summary = json.loads(p.stdout)
    assert isinstance(summary, dict)
    assert REQUIRED_KEYS <= summary.keys(), REQUIRED_KEYS - summary.keys()
    assert summary["mode"] == "usdt_eth_staking_hedged_leveraged"
    assert summary["share_class"] == "USDT"
    assert summary["start"].startswith("2024-06-01") and summary["end"].startswith("2024-07-15")
    assert "Traceback" not in p.stderr


def test_run_json_attribution_reconciles_with_equity(json_run):
    s = json.loads(json_run[0].stdout)
    capital = s["initial_equity"]
    assert isinstance(s["attribution"], dict) and s["attribution"]
    assert all(isinstance(v, (int, float)) for v in s["attribution"].values())
    total = sum(s["attribution"].values())
    assert abs(total - (s["final_equity"] - capital)) <= 1e-6 * capital
    assert 0 <= s["reconciliation_error"] <= 1e-6 * capital
    assert s["liquidations"] == 0
    assert s["plans"] >= 1 and s["transitions"] >= 1 and s["instructions"] >= 1


def test_run_json_run_dir_holds_journal_and_the_same_summary(json_run):
    p, out = json_run
    s = json.loads(p.stdout)
    run_dir = Path(s["run_dir"])
    assert run_dir.is_dir() and run_dir.parent == out
    assert (run_dir / "journal.sqlite").is_file()
    assert json.loads((run_dir / "summary.json").read_text()) == s


# --------------------------------------------------------------------------- run (readable)
def test_run_prints_a_readable_summary(human_run):
    p, out = human_run
    assert p.returncode == 0, p.stderr
    text = p.stdout
    assert "usdt_eth_staking_hedged_leveraged" in text and "USDT" in text
    for label in ("APY", "APR", "max drawdown", "Sharpe"):
        assert label in text
    # The attribution table: its title, categories, the total and the equity change it matches.
    assert "P&L attribution" in text
    for category in ("staking yield", "borrow cost", "funding", "trading fees", "gas"):
        assert category in text
    assert re.search(r"^\s*total\s", text, re.M) and "equity change" in text
    assert re.search(r"\d+\.\d\d%", text), "percentages are formatted"
    assert "liquidations" in text and "reconciliation" in text
    # The run directory, whole on one line, and what is in it.
    run_dirs = [d for d in out.iterdir() if d.is_dir()]
    assert len(run_dirs) == 1
    assert str(run_dirs[0]) in text
    for f in ("journal.sqlite", "summary.json", "equity.csv"):
        assert f in text
    assert not text.lstrip().startswith("{")
    assert "Traceback" not in p.stderr


# --------------------------------------------------------------------------- errors
def test_run_outside_the_data_exits_1_with_one_clear_line(tmp_path):
    p = trimtab("run", FLAGSHIP, "--start", "2019-01-01", "--end", "2019-02-01", "--out", tmp_path, "--json")
    assert p.returncode == 1
    assert p.stdout == ""
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("error:") and "2019-01-01" in lines[0] and "outside" in lines[0]
    assert not any(tmp_path.iterdir()), "nothing is written for a run that cannot start"


def test_run_with_a_config_error_exits_2_and_lists_the_issues(project_copy, tmp_path):
    cfg = break_config(project_copy, ("capital: 100000", "capital: lots"))
    p = trimtab("run", cfg, *WINDOW, "--out", tmp_path / "runs", "--json")
    assert p.returncode == 2
    assert p.stdout == ""
    assert "Traceback" not in p.stderr
    issues = [m for m in map(ISSUE_LINE.match, p.stderr.splitlines()) if m]
    assert any(m["path"] == "capital" for m in issues), p.stderr


# --------------------------------------------------------------------------- validate
def test_validate_the_shipped_config():
    p = trimtab("validate", FLAGSHIP)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.match(rf"^ok: .*{re.escape(FLAGSHIP.name)} \(machine lifecycle, \d+ rules, \d+ venues\)$", p.stdout.strip())


def test_validate_a_broken_config_reports_each_issue_at_file_line_col(project_copy):
    cfg = break_config(project_copy,
                       ("capital: 100000", "capital: lots"),
                       ('"binance:Perp:ETHUSDT"', '"binance-Perp-ETHUSDT"'))
    p = trimtab("validate", cfg, FLAGSHIP)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    lines = p.stdout.splitlines()
    issues = [m for m in map(ISSUE_LINE.match, lines) if m]
    assert len(issues) >= 2, p.stdout
    text = cfg.read_text().splitlines()
    by_path = {m["path"]: m for m in issues}
    cap = by_path.get("capital")
    assert cap is not None, p.stdout
    assert Path(cap["file"]).name == FLAGSHIP.name
    assert text[int(cap["line"]) - 1].lstrip().startswith("capital: lots")
    assert any("binance-Perp-ETHUSDT" in text[int(m["line"]) - 1] for m in issues), p.stdout
    # The good file given alongside is still checked and reported.
    assert any(line.startswith("ok: ") and FLAGSHIP.name in line for line in lines)


def test_validate_a_missing_file_is_an_issue_not_a_crash(tmp_path):
    p = trimtab("validate", tmp_path / "nope.yaml")
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    assert ISSUE_LINE.match(p.stdout.strip())
