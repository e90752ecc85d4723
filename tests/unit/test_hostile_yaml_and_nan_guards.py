"""Hostile YAML is refused by every loader with a located message, and a NaN metric never
silently switches a guard off (issue 11, parts 5 and 6). The per-case corpus is
tests/cases/config/ (tests/unit/test_config_corpus.py)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from trimtab.config.load import load_strategy
from trimtab.config.yamldoc import MAX_BYTES, MAX_DEPTH, load_yaml
from trimtab.engine.machine import StrategyMachine
from trimtab.errors import ConfigError
from trimtab.live.sources import load_sources
from trimtab.metrics import Scope, metrics
from trimtab.rules.compile import compile_expr

ROOT = Path(__file__).resolve().parents[2]
LAUGHS = "".join([f'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'] + [
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")])


def _refused(path) -> str:
    with pytest.raises(ConfigError) as e:
        load_yaml(path)
    assert len(e.value.issues) == 1
    return str(e.value.issues[0])


def test_billion_laughs_under_1kb_is_refused_at_the_alias(tmp_path):
    f = tmp_path / "lol.yaml"
    f.write_text(LAUGHS)
    assert f.stat().st_size < 1024
    msg = _refused(f)
    assert msg.startswith(f"{f}:") and "aliases expand this file to more than" in msg
    line = int(msg.split(":")[1])
    assert "*" in LAUGHS.splitlines()[line - 1]


def test_nesting_bounds_are_reported_never_a_recursion_error(tmp_path):
    flow = tmp_path / "flow.yaml"
    flow.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert f"nested deeper than {MAX_DEPTH} levels" in _refused(flow)
    block = tmp_path / "block.yaml"
    block.write_text("".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 5)) + "  " * (MAX_DEPTH + 5) + "v: 1\n")
    msg = _refused(block)
    assert f"nested deeper than {MAX_DEPTH} levels" in msg and msg.split(":")[1] == str(MAX_DEPTH + 1)
    ok = tmp_path / "ok.yaml"
    ok.write_text("".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH - 2)) + "  " * (MAX_DEPTH - 2) + "v: 1\n")
    assert load_yaml(ok).data


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_text("a: " + "x" * (MAX_BYTES + 10) + "\n")
    assert "trimtab reads YAML files up to" in _refused(f)


def test_first_bad_byte_is_located(tmp_path):
    f = tmp_path / "latin.yaml"
    f.write_bytes(b"name: x\ndescription: caf\xe9 au lait\n")
    assert _refused(f) == f"{f}:2:17: <root>: file is not valid UTF-8 text; save it as UTF-8"


def test_every_yaml_kind_goes_through_the_bounded_loader(tmp_path):
    """A live feeds file (feeds/*.yaml) and a venue file with an alias bomb are refused the same way."""
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(LAUGHS)
    with pytest.raises(ConfigError, match="aliases expand"):
        load_sources(feeds)
    for d in ("machines", "rules", "venues", "configs"):
        (tmp_path / d).mkdir(exist_ok=True)
    for d in ("machines", "rules"):
        for f in (ROOT / d).glob("*.yaml"):
            (tmp_path / d / f.name).write_text(f.read_text())
    for f in (ROOT / "venues").glob("*.yaml"):
        (tmp_path / "venues" / f.name).write_text(f.read_text())
    (tmp_path / "venues" / "okx.yaml").write_text(LAUGHS)
    cfg = tmp_path / "configs" / "x.yaml"
    cfg.write_text((ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml").read_text())
    with pytest.raises(ConfigError) as e:
        load_strategy(cfg)
    assert any(i.file.endswith("venues/okx.yaml") and "aliases expand" in i.message for i in e.value.issues)


# ------------------------------------------------------------------ NaN in guards at run time
def test_a_nan_comparison_is_flagged_and_fail_safe_only_on_request():
    e = compile_expr("health_factor < 1.1 or margin_ratio_min < 0.25")
    env = {"health_factor": math.nan, "margin_ratio_min": 1.0}
    value, comps = e.trace(env)
    assert value is False and comps[0].undecided and not comps[1].undecided
    value, comps = e.trace(env, nan_as=True)
    assert value is True and comps[0].undecided
    # under "not" the polarity flips: "could it be true" stays the question
    assert compile_expr("not (health_factor >= 1.1)").trace(env, nan_as=True)[0] is True
    assert compile_expr("health_factor >= 1.1").trace(env, nan_as=True)[0] is True
    assert compile_expr("health_factor < 1.1").trace({"health_factor": 2.0}, nan_as=True)[0] is False


def _metrics(strategy) -> dict[str, float]:
    m = {name: 0.0 for name in metrics(Scope.STRATEGY)}
    m.update(health_factor=2.0, margin_ratio_min=1.0, hours_since_rebalance=1.0, equity=100_000.0, ltv=0.5)
    for v, spec in strategy.venues.items():
        if spec.model == "cex_perp":
            m[f"margin_ratio.{v}"] = 1.0
    return m


def test_a_nan_health_factor_fires_the_emergency_rule_and_is_recorded():
    s = load_strategy(ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml")
    m = StrategyMachine(s)
    calm = {r["rule"]: r for r in m.evaluate(_metrics(s))}
    critical = [n for n, r in s.rules.items() if r.spec.severity == "critical" and "health_factor" in r.spec.when]
    assert critical and not any(calm[n]["result"] for n in critical)
    assert not any("data_fault" in r for r in calm.values())

    bad = _metrics(s) | {"health_factor": math.nan}
    traced = {r["rule"]: r for r in m.evaluate(bad)}
    for n in critical:  # emergency guards hold when the health factor is unknown
        assert traced[n]["result"] is True and traced[n]["data_fault"] == ["health_factor"], traced[n]
    others = [n for n, r in s.rules.items() if r.spec.severity != "critical" and "health_factor" in traced[n].get("data_fault", [])]
    for n in others:  # non-critical rules keep the IEEE result, but the fault is on record
        assert traced[n]["result"] is False
    decision = m.step(1, "2024-06-01T00:00Z", bad)
    assert decision.dest == "emergency", decision
