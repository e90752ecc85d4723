"""One summary schema for every run kind (issue 12, item 7): ``trimtab run CONFIG --json`` prints
an object with the same shared keys for a strategy, a drift basket and a portfolio of strategies,
and it validates against the committed ``schema/summary.schema.json``. Real CLI subprocesses on
the bundled data, one month each (a few seconds per run)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from trimtab.summary import SHARED_KEYS

ROOT = Path(__file__).resolve().parents[2]
WINDOW = ["--start", "2024-06-01", "--end", "2024-07-01"]
RUNS = {
    "strategy": ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml",
    "drift_basket": ROOT / "configs" / "portfolio_drift.yaml",
    "portfolio": ROOT / "configs" / "portfolio_strategies.yaml",
}
BLOCK = {"drift_basket": "drift", "portfolio": "sleeves"}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    s = json.loads((ROOT / "schema" / "summary.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(s)
    return jsonschema.Draft202012Validator(s)


@pytest.mark.parametrize("kind", list(RUNS))
def test_run_json_fits_the_summary_schema(kind, validator, tmp_path):
    p = subprocess.run([sys.executable, "-m", "trimtab.cli.main", "run", str(RUNS[kind]), *WINDOW, "--out", str(tmp_path), "--json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    errors = sorted(validator.iter_errors(s), key=lambda e: list(e.path))
    assert not errors, [f"{list(c.path)}: {c.message[:200]}" for e in errors for c in (e.context or [e])]
    assert set(SHARED_KEYS) <= set(s), set(SHARED_KEYS) - set(s)
    assert s["kind"] == kind and s["name"] == RUNS[kind].stem
    assert (s["start"], s["end"]) == ("2024-06-01T00:00Z", "2024-07-01T00:00Z")
    assert isinstance(s["reconciliation_error"], float) and 0 <= s["reconciliation_error"] < 1e-6 * s["initial_equity"]
    assert s["positions_match_fills"] is True
    if kind in BLOCK:
        assert isinstance(s[BLOCK[kind]], dict) and s[BLOCK[kind]]
    # summary.json in the run folder is the same object
    assert json.loads((Path(s["run_dir"]) / "summary.json").read_text()) == s


_MODELS_AFTER = """
import sys
from trimtab.cli.main import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
built = "trimtab.summary_models" in sys.modules or "StrategySummary" in vars(sys.modules.get("trimtab.summary", sys))
sys.stderr.write("\\nLOADED " + " ".join([m for m in ("trimtab.summary",) if m in sys.modules] + ["models"] * built) + "\\n")
"""


def test_a_run_amends_its_summary_without_building_the_models(tmp_path):
    p = subprocess.run([sys.executable, "-c", _MODELS_AFTER, "run", str(RUNS["strategy"]), "--start", "2025-01-01",
                        "--end", "2025-01-02", "--out", str(tmp_path), "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert json.loads(p.stdout)["kind"] == "strategy", p.stderr
    loaded = [x for x in p.stderr.splitlines() if x.startswith("LOADED")][-1].split()[1:]
    assert loaded == ["trimtab.summary"]          # amend_after_run ran; the pydantic models were never defined
    import trimtab.summary as summary
    import trimtab.summary_models as models
    assert summary.StrategySummary is models.StrategySummary and summary.Summary is models.Summary
    with pytest.raises(AttributeError):
        summary.NoSuchModel
