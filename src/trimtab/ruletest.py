"""Rule tests: YAML fixtures of (state, metrics, parameters) -> expected transition.

A fixture file (``tests/rules/*.yaml``, schema ``schema/ruletest.schema.json``)::

    config: ../../configs/<strategy>.yaml   # relative to this file
    metrics: {health_factor: 1.118, margin_ratio_min: 1.0, ...}    # the snapshot every case starts from
    parameters: {}                                                  # overrides of the config's parameters
    cases:
      - name: health factor under hf_reduce reduces leverage
        state: idle
        metrics: {health_factor: 1.07}        # merged over the file's metrics
        expect: reduce_risk                   # the trigger that must fire, or `none`
        dest: exit_partial                    # optional: the state it must lead to
        rules: {health_factor_critical: true} # optional: rule results that must come out

Each case runs the real :class:`trimtab.engine.machine.StrategyMachine` of the config (rules
compiled with the case's parameters) from ``state`` for one step, exactly as a backtest tick
would, and compares the decision. :func:`run_files` also counts which (source state, trigger)
transitions fired and which rules held / did not hold / decided a firing transition: the
coverage report of ``trimtab test``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .config.load import CompiledRule, Strategy, load_strategy
from .config.pydantic_errors import validate
from .config.wording import suggest
from .config.yamldoc import YamlDoc, load_yaml
from .diagnostics import Diagnostic
from .engine.machine import StrategyMachine
from .errors import ConfigError
from .metrics import Scope
from .metrics import accepts as accepts_metric
from .metrics import metrics as strategy_metrics
from .rules.compile import compile_expr
from .rules.nodes import ExprError, names
from .rules.parse import parse

NONE = "none"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleCase(_Strict):
    """One rule test: from ``state`` with these metrics (over the file's), ``expect`` fires."""

    name: str
    state: str
    metrics: dict[str, float] = {}
    parameters: dict[str, float] = {}
    expect: str = Field(description="the trigger that must fire, or 'none' for no transition")
    dest: str | None = None
    rules: dict[str, bool] = {}
    description: str = ""


class RuleTestFile(_Strict):
    """A file of rule tests against one config's machine, rules and parameters."""

    config: str
    description: str = ""
    metrics: dict[str, float] = {}
    parameters: dict[str, float] = {}
    cases: list[RuleCase] = Field(min_length=1)


@dataclass
class CaseResult:
    """One case: where it is, pass/fail, expected and actual trigger, the state reached, why it failed."""

    file: str
    line: int
    name: str
    state: str
    ok: bool
    expected: str
    got: str | None
    dest: str
    message: str = ""


@dataclass
class Coverage:
    """Per machine: fired (source, trigger) pairs and rule outcomes over all cases."""

    machine: str
    pairs: dict[tuple[str, str], str] = field(default_factory=dict)  # (source, trigger) -> dest
    fired: dict[tuple[str, str], int] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)
    held: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    decided: dict[str, int] = field(default_factory=dict)

    @property
    def transitions_covered(self) -> int:
        """(source, trigger) pairs fired by at least one case."""
        return sum(1 for p in self.pairs if self.fired.get(p))

    @property
    def rules_covered(self) -> int:
        """Rules that decided a firing transition in at least one case."""
        return sum(1 for r in self.rules if self.decided.get(r))


@dataclass
class RunResult:
    """Every case run, coverage per machine file, and fixture issues (file:line:col)."""

    cases: list[CaseResult] = field(default_factory=list)
    coverage: dict[str, Coverage] = field(default_factory=dict)
    issues: list[Diagnostic] = field(default_factory=list)

    @property
    def failed(self) -> list[CaseResult]:
        """The cases that did not pass."""
        return [c for c in self.cases if not c.ok]


def _machine_for(strategy: Strategy, params: dict[str, float]):
    """A StrategyMachine whose rules are compiled with ``params``."""
    if params != strategy.params:
        rules = {}
        for name, r in strategy.rules.items():
            node = parse(r.spec.when)
            consts = {n: params[n] for n in names(node) if n in params}
            rules[name] = CompiledRule(name, r.spec, compile_expr(node, consts), r.file, r.line, r.col)
        strategy = dataclasses.replace(strategy, params=params, rules=rules)
    return StrategyMachine(strategy)


def _known_metric(name: str) -> bool:
    return accepts_metric(name, Scope.STRATEGY)


