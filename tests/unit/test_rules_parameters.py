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
