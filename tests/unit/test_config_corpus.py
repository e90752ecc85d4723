"""The broken-config corpus (tests/cases/config/): every config that cannot be safe is refused
by `trimtab validate` with its exact error at its file:line:col, and never with a traceback.

tests/cases/config/ is a project root (machines/, rules/, venues/ copied from the shipped ones,
plus broken files with their own names that a case lists). Each case is one file
``configs/<case>.yaml`` whose header holds one ``# expect: <file>:<line>:<col>: <path>: <message>``
line per issue (the message may stop before a list of allowed names); cases whose bytes are
themselves the fault (not UTF-8) keep their expectations in ``configs/<case>.expect``.
The validator must report exactly those issues: no fewer, no more.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trimtab.cli.main import app

CASES = Path(__file__).resolve().parents[1] / "cases" / "config"


def _expectations(case: Path) -> list[str]:
    src = case.with_suffix(".expect") if case.with_suffix(".expect").exists() else case
    lines = src.read_bytes().decode("utf-8", errors="replace").splitlines()
    return [ln[len("# expect: "):] for ln in lines if ln.startswith("# expect: ")]


def _split(issue: str) -> tuple[str, str]:
    """('file:line:col: path', 'message'): the path ends at the first ': ' after the column."""
    m = re.match(r"^([^\s:]+:\d+:\d+: )(.*)$", issue)
    assert m, issue
    head, rest = m.groups()
    path, _, msg = rest.partition(": ")
    return head + path, msg


ALL = sorted(CASES.glob("configs/*.yaml"))


def test_the_corpus_is_large_and_covers_every_kind():
    names = [p.stem for p in ALL]
    assert len(names) >= 100
    for kind in ("yaml_", "venue_", "rule_", "machine_", "portfolio_", "cooldown", "capital_", "target_ltv", "hedge_weight",
                 "allocation", "spot_price_field", "asset_unknown", "instrument_"):
        assert any(kind in n for n in names), kind
    # every case states at least one expectation
    assert all(_expectations(p) for p in ALL), [p.name for p in ALL if not _expectations(p)]


@pytest.mark.parametrize("case", ALL, ids=[p.stem for p in ALL])
def test_case_is_refused_with_its_exact_errors(case, monkeypatch):
    monkeypatch.chdir(CASES)
    result = CliRunner().invoke(app, ["validate", f"configs/{case.name}"])
    out = result.output
    assert result.exit_code == 1, out
    assert "Traceback" not in out and result.exception is None or isinstance(result.exception, SystemExit), out
    got = [ln for ln in out.splitlines() if re.match(r"^[^\s:]+:\d+:\d+: ", ln)]
    want = _expectations(case)
    assert len(got) == len(want), "\n".join(["got:", *got, "want:", *want])
    for w, g in zip(sorted(want), sorted(got)):
        w_where, w_msg = _split(w)
        g_where, g_msg = _split(g)
        assert g_where == w_where and g_msg.startswith(w_msg), f"\n got: {g}\nwant: {w}"
