"""The metric registry (trimtab.metrics): its declarations and the readers that use them.

Whether real runs publish exactly the declared names is checked in
tests/integration/test_metrics_registry.py.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

from trimtab.audit.intervals import Interval, Solver, metric_domain, metric_kind
from trimtab.explain import shown_metrics
from trimtab.metrics import KINDS, REGISTRY, Family, Metric, Scope, Stage, accepts, defaults, expand, lookup, metrics
from trimtab.rules.parse import parse

ROOT = Path(__file__).resolve().parents[2]


def test_each_name_is_declared_once_per_scope():
    counts = Counter((d.scope, d.name) for d in REGISTRY)
    assert [k for k, n in counts.items() if n > 1] == []
    for f in (d for d in REGISTRY if isinstance(d, Family)):
        assert f.prefix.endswith(".") and f.member, f
        assert not any(f.member_of(m.name) for m in REGISTRY if isinstance(m, Metric)), f"{f.name} shadows a metric"


def test_declarations_are_complete():
    for d in REGISTRY:
        assert d.description and d.unit and d.domain.reason, d.name
        assert d.kind in KINDS, d.name
        dom = d.domain
        assert not Interval(dom.lo, dom.hi, dom.lo_open, dom.hi_open, dom.integer).empty(), d.name
        if isinstance(d, Metric):
            inactive = Interval.point(d.inactive).intersect(metric_domain(d.name))
            assert not inactive.empty(), f"{d.name}: inactive value {d.inactive} outside its domain"
        assert (d.stage is Stage.PORTFOLIO) == (d.scope is Scope.PORTFOLIO), d.name


def test_a_name_both_scopes_declare_means_the_same_range():
    s, p = metrics(Scope.STRATEGY), metrics(Scope.PORTFOLIO)
    shared = set(s) & set(p)
    assert shared == {"equity", "plan_in_flight"}
    for n in shared:
        assert s[n].domain == p[n].domain and s[n].kind == p[n].kind, n


def test_the_audit_reasons_over_the_declared_domains():
    for d in REGISTRY:
        name = f"{d.prefix}x" if isinstance(d, Family) else d.name
        want = Interval(d.domain.lo, d.domain.hi, d.domain.lo_open, d.domain.hi_open, d.domain.integer)
        assert metric_domain(name) == want, name
        assert metric_kind(name) == d.kind, name
    assert metric_domain("margin_ratio.okx") == metric_domain("margin_ratio_min")
    assert metric_domain("not_declared") == Interval() and metric_kind("not_declared") == "other"
    # a guard below a declared lower end can never hold; the same guard on an undeclared name can
    solver = Solver({})
    assert not solver.can_hold(parse("health_factor < 0"))
    assert not solver.can_hold(parse("drift.ETH < -1"))
    assert solver.can_hold(parse("something_else < 0"))


def test_expand_and_accepts():
    names = expand(Scope.STRATEGY, {"venue": ["okx", "binance"], "token": ["ETH"]})
    assert names[: len(metrics(Scope.STRATEGY))] == list(metrics(Scope.STRATEGY))
    assert names[len(metrics(Scope.STRATEGY)):] == ["margin_ratio.okx", "margin_ratio.binance", "drift.ETH"]
    assert "drift.ETH" not in expand(Scope.STRATEGY, {})
    # per-venue margin ratios are an open family; a basket token's drift is checked per config
    assert accepts("margin_ratio.kraken", Scope.STRATEGY) and not accepts("drift.ETH", Scope.STRATEGY)
    assert accepts("cash", Scope.PORTFOLIO) and not accepts("cash", Scope.STRATEGY)
    assert not accepts("margin_ratio.", Scope.STRATEGY)  # a prefix without a member
    assert isinstance(lookup("drift.BTC"), Family) and lookup("drift.BTC", Scope.PORTFOLIO) is None


def test_inactive_values_come_from_the_registry():
    assert defaults(Scope.STRATEGY, Stage.BASKET) == {"max_drift": 0.0, "unhealthy_tokens": 0.0, "calendar_due": 0.0}
    assert defaults(Scope.STRATEGY, Stage.RISK)["health_factor"] == math.inf


def test_explain_shows_the_flagged_metrics_in_registry_order():
    m = dict.fromkeys(["stale_venues", "equity", "margin_ratio.okx", "net_delta", "margin_ratio.binance", "drift.ETH",
                       "health_factor", "delta_drift", "margin_ratio_min"], 1.0)
    assert shown_metrics(m) == ["health_factor", "margin_ratio_min", "margin_ratio.binance", "margin_ratio.okx",
                                "delta_drift", "net_delta", "equity"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trimtab.cli.main", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_trimtab_metrics_lists_the_registry():
    r = _cli("metrics", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)["metrics"]
    assert [(x["scope"], x["name"]) for x in got] == [(d.scope.value, d.name) for d in REGISTRY]
    hf = next(x for x in got if x["name"] == "health_factor")
    assert hf["domain"] == {"lo": 0.0, "hi": "inf", "lo_open": False, "hi_open": False, "integer": False,
                            "reason": metrics(Scope.STRATEGY)["health_factor"].domain.reason, "text": "[0, inf]"}
    assert hf["unit"] == "ratio" and hf["stage"] == "risk"
    r = _cli("metrics", "--scope", "portfolio")
    assert r.returncode == 0, r.stderr
    assert "portfolio metrics" in r.stdout and "strategy metrics" not in r.stdout
    for name in metrics(Scope.PORTFOLIO):
        assert name in r.stdout
    assert "margin_ratio.<venue>" not in r.stdout
