"""Every parameter of every shipped rules file (rules/*.yaml) says what it is: a non-empty
description, a unit in the metrics' vocabulary and a default (issue 16, item 6); and
``trimtab params`` shows the declared unit, guessing from the name only when none is declared."""
from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest

from trimtab.cli.params import parameter_rows
from trimtab.config.load import load_strategy
from trimtab.config.models import RuleFile
from trimtab.config.yamldoc import load_yaml
from trimtab.metrics import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "rules").glob("*.yaml"))
#: Strategy configs (portfolio configs are not strategies: ``trimtab params`` takes strategies).
CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.yaml") if not p.name.startswith("portfolio_"))

#: The units metrics declare, plus the ones only parameters need (ParameterSpec's docstring).
UNITS = {m.unit for m in (REGISTRY.values() if isinstance(REGISTRY, dict) else REGISTRY)} | {
    "minutes", "days", "USD", "multiple"}


def test_the_corpus_is_not_empty():
    assert len(RULES) >= 5 and {"risk.yaml", "lifecycle.yaml"} <= {p.name for p in RULES}
    assert {"fraction", "hours", "flag", "count"} <= UNITS


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_every_parameter_has_description_unit_and_default(path):
    raw = load_yaml(path).data["parameters"]
    rf = RuleFile.model_validate(load_yaml(path).data)
    assert rf.parameters, f"{path.name} declares no parameters"
    missing = []
    for name, spec in rf.parameters.items():
        if "default" not in raw[name] or not math.isfinite(spec.default):
            missing.append(f"{name}: default")
        if not spec.description.strip():
            missing.append(f"{name}: description")
        if spec.unit not in UNITS:
            missing.append(f"{name}: unit {spec.unit!r} (one of {sorted(UNITS)})")
    assert not missing, f"{path.name}: " + "; ".join(missing)


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_units_agree_with_the_naming_conventions(path):
    """A ``_h`` parameter is in hours, ``_min`` minutes, ``_days`` days, ``_usd`` USD, an LTV a
    fraction: a unit contradicting its own name is a typo in one of them."""
    by_suffix = {r"_h$": "hours", r"_min$": "minutes", r"_days$": "days", r"_usd$": "USD", r"(^|_)ltv$": "fraction"}
    for name, spec in RuleFile.model_validate(load_yaml(path).data).parameters.items():
        for pattern, unit in by_suffix.items():
            if re.search(pattern, name):
                assert spec.unit == unit, f"{path.name}: {name} has unit {spec.unit!r}, its name says {unit!r}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_params_shows_the_declared_unit(path):
    strategy = load_strategy(path)
    declared = {}
    for rname in strategy.config.rules:
        for name, spec in RuleFile.model_validate(load_yaml(ROOT / "rules" / f"{rname}.yaml").data).parameters.items():
            declared.setdefault(name, spec.unit)
    assert declared
    rows = {r["name"]: r for r in parameter_rows(strategy)}
    assert {n: rows[n]["unit"] for n in declared} == declared


def test_params_guesses_the_unit_only_when_none_is_declared(tmp_path):
    """A user's rules file without ``unit:`` still loads; ``trimtab params`` then reads the unit
    from the name's suffix (``_h`` hours), and an undeclared, unsuffixed one has none."""
    for d in ("machines", "venues", "rules"):
        shutil.copytree(ROOT / d, tmp_path / d)
    risk = tmp_path / "rules" / "risk.yaml"
    text = re.sub(r" unit: [a-zA-Z ()/0-9]+,", "", risk.read_text())
    assert "unit:" not in text
    risk.write_text(text)
    (tmp_path / "configs").mkdir()
    cfg = tmp_path / "configs" / "pure_lending_usdt.yaml"
    shutil.copy(ROOT / "configs" / "pure_lending_usdt.yaml", cfg)
    rows = {r["name"]: r for r in parameter_rows(load_strategy(cfg))}
    assert rows["critical_retry_h"]["unit"] == "hours"          # guessed from the suffix
    assert rows["emergency_protocol"]["unit"] == ""             # no suffix, nothing declared
    assert rows["rebalance_cooldown_h"]["unit"] == "hours"      # declared in lifecycle.yaml
    assert rows["dust_threshold"]["unit"] == "fraction"         # declared; the name alone says nothing


#: Every shipped strategy config (portfolio_drift is a strategy: a token_weights basket).
STRATEGIES = sorted(p for p in (ROOT / "configs").glob("*.yaml") if "sleeves" not in (load_yaml(p).data or {}))


