"""Broken configs report every error at its file:line:col (tests/cases/)."""
from pathlib import Path

import pytest

from trimtab.config.load import load_strategy
from trimtab.errors import ConfigError

CASES = Path(__file__).resolve().parents[1] / "cases"


def issues(path):
    with pytest.raises(ConfigError) as e:
        load_strategy(path)
    return [str(i) for i in e.value.issues]


def test_four_mistakes_are_all_reported_at_their_lines():
    got = issues(CASES / "four_errors" / "configs" / "broken.yaml")
    assert len(got) == 4
    want = [
        ("broken.yaml:12:10: capital:", "expected a number, got 'lots'"),
        ("broken.yaml:57:22: targets[1].legs[2].instrument:", "malformed instrument key 'okx:Perp'"),
        ("lifecycle.yaml:31:35: transitions[3].source:", "unknown state 'idel' (did you mean 'idle'?)"),
        ("lifecycle.yaml:34:66: transitions[6].when[0]:", "unknown rule 'delta_drfit' (did you mean 'delta_drift'?)"),
    ]
    for (where, what), line in zip(want, sorted(got)):
        assert where in line and what in line, line


def _project(tmp_path, config_text=None, rules_text=None):
    root = Path(__file__).resolve().parents[2]
    for d in ("machines", "venues"):
        (tmp_path / d).symlink_to(root / d)
    (tmp_path / "rules").mkdir()
    for f in (root / "rules").glob("*.yaml"):
        (tmp_path / "rules" / f.name).write_text(f.read_text())
    if rules_text:
        (tmp_path / "rules" / "risk.yaml").write_text(rules_text((root / "rules" / "risk.yaml").read_text()))
    (tmp_path / "configs").mkdir()
    text = (root / "configs" / "usdt_eth_staking_hedged_leveraged.yaml").read_text()
    cfg = tmp_path / "configs" / "x.yaml"
    cfg.write_text(config_text(text) if config_text else text)
    return cfg


def test_unknown_parameter_and_field(tmp_path):
    cfg = _project(tmp_path, lambda t: t.replace("  stake_allocation:", "  stake_alocation:").replace("share_class: USDT", "share_class: USDT\nshare_clas: ETH"))
    got = issues(cfg)
    assert any(":12:1: share_clas: unknown field 'share_clas'; did you mean 'share_class'?" in g for g in got), got
    assert any("parameters.stake_alocation: unknown parameter 'stake_alocation'" in g for g in got), got
    assert any("unknown parameter 'stake_allocation'" in g and "targets[0].allocation" in g for g in got), got
    assert any("unknown parameter 'stake_allocation'" in g and "targets[1].allocation" in g for g in got), got


def test_bad_rule_expression_points_at_the_character(tmp_path):
    cfg = _project(tmp_path, rules_text=lambda t: t.replace("when: health_factor < hf_reduce", "when: health_factor << hf_reduce"))
    got = issues(cfg)
    assert len(got) == 1
    assert "rules/risk.yaml:" in got[0] and "rules.health_factor_critical.when: bad expression" in got[0]
    line, col = (int(x) for x in got[0].split(":")[1:3])
    text = (tmp_path / "rules" / "risk.yaml").read_text().splitlines()[line - 1]
    assert text[col - 1] == "<" and text[col - 2] == "<"


def test_unknown_metric_in_a_rule(tmp_path):
    cfg = _project(tmp_path, rules_text=lambda t: t.replace("when: margin_ratio_min < margin_critical", "when: margin_ratoi_min < margin_critical"))
    got = issues(cfg)
    assert len(got) == 1 and "unknown name 'margin_ratoi_min'" in got[0] and "did you mean 'margin_ratio_min'" in got[0]


def test_wrong_venue_kind_for_a_template(tmp_path):
    cfg = _project(tmp_path, lambda t: t.replace("    lst: weETH ", "    lst_venue: binance\n    lst: weETH "))
    got = issues(cfg)
    assert len(got) == 1 and "targets[0].lst_venue: venue 'binance' is a cex_perp venue; expected lst" in got[0]


def test_lst_without_a_staking_venue(tmp_path):
    cfg = _project(tmp_path, lambda t: t.replace("    lst: weETH ", "    lst: rETH "))
    got = issues(cfg)
    assert any("targets[0].lst: no configured staking venue mints 'rETH'" in g and "weETH" in g for g in got), got
