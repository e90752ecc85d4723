"""Bad command lines (tests/cases/cli/): each is refused with its exact one-line error, never a traceback.

One YAML file per case, run through the real typer app (``typer.testing.CliRunner`` runs the
real code in-process) from the repository root:

    args:   [run, configs/x.yaml, --speed, "0"]   # the words after `trimtab`
    exit:   2                                      # the exit code
    stderr: "Invalid value for '--speed': ..."     # an exact substring of the one-line error
    stdout: "..."      # optional: a substring stdout must hold (validate and audit report on
                       #   stdout); without it, stdout must be empty on an error exit
    setup:  backtest   # optional: a finished tiny backtest (pure_lending_usdt, 2 days) first,
                       #   or garbage_journal: {tmp}/garbage/journal.sqlite holding text
    env:    {TRIMTAB_BINANCE_SECRET: ...}  # optional: environment for the run
    absent: [...]      # optional: strings that must appear in neither stdout nor stderr

In ``args``, ``{out}`` is a fresh runs folder, ``{tmp}`` a fresh scratch folder, and with
``setup: backtest`` ``{run}`` is the run's directory and ``{run_id}`` its id (under ``{out}``).

Every case also asserts: no ``Traceback`` and no ``internal error`` in either stream, and an
error exit prints exactly one ``error:`` line. No case runs more than a few simulated days.
A few of the same cases run as real ``trimtab`` subprocesses at the end.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from trimtab.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted((ROOT / "tests" / "cases" / "cli").glob("*.yaml"))
KEYS = {"args", "exit", "stderr", "stdout", "setup", "env", "absent"}


def _load(path: Path) -> dict:
    case = YAML(typ="safe", pure=True).load(path.read_text())
    assert isinstance(case, dict) and {"args", "exit", "stderr"} <= set(case), f"{path.name}: needs args, exit, stderr"
    assert set(case) <= KEYS, f"{path.name}: unknown keys {sorted(set(case) - KEYS)}"
    assert case.get("setup") in (None, "backtest", "garbage_journal"), f"{path.name}: unknown setup {case['setup']!r}"
    return case


@pytest.fixture(scope="module")
def finished_backtest(tmp_path_factory):
    """A finished two-day backtest: (runs folder, run directory)."""
    from trimtab.config.load import load_strategy
    from trimtab.engine.backtest import run_backtest

    out = tmp_path_factory.mktemp("cli_runs")
    res = run_backtest(load_strategy(ROOT / "configs" / "pure_lending_usdt.yaml"), start="2024-06-01", end="2024-06-03", out=out)
    return out, Path(res.run_dir)


def _args(case: dict, tmp_path: Path, request) -> list[str]:
    subs = {"{tmp}": str(tmp_path), "{out}": str(tmp_path / "runs")}
    if case.get("setup") == "garbage_journal":
        (tmp_path / "garbage").mkdir()
        (tmp_path / "garbage" / "journal.sqlite").write_text("not a database\n")
    if case.get("setup") == "backtest":
        out, run_dir = request.getfixturevalue("finished_backtest")
        subs = {"{tmp}": str(tmp_path), "{out}": str(out), "{run}": str(run_dir), "{run_id}": run_dir.name}
    words = []
    for w in case["args"]:
        w = str(w)
        for k, v in subs.items():
            w = w.replace(k, v)
        words.append(w)
    return words


def _check(case: dict, name: str, code: int, out: str, err: str) -> None:
    assert code == case["exit"], f"{name}: exit {code}, expected {case['exit']}\nstdout: {out}\nstderr: {err}"
    assert case["stderr"] in err, f"{name}: stderr lacks {case['stderr']!r}:\n{err}"
    for text in (out, err):
        assert "Traceback" not in text and "internal error" not in text, f"{name}: {text}"
    if "stdout" in case:
        assert case["stdout"] in out, f"{name}: stdout lacks {case['stdout']!r}:\n{out}"
    if case["exit"] != 0:
        if "stdout" not in case:
            assert out == "", f"{name}: stdout not empty on an error:\n{out}"
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(lines) <= 1, f"{name}: more than one error line:\n{err}"
    for s in case.get("absent") or []:
        assert s not in out and s not in err, f"{name}: {s!r} was printed"


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_cli_case(path: Path, tmp_path, monkeypatch, request):
    case = _load(path)
    monkeypatch.chdir(ROOT)
    for k, v in (case.get("env") or {}).items():
        monkeypatch.setenv(k, str(v))
    res = CliRunner().invoke(app, _args(case, tmp_path, request))
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    _check(case, path.stem, res.exit_code, res.stdout, res.stderr)


# A handful of the same cases as real `trimtab` processes: the console script's own error path.
SUBPROCESS = ["run_speed_nan", "run_flow_garbage", "run_capital_inf", "run_replay_without_live", "run_audit_error",
              "explain_at_garbage", "schema_out_is_file", "run_flow_secret_masked", "unknown_command"]


@pytest.mark.parametrize("name", SUBPROCESS)
def test_cli_case_subprocess(name: str, tmp_path, request):
    path = ROOT / "tests" / "cases" / "cli" / f"{name}.yaml"
    case = _load(path)
    env = {**os.environ, **{k: str(v) for k, v in (case.get("env") or {}).items()}}
    p = subprocess.run([sys.executable, "-m", "trimtab.cli.main", *_args(case, tmp_path, request)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    _check(case, name, p.returncode, p.stdout, p.stderr)
