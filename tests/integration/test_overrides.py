"""``trimtab run --set`` and ``trimtab params`` (issue 15, item 1), as real ``trimtab`` subprocesses.

A ``--set`` run must be the run of the YAML file edited the same way: the edited config goes
into a copy of the project (machines/, rules/, venues/ copied next to its configs/ folder under
tmp_path, so nothing is written into the checkout), and both runs' fills, transitions and final
equity are compared exactly on a two-week window of the bundled data.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"
WINDOW = ["--start", "2024-06-01", "--end", "2024-06-15"]


def _trimtab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trimtab.cli.main", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def _record(summary: dict) -> dict:
    """What a run did: final equity, every fill and every transition, from its journal."""
    db = sqlite3.connect(Path(summary["run_dir"]) / "journal.sqlite")
    try:
        fills = db.execute("SELECT tick, venue, operation, category, price, legs FROM fills ORDER BY fill_id").fetchall()
        transitions = db.execute("SELECT tick, source, dest, trigger FROM decisions WHERE trigger IS NOT NULL ORDER BY rowid").fetchall()
        meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta WHERE key IN ('parameters', 'overrides')")}
    finally:
        db.close()
    return {"final_equity": summary["final_equity"], "fills": fills, "transitions": transitions, "meta": meta}


def _edited_project(tmp_path: Path, edit) -> Path:
    """A copy of the project's machines/, rules/, venues/ and the flagship config edited by ``edit(data)``."""
    for folder in ("machines", "rules", "venues"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "configs").mkdir()
    yaml = YAML(typ="safe", pure=True)
    data = yaml.load(FLAGSHIP.read_text())
    edit(data)
    out = tmp_path / "configs" / FLAGSHIP.name
    with out.open("w") as f:
        yaml.dump(data, f)
    return out


def test_set_runs_exactly_as_the_edited_yaml(tmp_path):
    def edit(data):
        data["parameters"]["target_ltv"] = 0.8
        next(t for t in data["targets"] if t["id"] == "hedge")["legs"][0]["weight"] = "hedge_allocation_binance + 0.1"
        data["parameters"]["hedge_allocation_okx"] = 0.2

    edited = _edited_project(tmp_path / "project", edit)
    a = _trimtab("run", str(FLAGSHIP), *WINDOW, "--out", str(tmp_path / "a"), "--json",
                 "--set", "target_ltv=0.8", "--set", "targets.hedge.legs.0.weight=hedge_allocation_binance + 0.1", "--set", "hedge_allocation_okx=0.2")
    assert a.returncode == 0, a.stderr
    b = _trimtab("run", str(edited), *WINDOW, "--out", str(tmp_path / "b"), "--json")
    assert b.returncode == 0, b.stderr
    sa, sb = json.loads(a.stdout), json.loads(b.stdout)
    assert sa["overrides"] == {"target_ltv": 0.8, "targets.hedge.legs.0.weight": "hedge_allocation_binance + 0.1", "hedge_allocation_okx": 0.2}
    assert sb["overrides"] == {}
    ra, rb = _record(sa), _record(sb)
    assert ra["meta"]["overrides"] == sa["overrides"]
    assert ra["meta"]["parameters"]["target_ltv"] == rb["meta"]["parameters"]["target_ltv"] == 0.8
    assert ra["fills"], "the window has fills to compare"
    assert ra["fills"] == rb["fills"]
    assert ra["transitions"] == rb["transitions"]
    assert ra["final_equity"] == rb["final_equity"]


def test_a_bad_value_is_reported_at_its_flag():
    p = _trimtab("run", str(FLAGSHIP), *WINDOW, "--set", "target_ltv=abc", "--set", "capital=-5")
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.splitlines()
    assert "--set target_ltv=abc: parameters.target_ltv: expected a number, got 'abc'" in lines, p.stderr
    assert any(ln.startswith("--set capital=-5: capital: ") for ln in lines), p.stderr
    assert "Traceback" not in p.stderr


def test_an_unknown_name_lists_close_names():
    p = _trimtab("run", str(FLAGSHIP), *WINDOW, "--set", "max_delta_drfit=0.05")
    assert p.returncode == 2 and p.stdout == ""
    assert "--set max_delta_drfit=0.05: unknown parameter or config field 'max_delta_drfit' (did you mean 'max_delta_drift'?)" \
        in p.stderr, p.stderr


def test_set_reaches_into_a_block_the_yaml_leaves_to_defaults():
    basket = str(ROOT / "configs" / "portfolio_drift.yaml")
    p = _trimtab("params", basket, "--set", "targets.basket.alerts.high_drift=0.3", "--json")
    assert p.returncode == 0, p.stderr
    fields = {f["name"]: f for f in json.loads(p.stdout)["fields"]}
    assert fields["targets.basket.alerts.high_drift"]["value"] == 0.3
    # A misspelt block the flag would create is the flag's error, not a line of the file.
    bad = _trimtab("params", basket, "--set", "targets.basket.alrets.high_drift=0.3")
    assert bad.returncode == 2
    assert "--set targets.basket.alrets.high_drift=0.3: targets[0].alrets: unknown field 'alrets'; did you mean 'alerts'?" \
        in bad.stderr, bad.stderr


def test_params_lists_every_parameter_with_its_readers():
    from trimtab.config.load import load_strategy
    from trimtab.rules.nodes import names
    from trimtab.rules.parse import parse

    p = _trimtab("params", str(FLAGSHIP), "--json", "--set", "target_ltv=0.8")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    rows = {r["name"]: r for r in out["parameters"]}
    strategy = load_strategy(FLAGSHIP)
    assert set(rows) == set(strategy.params)
    for name, r in rows.items():
        expected = sorted(rn for rn, rule in strategy.rules.items() if name in names(parse(rule.spec.when)))
        assert sorted(r["rules"]) == expected, name
    assert out["overrides"] == {"target_ltv": 0.8}
    assert rows["target_ltv"]["value"] == 0.8 and rows["target_ltv"]["default"] == 0.85
    assert rows["target_ltv"]["targets"] == ["staking"] and rows["target_ltv"]["unit"] == "fraction"
    assert rows["stake_allocation"]["targets"] == ["staking", "hedge"] and rows["stake_allocation"]["source"] == "config"
    assert rows["hf_reduce"]["rules"] == ["health_factor_critical"] and rows["hf_reduce"]["description"]
    assert rows["rebalance_cooldown_h"]["unit"] == "hours"
    # the table names the same parameters and readers
    t = _trimtab("params", str(FLAGSHIP))
    assert t.returncode == 0, t.stderr
    for name in rows:
        assert name in t.stdout
    assert "rule health_factor_critical" in t.stdout
