"""`trimtab audit` findings: one deliberately broken project per finding (tests/cases/audit/),
each asserting the exact finding and the line it is reported at; and every shipped config
audits without an error.

Each case folder is a small project root (configs/x.yaml plus machines/, rules/, venues/; the
folders or files a case does not change are symlinks to the shipped ones). Audits run on the
real bundled market data.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from trimtab.audit import CODES, audit_config

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "cases" / "audit"

# case folder -> (code, file the finding is in, line, a fragment of the message, audit kwargs)
EXPECTED = {
    # structure
    "unreachable_state": ("unreachable-state", "machines/lifecycle.yaml", 30, "state 'paused' is unreachable from the initial state 'idle'", {}),
    "state_cannot_be_left": ("state-cannot-be-left", "machines/lifecycle.yaml", 24, "state 'emergency' cannot be left", {}),
    "no_completion_path": ("no-completion-path", "machines/lifecycle.yaml", 27, "action state 'sell_dust' has no completion path", {}),
    "emergency_unreachable": ("emergency-unreachable", "machines/lifecycle.yaml", 21, "no transition goes from 'exit_full' straight to 'emergency'", {}),
    "emergency_waits_for_plan": ("emergency-waits-for-plan", "machines/lifecycle.yaml", 31, "cannot fire while a plan is in flight in 'entry_full', 'entry_partial', 'exit_partial', 'exit_full', 'sell_dust'", {}),
    "no_emergency_state": ("no-emergency-state", "machines/lifecycle.yaml", 9, "the machine has no 'emergency' state", {}),
    # rules
    "guard_never_holds": ("guard-never-holds", "configs/x.yaml", 25, "rule 'health_factor_critical' can never hold: health_factor < hf_reduce = 0 is impossible", {}),
    "guard_never_holds_transition": ("guard-never-holds", "machines/lifecycle.yaml", 32, "transition 'retry_emergency' can never fire: its rules emergency_enter, emergency_leave cannot hold together", {}),
    "transition_shadowed": ("transition-shadowed", "machines/lifecycle.yaml", 45, "transition 'panic_reduce' never fires from 'idle': 'enter_emergency' (emergency_enter) holds whenever it does", {}),
    "guard_overlap": ("guard-overlap", "machines/lifecycle.yaml", 42, "transitions 'rehedge' -> exit_partial and 'respread_hedge' -> entry_partial from 'idle' are both warning and can hold at the same tick", {}),
    "priority_inversion": ("priority-inversion", "machines/lifecycle.yaml", 39, "critical transition 'reduce_risk' -> exit_partial (health_factor_critical) is tried after 'withdraw_all' (info), 'withdraw' (info), 'enter_full' (info), 'deposit' (info), 'rebalance' (info)", {}),
    "no_hysteresis": ("no-hysteresis", "configs/x.yaml", 27, "enter guard health_factor < hf_emergency_enter = 1.05 (emergency_enter) and leave guard health_factor > hf_emergency_leave = 1.05 (emergency_leave) share the threshold", {}),
    "no_cooldown": ("no-cooldown", "machines/lifecycle.yaml", 41, "rebalancing transition 'rehedge' (delta_drift) has no cooldown", {}),
    "unused_rule": ("unused-rule", "rules/risk.yaml", 58, "rule 'margin_watch' is not used by any transition", {}),
    # thresholds
    # refused by `trimtab validate` since issue 11 (trimtab.config.domains): the audit reports the load error
    "target_ltv_above_max": ("config", "configs/x.yaml", 22, "target LTV target_ltv = 0.94 is above the aave_v3 eMode max LTV 0.93", {}),
    "entry_hf_at_emergency": ("entry-hf-at-emergency", "configs/x.yaml", 22, "implies health factor 1.0440 after entry_full, entry_partial, exit_partial, at or below the emergency threshold health_factor < hf_emergency_enter = 1.05", {}),
    "entry_hf_triggers_rule": ("entry-hf-triggers-rule", "configs/x.yaml", 22, "implies health factor 1.0674 after entry_full, which already satisfies health_factor < hf_reduce = 1.08", {}),
    "emergency_cannot_leave": ("emergency-cannot-leave", "configs/x.yaml", 24, "emergency_ltv = 0.87 with the aave_v3 eMode liquidation threshold 0.95 implies health factor 1.0920 after the emergency plan, not above the leave threshold health_factor > hf_emergency_leave = 1.1", {}),
    "emergency_cannot_leave_margin": ("emergency-cannot-leave", "configs/x.yaml", 33, "margin_ratio_min > margin_emergency_leave = 1.2 (rule emergency_leave, transition leave_emergency) is not below the margin ratio the emergency plan restores, 1 =", {}),
    "hedge_weights_sum": ("config", "configs/x.yaml", 56, "target 'hedge' leg weights sum to 1.1, not 1", {}),
    "margin_threshold_not_below_target": ("margin-threshold-not-below-target", "configs/x.yaml", 31, "margin_ratio_min < margin_critical = 1 (rule cex_margin_critical) is not below the margin ratio hedge 'hedge' targets, 1", {}),
    "margin_threshold_below_maintenance": ("margin-threshold-below-maintenance", "configs/x.yaml", 32, "margin_ratio_min < margin_emergency_enter = 0.004 (rule emergency_enter) is at or below the maintenance margin 0.005", {}),
    "allocation_out_of_range": ("allocation-out-of-range", "configs/x.yaml", 16, "target 'staking' allocation stake_allocation = 0 is outside (0, 1]", {}),
    "allocations_exceed_equity": ("allocations-exceed-equity", "configs/x.yaml", 41, "target allocations sum to 1.2 (staking 0.5, hedge 0.7)", {}),
    # venues
    "unsupported_operation": ("unsupported-operation", "configs/x.yaml", 47, "venue 'morpho' does not support 'flash_repay', which leveraged_stake target 'staking' plans emit on it", {}),
    "unknown_gas_op": ("unknown-gas-op", "venues/etherfi.yaml", 10, "gas_op 'STAKE_DEPOSITT' of etherfi.stake is not in the gas-units table", {}),
    "trade_below_minimum": ("trade-below-minimum", "configs/x.yaml", 58, "okx:Perp:ETHUSDT would trade 3.00 USD at capital 20.00 USD, under okx's trade minimum notional 5 USD", {}),
    "rebalance_below_minimum": ("rebalance-below-minimum", "configs/x.yaml", 56, "a trade of about 8.00 USD on binance:Perp:ETHUSDT, under the planner's MIN_TRADE_USD 25 USD", {}),
    # data
    "data_missing": ("config", "venues/wallet.yaml", 27, "unknown data field 'spot.kraken.ETHUSDT.close'", {}),
    "data_gaps": ("data-gaps", "venues/okx.yaml", None, "series 'perp.okx.ETHUSDT' 1 gap (721h) in the window: 2024-08-31 16:00 -> 2024-09-30 17:00 (721h)",
                  {"start": "2024-08-15", "end": "2024-10-15"}),
    "data_faulty_rows": ("data-faulty-rows", "venues/binance.yaml", 12,
                         "series 'perp.binance.ETHUSDT' has 17 faulty rows in the window (cross_venue x17), first at 2025-01-01 18:00",
                         {"start": "2025-01-01", "end": "2025-01-08"}),
    # acknowledgements (audit.accept)
    "stale_accept": ("stale-accept", "configs/x.yaml", 29, "acknowledges guard-overlap at machines/lifecycle.yaml:transitions[4], but the audit finds no such warning", {}),
}

# Cases that must stay quiet (issue 16): case folder -> the warning code it must not report.
# ``accepted_warning`` acknowledges a true warning; the others are false positives fixed by
# evaluating findings over the metrics the config can produce (trimtab.audit.scope).
QUIET = {
    "accepted_warning": "guard-overlap",
    "overlap_without_perps": "guard-overlap",
    "overlap_without_debt": "guard-overlap",
    "no_emergency_without_leverage": "no-emergency-state",
}


@pytest.fixture(scope="module")
def reports(market):
    return {name: audit_config(CASES / name / "configs" / "x.yaml", data=market, **kw) for name, (*_, kw) in EXPECTED.items()}


def test_every_finding_code_has_a_case():
    codes = {code for code, *_ in EXPECTED.values()}
    # Since issue 11 these are refused at load (trimtab validate) for the base parameters; the
    # audit keeps them for values a machine state overrides, and a window before the data.
    at_load = {"target-ltv-above-max", "hedge-weights-sum", "data-missing"}
    assert codes | at_load == set(CODES), set(CODES) - codes - at_load
    assert sorted(p.name for p in CASES.iterdir()) == sorted(EXPECTED | QUIET)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_case_reports_its_finding_at_its_line(case, reports):
    code, file, line, fragment, _ = EXPECTED[case]
    r = reports[case]
    hits = [f for f in r.findings if f.code == code and f.file.endswith(file) and fragment in f.message]
    assert hits, "\n".join(map(str, r.findings))
    if line is not None:
        assert line in {f.line for f in hits}, [str(f) for f in hits]
        text = Path(hits[0].file).read_text().splitlines()[hits[0].line - 1]
        assert text.strip(), "the finding points at an empty line"
    severity = CODES[code][0]
    assert all(f.severity == severity for f in hits)
    # One broken thing per case: the only errors are the case's own finding.
    others = [str(f) for f in r.errors if f.code != code]
    assert not others, others


def test_findings_point_at_the_value_that_is_wrong(reports):
    """Threshold findings point at the parameter line the case changed."""
    f = next(f for f in reports["entry_hf_at_emergency"].findings if f.code == "entry-hf-at-emergency")
    assert Path(f.file).read_text().splitlines()[f.line - 1].strip() == "target_ltv: 0.91"
    f = next(f for f in reports["no_hysteresis"].findings if f.code == "no-hysteresis")
    assert Path(f.file).read_text().splitlines()[f.line - 1].strip().startswith("hf_emergency_leave: 1.05")
    f = next(f for f in reports["unreachable_state"].findings if f.code == "unreachable-state")
    assert Path(f.file).read_text().splitlines()[f.line - 1].strip() == "paused:"


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_shipped_config_audits_without_errors(config, market):
    r = audit_config(ROOT / "configs" / config, data=market)
    assert not r.errors, "\n".join(map(str, r.errors))
    assert r.window is not None


def test_a_window_before_the_data_is_a_data_error(market):
    r = audit_config(ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml", data=market, start="2024-03-01", end="2024-04-01")
    missing = [f for f in r.errors if f.code == "data-missing"]
    assert missing, [str(f) for f in r.findings]
    # The weETH/ETH oracle only starts 2024-05-13 and is priced by the wallet venue.
    weeth = [f for f in missing if "oracle.weETH_ETH" in f.message]
    assert weeth and "starts 2024-05-13" in weeth[0].message
    assert weeth[0].file.endswith("venues/wallet.yaml")
    assert "oracle.weETH_ETH" in Path(weeth[0].file).read_text().splitlines()[weeth[0].line - 1]


def test_audit_without_data_skips_data_findings():
    r = audit_config(CASES / "data_missing" / "configs" / "x.yaml", check_data=False)
    assert not [f for f in r.findings if f.code.startswith("data-")]
    assert r.window is None


def test_a_config_that_does_not_load_is_reported_as_config_errors():
    r = audit_config(ROOT / "tests" / "cases" / "four_errors" / "configs" / "broken.yaml", check_data=False)
    assert len(r.errors) == 4 and {f.code for f in r.errors} == {"config"}


@pytest.mark.parametrize("case", sorted(QUIET))
def test_quiet_case_does_not_report_the_warning(case, market):
    r = audit_config(CASES / case / "configs" / "x.yaml", data=market)
    code = QUIET[case]
    assert not [f for f in r.findings if f.code == code], [str(f) for f in r.findings]
    assert not r.errors, [str(f) for f in r.errors]


def _context(case: str):
    from trimtab.audit.findings import Context
    from trimtab.config.load import load_strategy

    return Context(load_strategy(CASES / case / "configs" / "x.yaml"))


def test_an_accepted_warning_is_shown_with_its_reason_and_counted_apart(market):
    r = audit_config(CASES / "accepted_warning" / "configs" / "x.yaml", data=market)
    hit = [a for a in r.accepted if a.finding.code == "guard-overlap"]
    assert len(hit) == 1, r.accepted
    assert hit[0].finding.file.endswith("machines/lifecycle.yaml") and hit[0].reason.startswith("deleveraging first is intended")
    d = r.to_dict()
    assert d["accepted_count"] == 1 and d["accepted"][0]["reason"] == hit[0].reason
    assert all(f["code"] != "guard-overlap" for f in d["findings"])
    # Without the acknowledgement the same project reports it as a warning.
    from trimtab.audit import audit_strategy
    from trimtab.config.load import load_strategy

    s = load_strategy(CASES / "accepted_warning" / "configs" / "x.yaml")
    bare = s.config.model_copy(update={"audit": s.config.audit.model_copy(update={"accept": []})})
    s.config = bare
    r2 = audit_strategy(s, data=market)
    assert [f for f in r2.warnings if f.code == "guard-overlap"] and not r2.accepted


def test_overlap_is_judged_over_the_metrics_the_config_can_produce():
    """Leveraged staking without perps: reduce_risk (health factor) and rebalance_margin (margin
    ratio) can hold together over the registry's ranges -- the old warning -- but never in a
    config whose margin ratio is always inf."""
    ctx = _context("overlap_without_perps")
    by = {t.trigger: t for t in ctx.transitions}
    a, b = ctx.guard(by["reduce_risk"]), ctx.guard(by["rebalance_margin"])
    assert ctx.can_hold(a, b)
    assert not ctx.can_hold_here(a, b)
    assert ctx.produced.domains["margin_ratio_min"].lo == float("inf")
    assert "health_factor" not in ctx.produced.domains  # it borrows: its health factor varies
    ctx = _context("overlap_without_debt")
    by = {t.trigger: t for t in ctx.transitions}
    a, b = ctx.guard(by["reduce_risk"]), ctx.guard(by["rebalance_margin"])
    assert ctx.can_hold(a, b) and not ctx.can_hold_here(a, b)
    assert ctx.produced.domains["health_factor"].lo == float("inf") and "margin_ratio_min" not in ctx.produced.domains


def test_a_basket_without_leverage_needs_no_emergency_state():
    ctx = _context("no_emergency_without_leverage")
    assert ctx.emergency is None and not ctx.produced.can_be_liquidated
    # The no_emergency_state case (debt and perps, no emergency state) is still reported.
    assert _context("no_emergency_state").produced.can_be_liquidated


def test_accept_entries_for_data_are_not_stale_in_another_window(market):
    """A data acknowledgement is judged only over the default window: a window without the gap
    neither reports the gap nor calls the entry stale."""
    cfg = ROOT / "configs" / "eth_basis.yaml"
    r = audit_config(cfg, data=market, start="2024-09-10", end="2024-09-20")
    assert not [f for f in r.findings if f.code == "stale-accept"], [str(f) for f in r.findings]
    assert not audit_config(cfg, check_data=False).warnings


def test_shipped_configs_print_zero_unacknowledged_warnings():
    """`trimtab audit configs/*.yaml`, a real process: no errors, no warnings, every remaining
    warning shown as accepted with a reason."""
    import json
    import subprocess
    import sys

    configs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").glob("*.yaml"))
    exe = Path(sys.executable).with_name("trimtab")
    out = subprocess.run([str(exe), "audit", *configs, "--format", "json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert (d["errors"], d["warnings"]) == (0, 0), [f"{c['config']}: {f['code']} {f['message'][:80]}" for c in d["configs"] for f in c["findings"]]
    assert d["accepted"] > 0 and all(a["reason"] for c in d["configs"] for a in c["accepted"])
    table = subprocess.run([str(exe), "audit", *configs], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert table.returncode == 0 and f"{len(configs)} configs: 0 errors, 0 warnings, {d['accepted']} accepted" in table.stdout


def test_an_acknowledgement_names_code_file_and_path():
    from trimtab.config.acknowledge import parse_accept

    a = parse_accept(0, 'data-gaps@venues/binance.yaml:perp.risk_limits["binance:Perp:ETHUSDT"]: a path with colons: fine')
    assert (a.code, a.file, a.path, a.reason) == ("data-gaps", "venues/binance.yaml", 'perp.risk_limits["binance:Perp:ETHUSDT"]',
                                                  "a path with colons: fine")
    for bad, says in (("guard-overlap: no location", "no '@'"), ("Guard@machines/x.yaml:states: r", "lowercase"),
                      ("guard-overlap@machines/x.yaml:states:", "followed by ': ' and a reason")):
        with pytest.raises(ValueError, match=re.escape(says)):
            parse_accept(0, bad)