def run_file(path: str | Path, result: RunResult, cache: dict | None = None) -> None:
    """Run the cases of one fixture file into ``result`` (issues of the file go to ``result.issues``)."""
    cache = {} if cache is None else cache
    try:
        doc: YamlDoc = load_yaml(path)
    except ConfigError as e:
        result.issues += e.issues
        return
    spec, issues = validate(RuleTestFile, doc)
    if spec is None:
        result.issues += issues
        return
    cfg = (Path(path).parent / spec.config)
    try:
        key = str(cfg.resolve())
        if key not in cache:
            cache[key] = load_strategy(cfg)
        strategy = cache[key]
    except ConfigError as e:
        result.issues.append(doc.issue(("config",), f"config {spec.config} does not load ({len(e.issues)} issues; run trimtab validate)"))
        return
    machine = strategy.machine
    cov = result.coverage.get(strategy.machine_file)
    if cov is None:
        cov = result.coverage[strategy.machine_file] = Coverage(machine.name)
        probe = _machine_for(strategy, strategy.params)
        for trigger, sources, dest, _ in probe.order:
            for s in sources:
                cov.pairs[(s, trigger)] = dest
        cov.rules = sorted({r for t in machine.transitions for r in t.when})
    triggers = {t.trigger for t in machine.transitions}
    file_issues = []
    for where, ms in [(("metrics",), spec.metrics)] + [(("cases", i, "metrics"), c.metrics) for i, c in enumerate(spec.cases)]:
        for m in ms:
            if not _known_metric(m):
                file_issues.append(doc.issue(where + (m,), f"unknown metric {m!r}{suggest(m, sorted(strategy_metrics(Scope.STRATEGY)))}", key=True))
    for where, ps in [(("parameters",), spec.parameters)] + [(("cases", i, "parameters"), c.parameters) for i, c in enumerate(spec.cases)]:
        for p in ps:
            if p not in strategy.params:
                file_issues.append(doc.issue(where + (p,), f"unknown parameter {p!r}{suggest(p, sorted(strategy.params))}", key=True))
    for i, c in enumerate(spec.cases):
        if c.state not in machine.states:
            file_issues.append(doc.issue(("cases", i, "state"), f"unknown state {c.state!r}{suggest(c.state, list(machine.states))}"))
        if c.expect != NONE and c.expect not in triggers:
            file_issues.append(doc.issue(("cases", i, "expect"), f"unknown trigger {c.expect!r}{suggest(c.expect, sorted(triggers))}; or 'none'"))
        if c.dest is not None and c.dest not in machine.states:
            file_issues.append(doc.issue(("cases", i, "dest"), f"unknown state {c.dest!r}{suggest(c.dest, list(machine.states))}"))
        for r in c.rules:
            if r not in strategy.rules:
                file_issues.append(doc.issue(("cases", i, "rules", r), f"unknown rule {r!r}{suggest(r, sorted(strategy.rules))}", key=True))
    if file_issues:
        result.issues += file_issues
        return

    machines: dict[tuple, object] = cache.setdefault(("machines", key), {})
    for i, c in enumerate(spec.cases):
        line = doc.locate(("cases", i))[0]
        params = {**strategy.params, **spec.parameters, **c.parameters}
        pk = tuple(sorted(params.items()))
        sm = machines.get(pk)
        if sm is None:
            sm = machines[pk] = _machine_for(strategy, params)
        sm.machine.set_state(c.state)
        metrics = {**spec.metrics, **c.metrics}
        try:
            d = sm.step(0, "test", metrics)
        except ExprError as e:
            result.cases.append(CaseResult(doc.file, line, c.name, c.state, False, c.expect, None, c.state,
                                           f"cannot evaluate the rules: {e.message} (add it to the file's or the case's metrics)"))
            continue
        outcome = {r["rule"]: r for r in d.rules}
        problems = []
        got = d.trigger or NONE
        if got != c.expect:
            fired = ""
            if d.trigger:
                when = next(w for t, _, _, w in sm.order if t == d.trigger)
                fired = "; it fired on " + ", ".join(_explain(outcome[r]) for r in when)
            elif c.expect != NONE:
                when = next(w for t, _, _, w in sm.order if t == c.expect)
                missing = [r for r in when if not outcome[r]["result"]]
                fired = "; " + ", ".join(f"{r} did not hold ({_explain(outcome[r])})" for r in missing) if missing else \
                    f"; its rules held but an earlier transition or the source state ruled it out"
            problems.append(f"expected {c.expect}, got {got}{fired}")
        if c.dest is not None and d.dest != c.dest:
            problems.append(f"expected to reach {c.dest}, reached {d.dest}")
        for r, want in c.rules.items():
            if outcome[r]["result"] != want:
                problems.append(f"rule {r} expected {str(want).lower()}, got {str(outcome[r]['result']).lower()} ({_explain(outcome[r])})")
        result.cases.append(CaseResult(doc.file, line, c.name, c.state, not problems, c.expect, got, d.dest, "; ".join(problems)))
        for r in d.rules:
            (cov.held if r["result"] else cov.failed)[r["rule"]] = (cov.held if r["result"] else cov.failed).get(r["rule"], 0) + 1
        if d.trigger:
            cov.fired[(c.state, d.trigger)] = cov.fired.get((c.state, d.trigger), 0) + 1
            for r in next(w for t, _, _, w in sm.order if t == d.trigger):
                cov.decided[r] = cov.decided.get(r, 0) + 1


