"""The faster load paths of issue 14 give exactly what the slower ones gave: the single-parse
bounds check (trimtab.config.yamldoc), the audit reusing the documents load_strategy parsed, and
the CLI process settings.
Nothing here times anything: each test compares results."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trimtab.config.load import load_strategy
from trimtab.config.yamldoc import load_yaml, load_yaml_text
from trimtab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"


@pytest.mark.parametrize("text, expect", [
    ("a: *nope\nb: [1, 2\n", "YAML syntax error"),        # a syntax error anywhere comes before the composer's error
    ("a: *nope\nb: 1\n", "undefined alias"),
    ("a: 1\n---\nb: 2\n", "single document"),
    ("x: *nope\n" + "".join("  " * i + f"k{i}:\n" for i in range(70)) + "  " * 70 + "v: 1\n", "nested deeper than 64"),
    ("a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
     "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e]\ng: *zz\n", "alias bomb"),
])
def test_one_parse_reports_problems_in_whole_stream_order(text, expect):
    with pytest.raises(ConfigError) as info:
        load_yaml_text(text, "h.yaml")
    assert len(info.value.issues) == 1 and expect in info.value.issues[0].message


def test_audit_reuses_the_parsed_documents(monkeypatch):
    """The audit reads positions from the documents load_strategy parsed; it parses no file again."""
    from trimtab.audit import findings

    s = load_strategy(FLAGSHIP)
    calls = []
    monkeypatch.setattr(findings, "load_yaml", lambda p: calls.append(p) or load_yaml(p))
    ctx = findings.Context(s)
    assert calls == []
    assert ctx.mdoc is s.docs["machine"]
    assert {r.file for r in s.rules.values()} == set(ctx.rdocs)


def test_cli_process_settings(tmp_path):
    """A `trimtab` process: Arrow allocates with malloc unless the user chose a pool, full
    garbage collections are rarer, the collector is on again once the CLI is imported (what the
    import made is frozen), numpy starts no OpenBLAS worker thread and pydantic loads no plugin,
    unless the user chose otherwise (a real subprocess: all are read once per process)."""
    code = ("import trimtab.cli.main, gc, os, numpy\n"
            "threads = len(os.listdir('/proc/self/task'))  # before pyarrow starts its own\n"
            "import pyarrow as pa\n"
            "print(gc.get_threshold()[2], pa.default_memory_pool().backend_name, gc.isenabled(), gc.get_freeze_count() > 0, "
            "threads, os.environ['PYDANTIC_DISABLE_PLUGINS'] or '-')")
    base = {"PATH": "", "HOME": str(tmp_path)}
    got = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True, check=True).stdout.split()
    assert got == ["100", "system", "True", "True", "1", "1"]
    chosen = {**base, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc", "OPENBLAS_NUM_THREADS": "2", "PYDANTIC_DISABLE_PLUGINS": ""}
    got = subprocess.run([sys.executable, "-c", code], env=chosen, capture_output=True, text=True, check=True).stdout.split()
    assert got == ["100", "mimalloc", "True", "True", "2", "-"]


def test_run_pauses_the_collector_for_its_start_up_only(tmp_path, monkeypatch):
    """`trimtab run` collects no garbage while it loads (cli.common.pause_collection): when the
    engine starts, what start-up made is frozen and collection is on; after the command -- a
    finished run or one refused while loading -- nothing is frozen and collection is on."""
    import gc

    from typer.testing import CliRunner

    import trimtab.engine.backtest as backtest
    from trimtab.cli.main import app

    seen = []
    real = backtest.run_backtest
    monkeypatch.setattr(backtest, "run_backtest", lambda *a, **k: seen.append((gc.isenabled(), gc.get_freeze_count() > 0))
                        or real(*a, **k))
    bad = tmp_path / "bad.yaml"
    bad.write_text(FLAGSHIP.read_text().replace("capital:", "capitol:"))
    runs = [(["run", str(FLAGSHIP), "--json", "--out", str(tmp_path), "--start", "2025-01-01", "--end", "2025-01-01T06:00"], 0),
            (["run", str(bad), "--json", "--out", str(tmp_path)], 2)]
    for args, code in runs:
        assert CliRunner().invoke(app, args).exit_code == code
        assert gc.isenabled() and gc.get_freeze_count() == 0
    assert seen == [(True, True)]