@pytest.mark.parametrize("path", STRATEGIES, ids=lambda p: p.name)
def test_every_parameter_a_config_can_set_says_what_it_is(path):
    """`trimtab params` over every shipped strategy: each parameter, from a rules file or only
    the config's ``parameters:``, has a description, a declared unit and a default; a parameter
    only the config declares says its unit and description in its ``{value, unit, description}``
    entry (never guessed from its name)."""
    strategy = load_strategy(path)
    rows = parameter_rows(strategy)
    assert rows
    missing = [f"{r['name']}: " + ", ".join(k for k in ("description", "unit", "default") if r[k] in ("", None))
               for r in rows if not r["description"] or r["unit"] not in UNITS | {"ETH"} or r["default"] is None]
    assert not missing, missing
    for r in rows:
        if r["source"] == "config":
            assert strategy.param_units.get(r["name"]) == r["unit"], r   # declared, not guessed
            assert r["default"] == load_yaml(path).data["parameters"][r["name"]]["value"]


def test_a_config_parameter_written_as_a_mapping_is_its_value(tmp_path):
    """``{value, unit, description}`` loads as the plain number would (the same params), shows
    in `trimtab params` (a real process), and a mapping without ``value`` or with another key
    is refused at its line."""
    import json
    import subprocess
    import sys

    for d in ("machines", "venues", "rules"):
        (tmp_path / d).symlink_to(ROOT / d)
    (tmp_path / "configs").mkdir()
    text = (ROOT / "configs" / "pure_lending_usdt.yaml").read_text()
    entry = re.search(r"^  gas_reserve_eth: .*$", text, re.M)[0]
    plain = tmp_path / "configs" / "plain.yaml"
    plain.write_text(text.replace(entry, "  gas_reserve_eth: 0.01"))
    mapped = tmp_path / "configs" / "mapped.yaml"
    mapped.write_text(text.replace(entry, '  gas_reserve_eth: {value: 0.01, unit: ETH, description: "gas money"}'))
    assert load_strategy(plain).params == load_strategy(mapped).params
    exe = Path(sys.executable).with_name("trimtab")
    out = subprocess.run([str(exe), "params", str(mapped), "--json", "--set", "gas_reserve_eth=0.02"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    row = next(r for r in json.loads(out.stdout)["parameters"] if r["name"] == "gas_reserve_eth")
    assert (row["value"], row["default"], row["unit"], row["description"]) == (0.02, 0.01, "ETH", "gas money")
    bad = tmp_path / "configs" / "bad.yaml"
    for wrong, says in (('{unit: ETH, description: "gas money"}', "needs `value`"), ("{value: 0.01, units: ETH}", "unknown key 'units'")):
        bad.write_text(text.replace(entry, f"  gas_reserve_eth: {wrong}"))
        out = subprocess.run([str(exe), "validate", str(bad)], capture_output=True, text=True, timeout=120)
        line = next(i + 1 for i, t in enumerate(bad.read_text().splitlines()) if t.startswith("  gas_reserve_eth:"))
        assert out.returncode == 1 and f"bad.yaml:{line}:" in out.stdout and says in out.stdout, out.stdout


@pytest.mark.parametrize("path", STRATEGIES, ids=lambda p: p.name)
def test_every_target_field_says_what_it_is_and_is_reachable_by_set(path):
    """`trimtab params` lists each field of each target (nested blocks and list items too) with
    a description and a unit (``-`` for names and choices), under the dotted name `--set`
    takes: writing the row's own value back through that name lands on the same YAML value."""
    import json

    from trimtab.cli.params import field_rows
    from trimtab.config.load import find_root
    from trimtab.config.overrides import apply_overrides
    from trimtab.templates.base import FIELD_UNITS

    strategy = load_strategy(path)
    rows = field_rows(strategy)
    assert len(rows) >= len(strategy.config.targets)
    bad = [r["name"] for r in rows if not r["description"].strip() or r["unit"] not in FIELD_UNITS]
    assert not bad, bad
    doc = load_yaml(path)
    flags = [f"{r['name']}={json.dumps(r['value'])}" for r in rows]
    written = apply_overrides(doc, flags, find_root(path))
    assert list(written.overrides) == [r["name"] for r in rows]
    for r in rows:
        target = next(t for t in written.data["targets"] if t["id"] == r["target"])
        node = target
        for seg in r["name"].split(".")[2:]:
            node = node[int(seg)] if isinstance(node, list) else node[seg]
        assert node == r["value"], r["name"]