def _explain(rule: dict) -> str:
    comps = rule.get("comparisons") or []
    if not comps:
        return rule["rule"]
    return " and ".join(f"{c[0]}={_n(c[1])} {c[2]} {_n(c[3])}" for c in comps)


def _n(x) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def collect(paths: list[str | Path]) -> list[Path]:
    """Fixture files: YAML files given, and the ``*.yaml`` of folders given (sorted)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(p.glob("*.yaml"))
        else:
            out.append(p)
    return out


def run_files(paths: list[str | Path]) -> RunResult:
    """Run every fixture of ``paths`` (files or folders); see :class:`RunResult`."""
    result = RunResult()
    cache: dict = {}
    for p in collect(paths):
        run_file(p, result, cache)
    return result


def print_report(result: RunResult, console, verbose: bool = False) -> None:
    """Case results (failures in full), then the coverage of transitions and rules per machine."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    for i in result.issues:
        console.print(Text(str(i), style="red"), soft_wrap=True)
    for c in result.cases:
        if c.ok and not verbose:
            continue
        t = Text("PASS " if c.ok else "FAIL ", style="green" if c.ok else "bold red")
        t.append(f"{c.file}:{c.line}: {c.name} [{c.state} -> {c.got}]")
        if c.message:
            t.append(f"\n     {c.message}", style="red")
        console.print(t, soft_wrap=True)
    for mfile, cov in result.coverage.items():
        tt = Table(title=f"transitions of {cov.machine} ({mfile})", box=box.SIMPLE_HEAD, title_justify="left")
        for col in ("from", "trigger", "to", "cases"):
            tt.add_column(col, justify="right" if col == "cases" else "left")
        for (s, trig), dest in cov.pairs.items():
            n = cov.fired.get((s, trig), 0)
            tt.add_row(s, trig, dest, Text(str(n), style="green" if n else "bold red"))
        console.print(tt)
        rt = Table(title=f"rules of {cov.machine}", box=box.SIMPLE_HEAD, title_justify="left")
        for col in ("rule", "held", "did not hold", "fired a transition"):
            rt.add_column(col, justify="left" if col == "rule" else "right")
        for r in cov.rules:
            d = cov.decided.get(r, 0)
            rt.add_row(r, str(cov.held.get(r, 0)), str(cov.failed.get(r, 0)), Text(str(d), style="green" if d else "bold red"))
        console.print(rt)
    passed = sum(1 for c in result.cases if c.ok)
    line = Text(f"{passed} passed, {len(result.failed)} failed", style="bold red" if result.failed or result.issues else "bold green")
    if result.issues:
        line.append(f", {len(result.issues)} fixture error{'s' if len(result.issues) != 1 else ''}", style="bold red")
    for cov in result.coverage.values():
        nt, nr = len(cov.pairs), len(cov.rules)
        line.append(f"  ·  {cov.machine}: transitions {cov.transitions_covered}/{nt} ({pct(cov.transitions_covered, nt)}), "
                    f"rules {cov.rules_covered}/{nr} ({pct(cov.rules_covered, nr)})")
    console.print(line, soft_wrap=True)


def pct(a: int, b: int) -> str:
    """``a`` of ``b`` as a whole percentage."""
    return f"{100 * a / b:.0f}%" if b else "n/a"
