"""Portfolio-of-strategies configs: a new config kind, cross-checked like strategy configs.

A portfolio config (``configs/portfolio_*.yaml`` with a ``sleeves:`` list; model
:class:`trimtab.config.models.PortfolioConfig`) names strategy configs as sleeves, a machine and
rule files for the portfolio itself (default ``machines/portfolio.yaml`` and
``rules/portfolio.yaml``), an allocation method and limits. :func:`load_portfolio` validates it
and everything it names, and reports every problem of every file at once as one
:class:`~trimtab.errors.ConfigError` (``file:line:col: path: message``):

* the config's shape (unknown fields, types, ranges) and each sleeve's strategy config (all of
  :func:`trimtab.config.load.load_strategy`'s checks);
* sleeve ids unique; weights in [min_weight, max_weight] and summing to 1; every sleeve in the
  portfolio's share class; no portfolio as a sleeve;
* the machine's states, transitions and rules; every rule name a portfolio metric
  (scope ``portfolio`` of :data:`trimtab.metrics.REGISTRY`) or a parameter; config parameters
  declared by a rule file;
* every ``audit.accept`` entry in the ``CODE@FILE:PATH: reason`` format
  (:func:`trimtab.config.acknowledge.parse_accept`), as a strategy config's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.acknowledge import parse_accept
from ..config.load import CompiledRule, Strategy, find_root, load_strategy
from ..config.domains import parameter_domain_error
from ..config.models import MachineSpec, PortfolioConfig, RuleFile, SleeveSpec
from ..config.pydantic_errors import validate
from ..config.wording import suggest
from ..config.yamldoc import YamlDoc, load_yaml
from ..diagnostics import Diagnostic
from ..errors import ConfigError
from ..metrics import Scope, metrics
from ..rules.compile import compile_expr
from ..rules.nodes import ExprError
from ..rules.nodes import names as expr_names
from ..rules.parse import parse as parse_expr
from ..templates.registry import TEMPLATES



@dataclass
class Portfolio:
    """A loaded portfolio: its config, sleeves (spec and loaded strategy), machine, rules and
    parameters. Duck-types the parts of :class:`trimtab.config.load.Strategy` that
    :class:`trimtab.engine.machine.StrategyMachine` reads (``machine``, ``rules``)."""

    config: PortfolioConfig
    config_file: str
    root: Path
    machine: MachineSpec
    machine_file: str
    rules: dict[str, CompiledRule]
    params: dict[str, float]
    sleeves: list[tuple[SleeveSpec, Strategy]]
    docs: dict[str, YamlDoc] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name


def is_portfolio_file(path: str | Path) -> bool:
    """True when ``path`` is a YAML mapping with a top-level ``sleeves`` key (a portfolio config).
    Files that do not parse are not (the strategy loader reports them)."""
    try:
        data = load_yaml(path).data
    except Exception:  # noqa: BLE001 - not ours to report
        return False
    return isinstance(data, dict) and "sleeves" in data


def is_basket_file(path: str | Path) -> bool:
    """True when ``path`` is a strategy config with a basket target (a template that owns the
    wallet, ``token_weights``: trimtab.templates)."""
    try:
        data = load_yaml(path).data
    except Exception:  # noqa: BLE001
        return False
    targets = data.get("targets") if isinstance(data, dict) else None
    return isinstance(targets, list) and any(
        isinstance(t, dict) and t.get("template") in TEMPLATES and TEMPLATES[t["template"]].owns_wallet for t in targets)


def load_portfolio(path: str | Path) -> Portfolio:
    """Load and cross-check a portfolio config, its sleeves' strategy configs, machine and rules.

    Raises:
        ConfigError: every problem found in any of the files, each at ``file:line:col``.
    """
    path = Path(path)
    issues: list[Diagnostic] = []
    doc = load_yaml(path)
    cfg, iss = validate(PortfolioConfig, doc)
    issues += iss
    if cfg is None:
        raise ConfigError(issues)
    root = find_root(path)

    def add(d: YamlDoc, p: tuple, msg: str, key: bool = False) -> None:
        issues.append(d.issue(p, msg, key=key))

    def load_named(folder: str, name: str, model, ref: tuple):
        f = root / folder / f"{name}.yaml"
        if not f.exists():
            have = sorted(p.stem for p in (root / folder).glob("*.yaml"))
            add(doc, ref, f"unknown {folder[:-1]} {name!r}{suggest(name, have)}; known: {', '.join(have)}")
            return None, None
        d = load_yaml(f)
        m, iss2 = validate(model, d)
        issues.extend(iss2)
        return m, d

    machine, mdoc = load_named("machines", cfg.machine, MachineSpec, ("machine",))
    rule_files = []
    for i, r in enumerate(cfg.rules):
        rf, rdoc = load_named("rules", r, RuleFile, ("rules", i))
        if rf is not None:
            rule_files.append((rf, rdoc))
    params: dict[str, float] = {}
    for rf, _ in rule_files:
        params.update({k: v.default for k, v in rf.parameters.items()})
    for k in cfg.parameters:
        if k not in params:
            add(doc, ("parameters", k), f"unknown parameter {k!r}{suggest(k, sorted(params))}: no portfolio rule file declares it", key=True)
    params.update(cfg.parameters)
    for rf, rdoc in rule_files:
        for k, spec in rf.parameters.items():
            err = parameter_domain_error(k, spec.default) if k not in cfg.parameters else None
            if err:
                add(rdoc, ("parameters", k, "default"), err)
    for k, v in cfg.parameters.items():
        err = parameter_domain_error(k, v)
        if err:
            add(doc, ("parameters", k), err)

    rules: dict[str, CompiledRule] = {}
    portfolio_metrics = metrics(Scope.PORTFOLIO)
    for rf, rdoc in rule_files:
        for rname, rspec in rf.rules.items():
            rp = ("rules", rname, "when")
            if rname in rules:
                add(rdoc, ("rules", rname), f"rule {rname!r} is defined twice", key=True)
                continue
            try:
                node = parse_expr(rspec.when)
            except ExprError as e:
                line, col = rdoc.locate(rp)
                issues.append(Diagnostic(rdoc.file, line, col + e.offset, ("rules", rname, "when"), f"bad expression: {e.message}"))
                continue
            unknown = [n for n in sorted(expr_names(node)) if n not in portfolio_metrics and n not in params]
            for n in unknown:
                add(rdoc, rp, f"unknown name {n!r} in rule {rname!r}{suggest(n, sorted(set(portfolio_metrics) | set(params)))}: "
                              f"not a portfolio metric nor a parameter")
            if unknown:
                continue
            consts = {n: params[n] for n in expr_names(node) if n in params}
            line, col = rdoc.locate(("rules", rname))
            rules[rname] = CompiledRule(rname, rspec, compile_expr(node, consts), rdoc.file, line, col)
        for rname, rspec in rf.rules.items():
            if rspec.hysteresis and rspec.hysteresis not in rf.rules:
                add(rdoc, ("rules", rname, "hysteresis"), f"unknown rule {rspec.hysteresis!r}{suggest(rspec.hysteresis, sorted(rf.rules))}")
    if machine is not None:
        states = list(machine.states)
        if machine.initial not in machine.states:
            add(mdoc, ("initial",), f"unknown state {machine.initial!r}{suggest(machine.initial, states)}")
        known_rules = {n for rf, _ in rule_files for n in rf.rules}
        for i, t in enumerate(machine.transitions):
            srcs = [t.source] if isinstance(t.source, str) else list(t.source)
            for j, s in enumerate(srcs):
                if s == "*" and isinstance(t.source, str):
                    continue
                if s not in machine.states:
                    p = ("transitions", i, "source") if isinstance(t.source, str) else ("transitions", i, "source", j)
                    add(mdoc, p, f"unknown state {s!r}{suggest(s, states)}")
            if t.dest not in machine.states:
                add(mdoc, ("transitions", i, "dest"), f"unknown state {t.dest!r}{suggest(t.dest, states)}")
            for j, r in enumerate(t.when):
                if r not in known_rules:
                    add(mdoc, ("transitions", i, "when", j), f"unknown rule {r!r}{suggest(r, sorted(known_rules))}")
            if t.overrides or t.yield_check:
                add(mdoc, ("transitions", i), "a portfolio transition has no parameter overrides or yield check")
        for sname, st in machine.states.items():
            if st.action is not None and st.action.kind != "target":
                add(mdoc, ("states", sname, "action", "kind"), f"a portfolio action state reallocates toward the targets: kind must be "
                                                              f"'target', not {st.action.kind!r}")
        triggers = [t.trigger for t in machine.transitions]
        for i, t in enumerate(triggers):
            if triggers.index(t) != i:
                add(mdoc, ("transitions", i, "trigger"), f"trigger {t!r} is used twice")
    if "max_portfolio_drawdown" in params and "resume_portfolio_drawdown" in params:
        if not params["resume_portfolio_drawdown"] < params["max_portfolio_drawdown"]:
            add(doc, ("parameters",), f"resume_portfolio_drawdown {params['resume_portfolio_drawdown']:g} must be below "
                                      f"max_portfolio_drawdown {params['max_portfolio_drawdown']:g} (hysteresis)", key=True)

    sleeves: list[tuple[SleeveSpec, Strategy]] = []
    ids = [s.id for s in cfg.sleeves]
    total = 0.0
    for i, s in enumerate(cfg.sleeves):
        base = ("sleeves", i)
        if ids.index(s.id) != i:
            add(doc, base + ("id",), f"sleeve id {s.id!r} is used twice")
        if s.min_weight > s.max_weight:
            add(doc, base + ("min_weight",), f"sleeve {s.id!r} min_weight {s.min_weight:g} is above its max_weight {s.max_weight:g}")
        elif not s.min_weight <= s.weight <= s.max_weight:
            add(doc, base + ("weight",), f"sleeve {s.id!r} weight {s.weight:g} is outside its limits [{s.min_weight:g}, {s.max_weight:g}]")
        total += s.weight
        spath = (path.parent / s.config)
        if not spath.exists():
            add(doc, base + ("config",), f"sleeve config {s.config!r} not found next to the portfolio config")
            continue
        if is_portfolio_file(spath):
            add(doc, base + ("config",), f"sleeve config {s.config!r} is a portfolio; a sleeve is a strategy config")
            continue
        try:
            strategy = load_strategy(spath)
        except ConfigError as e:
            issues += e.issues
            add(doc, base + ("config",), f"sleeve {s.id!r}: {s.config} does not load ({len(e.issues)} issue{'s' if len(e.issues) != 1 else ''} above)")
            continue
        if strategy.config.flows:
            add(doc, base + ("config",), f"sleeve {s.id!r} ({s.config}) has its own capital flows file; a sleeve's capital moves "
                                         f"only through the portfolio")
        if strategy.config.share_class != cfg.share_class:
            add(doc, base + ("config",), f"sleeve {s.id!r} ({s.config}) is in {strategy.config.share_class}; the portfolio is in "
                                         f"{cfg.share_class}: every sleeve must share the portfolio's share class")
        sleeves.append((s, strategy))
    if abs(total - 1.0) > 1e-9:
        add(doc, ("sleeves",), f"sleeve weights sum to {total:.6g}, not 1")
    # The same format check as a strategy's (trimtab.config.load): a malformed entry is a config
    # error at its line, not an acknowledgement the audit silently never matches.
    for i, entry in enumerate(cfg.audit.accept):
        try:
            parse_accept(i, entry)
        except ValueError as e:
            add(doc, ("audit", "accept", i), f"bad audit acknowledgement: {e}")
    if issues:
        raise ConfigError(issues)
    docs: dict[str, Any] = {"config": doc, "machine": mdoc}
    for rf, rdoc in rule_files:
        docs[f"rules:{Path(rdoc.file).stem}"] = rdoc
    return Portfolio(cfg, doc.file, root, machine, mdoc.file, rules, params, sleeves, docs)
