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
    """A `trimtab` process: Arrow allocates with malloc unless the user chose a pool, and full
    garbage collections are rarer (a real subprocess: both are read once per process)."""
    code = "import trimtab.cli.main, gc, pyarrow as pa; print(gc.get_threshold()[2], pa.default_memory_pool().backend_name)"
    base = {"PATH": "", "HOME": str(tmp_path)}
    got = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True, check=True).stdout.split()
    assert got == ["100", "system"]
    chosen = {**base, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}
    got = subprocess.run([sys.executable, "-c", code], env=chosen, capture_output=True, text=True, check=True).stdout.split()
    assert got == ["100", "mimalloc"]
