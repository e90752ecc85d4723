"""Load a strategy config with its machine, rules and venues, and check every reference.

``load_strategy(path)`` reads ``configs/x.yaml`` and the files it names from the project
root (the nearest ancestor folder holding ``machines/``, ``rules/`` and ``venues/``), validates
each against :mod:`trimtab.config.models`, then checks every cross-reference: machine states
and rules, rule expressions and the names they use, parameters, venues, instrument keys and
target ids. All problems of all files are collected and raised together as one
:class:`~trimtab.errors.ConfigError` (``file:line:col: path: message`` per line).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ConfigIssue
from ..keys import InstrumentKeyError, parse_key
from ..rules.expr import CompiledExpr, ExprError, compile_expr
from ..rules.expr import names as expr_names
from ..rules.expr import parse as parse_expr
from .models import (
    LendTarget,
    LeveragedStakeTarget,
    MachineSpec,
    PerpHedgeTarget,
    RuleFile,
    RuleSpec,
    SignalPerpTarget,
    SpotTarget,
    StakeTarget,
    StrategyConfig,
    TokenWeightsTarget,
    VenueSpec,
    WalletReserveTarget,
)
from . import domains
from .yamlio import YamlDoc, load_yaml, suggest, validate

#: Metrics the tight loop publishes (see trimtab.engine.monitors). ``margin_ratio.<venue>``
#: is published per perp venue as well.
METRICS = {
    "health_factor": "Aave health factor: sum(collateral x price x liquidation threshold) / sum(debt x price); inf without debt",
    "ltv": "Aave loan-to-value: debt value / collateral value",
    "margin_ratio_min": "Smallest CEX margin ratio (account equity / position notional) over venues with a position; inf if none",
    "net_delta": "Net exposure to the strategy's asset, in asset units",
    "delta_drift": "net_delta / hedged delta (0 when nothing is hedged)",
    "equity": "Equity in the share class",
    "equity_deviation": "|equity - equity at last rebalance| / equity at last rebalance",
    "idle_fraction": "Share-class tokens idle in the wallet / equity",
    "hours_since_rebalance": "Hours since the last plan was submitted (inf before the first)",
    "plan_in_flight": "1 while a plan has steps still to run, else 0",
    "hedge_allocation_drift": "Largest |venue share of the hedge - its target share| over hedge legs",
    "stale_venues": "Number of configured venues whose market data is stale at this tick",
    "signal_side": "Side (-1/0/1) the signal in force asks for, confidence over threshold; the current side while the venue cannot trade",
    "position_side": "Side (-1/0/1) of the signal-driven perp position",
    "dust_fraction": "Value of reward tokens (EIGEN, ETHFI) in the wallet / equity",
    "pending_deposit": "Deposited capital not yet deployed, share class",
    "withdrawal_fraction": "Requested withdrawals not yet paid / equity",
    "withdraw_all": "1 when a full withdrawal was requested, else 0",
    "venue_imbalance": "CEX accounts' share of equity minus their target share (perp_hedge allocation); + means excess CEX margin",
    "max_drift": "Largest |drift| over the healthy tokens of a token_weights basket, drift = (value - target value) / target value; 0 without a basket",
    "calendar_due": "1 on the first tick of the basket's calendar period (UTC day, ISO week or month) and on the run's first tick, else 0",
    "unhealthy_tokens": "Number of basket tokens whose price is missing, stale or diverged from the other source (they are not traded)",
}
#: Per-token metrics of a token_weights basket: ``drift.<TOKEN>`` (signed drift of that token).
BASKET_METRIC_PREFIX = "drift."
METRIC_PREFIXES = ("margin_ratio.",)


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to evaluate: parameters folded in, metric names left free."""

    name: str
    spec: RuleSpec
    expr: CompiledExpr
    file: str
    line: int
    col: int


@dataclass
class Strategy:
    """Everything the engine needs from YAML, cross-checked. Built by :func:`load_strategy`."""

    config: StrategyConfig
    config_file: str
    root: Path
    machine: MachineSpec
    machine_file: str
    rules: dict[str, CompiledRule]
    params: dict[str, float]
    param_docs: dict[str, str]
    venues: dict[str, VenueSpec]
    instruments: dict[str, tuple[str, Any]]  # key -> (venue name, InstrumentSpec)
    docs: dict[str, YamlDoc] = field(default_factory=dict)
    _compiled: dict[str, CompiledExpr] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    def target_value(self, expr: float | str, params: dict[str, float] | None = None) -> float:
        """Evaluate a target's number-or-expression against ``params`` (default: the strategy's)."""
        if isinstance(expr, (int, float)):
            return float(expr)
        fn = self._compiled.get(expr)
        if fn is None:
            fn = self._compiled[expr] = compile_expr(expr)
        return float(fn(params if params is not None else self.params))


def _expression_names(value) -> set[str]:
    """Every name used by an expression anywhere in a target (nested lists and mappings walked);
    strings that are not expressions (instrument keys, file names) are skipped."""
    if isinstance(value, str):
        try:
            return set(expr_names(parse_expr(value)))
        except ExprError:
            return set()
    if isinstance(value, dict):
        return set().union(*(_expression_names(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(_expression_names(v) for v in value)) if value else set()
    return set()


def find_root(config_path: Path) -> Path:
    """The nearest ancestor of ``config_path`` holding machines/, rules/ and venues/."""
    for parent in [config_path.resolve().parent, *config_path.resolve().parents]:
        if all((parent / d).is_dir() for d in ("machines", "rules", "venues")):
            return parent
    raise ConfigError(
        [ConfigIssue(str(config_path), 1, 1, "<root>", "no project root found: expected machines/, rules/ and venues/ folders in an ancestor of the config")]
    )


class _Checker:
    """Collects issues across files; each check appends and carries on."""

    def __init__(self) -> None:
        self.issues: list[ConfigIssue] = []

    def add(self, doc: YamlDoc, path: tuple, message: str, key: bool = False) -> None:
        self.issues.append(doc.issue(path, message, key=key))

    def expr_issue(self, doc: YamlDoc, path: tuple, err: ExprError) -> None:
        line, col = doc.locate(path)
        # Point at the offending character: quoted scalars start one column later.
        raw = doc.data
        for p in path:
            raw = raw[p]
        quoted = 1 if _is_quoted(doc, path) else 0
        self.issues.append(ConfigIssue(doc.file, line, col + quoted + err.offset, _fmt(path), f"bad expression: {err.message}"))


def _is_quoted(doc: YamlDoc, path: tuple) -> bool:
    line, col = doc.locate(path)
    try:
        text = Path(doc.file).read_text().splitlines()[line - 1]
        return text[col - 1] in "\"'"
    except (OSError, IndexError):
        return False


def _fmt(path: tuple) -> str:
    from .yamlio import format_path

    return format_path(path)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


_FALLBACK = {"name": "", "machine": "", "rules": [], "venues": [], "share_class": "USDT", "asset": "", "capital": 0.0,
             "parameters": {}, "targets": []}


def _finite_number(v) -> bool:
    """True for an int or float (not a bool) that is a finite float."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _partial_config(data) -> StrategyConfig:
    """A StrategyConfig of the fields of ``data`` that validate on their own (list items one
    by one); invalid or missing fields take inert placeholders. Only used to carry on
    checking after errors were already reported, never to run."""
    from pydantic import TypeAdapter, ValidationError

    data = data if isinstance(data, dict) else {}
    values = dict(_FALLBACK)
    for name, f in StrategyConfig.model_fields.items():
        if name not in data:
            if not f.is_required():
                values[name] = f.get_default(call_default_factory=True)
            continue
        raw = data[name]
        if name == "targets" and isinstance(raw, list):
            from .models import TargetSpec

            ta = TypeAdapter(TargetSpec)
            kept = []
            for item in raw:
                try:
                    kept.append(ta.validate_python(item))
                except ValidationError:
                    pass
            values[name] = kept
            continue
        if name == "parameters" and isinstance(raw, dict):  # keep the parameters that are valid
            values[name] = {k: float(v) for k, v in raw.items() if _finite_number(v)}
            continue
        try:
            values[name] = TypeAdapter(f.annotation).validate_python(raw)
        except ValidationError:
            pass
    return StrategyConfig.model_construct(**values)


def load_strategy(path: str | Path) -> Strategy:
    """Load and cross-check a strategy config and the machine, rules and venues it names.

    Raises:
        ConfigError: every problem found in any of the files, each at ``file:line:col``.
    """
    path = Path(path)
    chk = _Checker()
    doc = load_yaml(path)
    if isinstance(doc.data, dict) and "sleeves" in doc.data:
        raise ConfigError([doc.issue(("sleeves",), "this is a portfolio of strategies (it has `sleeves:`), not a strategy: "
                                                   "`trimtab run` and `trimtab audit` take it (trimtab.portfolio.config.load_portfolio "
                                                   "checks it); each sleeve is a strategy config", key=True)])
    config, issues = validate(StrategyConfig, doc)
    chk.issues += issues
    if config is None:
        # Keep going with the fields that are valid, so the references in the rest of the
        # file (and the machine, rules and venues it names) are still checked and every
        # error is reported in one pass.
        config = _partial_config(doc.data)
    root = find_root(path)
    docs: dict[str, YamlDoc] = {"config": doc}

    def load_named(folder: str, name: str, model, ref_path: tuple):
        file = root / folder / f"{name}.yaml"
        if not file.exists():
            have = sorted(p.stem for p in (root / folder).glob("*.yaml"))
            chk.add(doc, ref_path, f"unknown {folder[:-1]} {name!r}{suggest(name, have)}; known: {', '.join(have)}")
            return None, None
        try:
            d = load_yaml(_rel(file, root))
        except ConfigError as e:
            chk.issues += e.issues
            return None, None
        m, iss = validate(model, d)
        chk.issues += iss
        return m, d

    machine, mdoc = load_named("machines", config.machine, MachineSpec, ("machine",)) if config.machine else (None, None)
    rule_files: list[tuple[RuleFile, YamlDoc]] = []
    for i, rname in enumerate(config.rules):
        rf, rdoc = load_named("rules", rname, RuleFile, ("rules", i))
        if rf is not None:
            rule_files.append((rf, rdoc))
    venues: dict[str, VenueSpec] = {}
    vdocs: dict[str, YamlDoc] = {}
    for i, vname in enumerate(config.venues):
        v, vdoc = load_named("venues", vname, VenueSpec, ("venues", i))
        if v is not None:
            if v.name != vname:
                chk.add(vdoc, ("name",), f"venue file {vname}.yaml names itself {v.name!r}; the name must match the file name")
            venues[vname] = v
            vdocs[vname] = vdoc

    # Parameters: rule-file defaults, overridden by the config.
    params: dict[str, float] = {}
    param_docs: dict[str, str] = {}
    param_files: dict[str, YamlDoc] = {}
    for rf, rdoc in rule_files:
        for pname, pspec in rf.parameters.items():
            params[pname] = pspec.default
            param_docs[pname] = pspec.description
            param_files[pname] = rdoc
    declared = set(params)
    params.update(config.parameters)
    n_before = len(chk.issues)
    domains.check_parameters([(n, params[n], d) for n, d in param_files.items()], config, doc, chk.add)
    bad_params = {i.path.split(".")[1] for i in chk.issues[n_before:] if i.path.startswith("parameters.")}
    wallet_assets = set(venues["wallet"].assets or {}) if "wallet" in venues else None
    for vname, v in venues.items():
        domains.check_venue(v, vdocs[vname], chk.add, wallet_assets)
    if wallet_assets and config.asset and config.asset not in wallet_assets:
        chk.add(doc, ("asset",), f"unknown asset {config.asset!r}{suggest(config.asset, sorted(wallet_assets))}: venues/wallet.yaml "
                                 f"does not price it; priced assets: {', '.join(sorted(wallet_assets))}")

    # Instruments of the configured venues.
    instruments: dict[str, tuple[str, Any]] = {}
    for vname, v in venues.items():
        for j, inst in enumerate(v.instruments):
            try:
                k = parse_key(inst.key)
            except InstrumentKeyError as e:
                chk.add(vdocs[vname], ("instruments", j, "key"), str(e))
                continue
            if k.venue != vname:
                chk.add(vdocs[vname], ("instruments", j, "key"), f"instrument {inst.key!r} belongs to venue {k.venue!r}, not {vname!r}")
            instruments[inst.key] = (vname, inst)

    # Rules: parse, then check every free name is a metric or a parameter.
    rules: dict[str, CompiledRule] = {}
    perp_venues = [n for n, v in venues.items() if v.model == "cex_perp"]
    metric_names = set(METRICS) | {f"margin_ratio.{v}" for v in perp_venues}
    metric_names |= {f"{BASKET_METRIC_PREFIX}{tw.token}" for t in config.targets if isinstance(t, TokenWeightsTarget) for tw in t.tokens}
    for rf, rdoc in rule_files:
        for rname, rspec in rf.rules.items():
            rpath = ("rules", rname, "when")
            if rname in rules:
                chk.add(rdoc, ("rules", rname), f"rule {rname!r} is defined twice (also in {rules[rname].file})", key=True)
                continue
            try:
                node = parse_expr(rspec.when)
            except ExprError as e:
                chk.expr_issue(rdoc, rpath, e)
                continue
            unknown = [n for n in sorted(expr_names(node)) if n not in metric_names and n not in params and not n.startswith(METRIC_PREFIXES)]
            for n in unknown:
                chk.add(rdoc, rpath, f"unknown name {n!r} in rule {rname!r}{suggest(n, sorted(metric_names | set(params)))}: not a metric nor a parameter")
            if unknown:
                continue
            consts = {n: params[n] for n in expr_names(node) if n in params}
            line, col = rdoc.locate(("rules", rname))
            rules[rname] = CompiledRule(rname, rspec, compile_expr(node, consts), rdoc.file, line, col)
    for rf, rdoc in rule_files:
        for rname, rspec in rf.rules.items():
            if rspec.hysteresis and rspec.hysteresis not in rules and rspec.hysteresis not in rf.rules:
                chk.add(rdoc, ("rules", rname, "hysteresis"), f"unknown rule {rspec.hysteresis!r}{suggest(rspec.hysteresis, sorted(rules))}")

    # Machine: states, transitions, rules, action overrides.
    if machine is not None:
        states = list(machine.states)
        if machine.initial not in machine.states:
            chk.add(mdoc, ("initial",), f"unknown state {machine.initial!r}{suggest(machine.initial, states)}; states: {', '.join(states)}")
        for i, t in enumerate(machine.transitions):
            srcs = [t.source] if isinstance(t.source, str) else t.source
            for j, s in enumerate(srcs):
                if s == "*" and isinstance(t.source, str):
                    continue
                if s not in machine.states:
                    p = ("transitions", i, "source") if isinstance(t.source, str) else ("transitions", i, "source", j)
                    chk.add(mdoc, p, f"unknown state {s!r}{suggest(s, states)}; states: {', '.join(states)}")
            if t.dest not in machine.states:
                chk.add(mdoc, ("transitions", i, "dest"), f"unknown state {t.dest!r}{suggest(t.dest, states)}; states: {', '.join(states)}")
            for j, r in enumerate(t.when):
                if r not in rules and not any(r in rf.rules for rf, _ in rule_files):
                    known = sorted({n for rf, _ in rule_files for n in rf.rules})
                    chk.add(mdoc, ("transitions", i, "when", j), f"unknown rule {r!r}{suggest(r, known)}; rules come from {', '.join(config.rules)}")
        for i, t in enumerate(machine.transitions):
            for pname, val in t.overrides.items():
                if pname not in params:
                    chk.add(mdoc, ("transitions", i, "overrides", pname), f"unknown parameter {pname!r}{suggest(pname, sorted(params))}", key=True)
                if isinstance(val, str) and val not in params:
                    chk.add(mdoc, ("transitions", i, "overrides", pname), f"unknown parameter {val!r}{suggest(val, sorted(params))}")
                elif not isinstance(val, str) and (err := domains.parameter_domain_error(pname, float(val))):
                    chk.add(mdoc, ("transitions", i, "overrides", pname), f"override: {err}")
        triggers = [t.trigger for t in machine.transitions]
        for i, t in enumerate(triggers):
            if triggers.index(t) != i:
                chk.add(mdoc, ("transitions", i, "trigger"), f"trigger {t!r} is used twice; each transition needs its own trigger name")
        for sname, st in machine.states.items():
            if st.action and st.action.protocol:
                for f in ("margin_restore", "hf_floor"):
                    v = getattr(st.action.protocol, f)
                    if isinstance(v, str) and v not in params:
                        chk.add(mdoc, ("states", sname, "action", "protocol", f), f"unknown parameter {v!r}{suggest(v, sorted(params))}")
            if st.action:
                for pname, val in st.action.overrides.items():
                    if pname not in params:
                        chk.add(mdoc, ("states", sname, "action", "overrides", pname), f"unknown parameter {pname!r}{suggest(pname, sorted(params))}", key=True)
                    if isinstance(val, str) and val not in params:
                        chk.add(mdoc, ("states", sname, "action", "overrides", pname), f"unknown parameter {val!r}{suggest(val, sorted(params))}")
                    elif not isinstance(val, str) and (err := domains.parameter_domain_error(pname, float(val))):
                        chk.add(mdoc, ("states", sname, "action", "overrides", pname), f"override: {err}")

    # Targets: instruments, venues of the right model, expressions over parameters.
    target_ids = [t.id for t in config.targets]
    raw_targets = doc.data.get("targets") if isinstance(doc.data, dict) and isinstance(doc.data.get("targets"), list) else []
    # Ids of targets that did not validate still exist (their own errors are reported).
    written_ids = {t.get("id") for t in raw_targets if isinstance(t, dict) and isinstance(t.get("id"), str)}

    def check_expr(p: tuple, value) -> None:
        if isinstance(value, (int, float)):
            return
        try:
            node = parse_expr(value)
        except ExprError as e:
            chk.expr_issue(doc, p, e)
            return
        for n in sorted(expr_names(node)):
            if n not in params:
                chk.add(doc, p, f"unknown parameter {n!r}{suggest(n, sorted(params))}")

    def check_inst(p: tuple, k: str, types: tuple[str, ...]) -> None:
        try:
            ik = parse_key(k)
        except InstrumentKeyError as e:
            chk.add(doc, p, str(e))
            return
        if ik.venue not in venues:
            chk.add(doc, p, f"instrument {k!r} is on venue {ik.venue!r}, which is not in this config's venues{suggest(ik.venue, list(venues))}")
        elif k not in instruments:
            chk.add(doc, p, f"venue {ik.venue!r} has no instrument {k!r}{suggest(k, sorted(instruments))}")
        if ik.position_type not in types:
            chk.add(doc, p, f"instrument {k!r} must be a {' or '.join(types)} position, not {ik.position_type}")

    def check_venue(p: tuple, name: str, models: tuple[str, ...]) -> None:
        if name not in venues:
            chk.add(doc, p, f"unknown venue {name!r}{suggest(name, list(venues))}; add it to `venues:` or fix the name")
        elif venues[name].model not in models:
            chk.add(doc, p, f"venue {name!r} is a {venues[name].model} venue; expected {' or '.join(models)}")

    def lst_venue_of(p: tuple, token: str, given: str | None) -> str | None:
        if given:
            return given
        found = [n for n, v in venues.items() if v.model == "lst" and v.lst and v.lst.token == token]
        if not found:
            have = sorted(v.lst.token for v in venues.values() if v.model == "lst" and v.lst)
            chk.add(doc, p, f"no configured staking venue mints {token!r}{suggest(token, have)}; "
                            f"LSTs available: {', '.join(have) or 'none (add etherfi or lido to venues)'}")
            return None
        return found[0]

    resolved = []
    for i, t in enumerate(config.targets):
        base = ("targets", i)
        if target_ids.index(t.id) != i:
            chk.add(doc, base + ("id",), f"target id {t.id!r} is used twice")
        if isinstance(t, (LeveragedStakeTarget, StakeTarget)):
            # `lst` picks the staking venue (and, leveraged, the collateral) unless given.
            lv = lst_venue_of(base + ("lst",), t.lst, t.lst_venue)
            upd = {"lst_venue": lv}
            if isinstance(t, LeveragedStakeTarget) and not t.collateral:
                upd["collateral"] = f"{t.lending_venue}:aToken:a{t.lst}"
            t = t.model_copy(update=upd)
        resolved.append(t)
        if isinstance(t, LeveragedStakeTarget):
            check_expr(base + ("allocation",), t.allocation)
            check_expr(base + ("target_ltv",), t.target_ltv)
            check_inst(base + ("collateral",) if config.targets[i].collateral else base + ("lst",), t.collateral, ("aToken",))
            check_inst(base + ("debt",), t.debt, ("debtToken",))
            if t.lst_venue:
                check_venue(base + ("lst_venue",), t.lst_venue, ("lst",))
            check_venue(base + ("flash_venue",), t.flash_venue, ("flash_loan",))
            check_venue(base + ("bundler",), t.bundler, ("bundler",))
            check_venue(base + ("swap_venue",), t.swap_venue, ("dex",))
        elif isinstance(t, StakeTarget):
            check_expr(base + ("allocation",), t.allocation)
            if t.lst_venue:
                check_venue(base + ("lst_venue",), t.lst_venue, ("lst",))
            check_venue(base + ("swap_venue",), t.swap_venue, ("dex",))
        elif isinstance(t, LendTarget):
            check_expr(base + ("allocation",), t.allocation)
            check_inst(base + ("supply",), t.supply, ("aToken",))
        elif isinstance(t, SpotTarget):
            check_expr(base + ("allocation",), t.allocation)
            check_expr(base + ("fee_bps",), t.fee_bps)
            check_inst(base + ("instrument",), t.instrument, ("BaseToken",))
            v = t.instrument.split(":")[0]
            if v in venues and venues[v].model != "cex_perp":
                chk.add(doc, base + ("instrument",), f"spot is held on a CEX; {v!r} is a {venues[v].model} venue")
        elif isinstance(t, SignalPerpTarget):
            check_inst(base + ("instrument",), t.instrument, ("Perp",))
            for fname in ("signal_threshold", "max_position_size", "take_profit_sd", "stop_loss_sd", "sd_floor_bps", "sd_cap_bps"):
                check_expr(base + ("signal", fname), getattr(t.signal, fname))
            if not (path.parent / t.signal.file).exists():
                chk.add(doc, base + ("signal", "file"), f"signal file {t.signal.file!r} not found next to the config "
                                                        f"(generate one with `python scripts/make_signals.py`)")
        elif isinstance(t, PerpHedgeTarget):
            check_expr(base + ("allocation",), t.allocation)
            check_expr(base + ("hedge_ratio",), t.hedge_ratio)
            for j, h in enumerate(t.hedges):
                if (h not in target_ids and h not in written_ids) or h == t.id:
                    chk.add(doc, base + ("hedges", j), f"unknown target {h!r}{suggest(h, [x for x in target_ids if x != t.id])}")
            for j, leg in enumerate(t.legs):
                check_inst(base + ("legs", j, "instrument"), leg.instrument, ("Perp",))
                check_expr(base + ("legs", j, "weight"), leg.weight)
        elif isinstance(t, WalletReserveTarget):
            check_inst(base + ("instrument",), t.instrument, ("BaseToken",))
            check_expr(base + ("amount",), t.amount)
            check_venue(base + ("swap_venue",), t.swap_venue, ("dex",))
        elif isinstance(t, TokenWeightsTarget):
            _check_basket(chk, doc, base, t, venues, instruments, params, check_expr, check_venue, len(config.targets))

    # Values of the targets with the parameters folded in (see trimtab.config.domains).
    def value_of(expr):
        if isinstance(expr, str) and expr.strip() in bad_params:
            return None  # reported at the parameter already
        try:
            return float(expr) if isinstance(expr, (int, float)) else float(compile_expr(expr)(params))
        except Exception:  # noqa: BLE001 - the expression's own error was reported above
            return None

    def locate(expr, p: tuple):
        name = expr.strip() if isinstance(expr, str) else None
        if name in config.parameters:
            return doc, ("parameters", name)
        if name in param_files:
            return param_files[name], ("parameters", name, "default")
        return doc, p

    domains.check_targets(config, doc, resolved, params, venues, instruments, value_of, locate, chk.add)

    # Config parameters must be declared by a rule file or used by the config/machine.
    used: set[str] = set()
    for t in config.targets:
        used |= _expression_names(t.model_dump())
    used |= _expression_names(raw_targets)  # targets with errors still use their parameters
    if machine is not None:
        for st in machine.states.values():
            if st.action:
                used |= {v for v in st.action.overrides.values() if isinstance(v, str)}
                if st.action.protocol:
                    used |= {v for v in (st.action.protocol.margin_restore, st.action.protocol.hf_floor) if isinstance(v, str)}
        for tr in machine.transitions:
            used |= {v for v in tr.overrides.values() if isinstance(v, str)}
    for pname in config.parameters:
        if pname not in declared and pname not in used:
            chk.add(doc, ("parameters", pname), f"unknown parameter {pname!r}{suggest(pname, sorted(declared | used))}: no rule, target or action uses it", key=True)

    if config.capital_at:
        check_inst(("capital_at",), config.capital_at, ("BaseToken", "Margin"))
    if config.flows and not (path.parent / config.flows).exists():
        chk.add(doc, ("flows",), f"flows file {config.flows!r} not found next to the config")
    if "wallet" not in venues and not any(i.path == "venues" for i in chk.issues):
        chk.add(doc, ("venues",), "every strategy needs the 'wallet' venue (it holds capital and pays gas)")

    if chk.issues:
        raise ConfigError(chk.issues)
    docs.update({f"venue:{k}": v for k, v in vdocs.items()})
    if mdoc is not None:
        docs["machine"] = mdoc
    for rf, rdoc in rule_files:
        docs[f"rules:{Path(rdoc.file).stem}"] = rdoc
    return Strategy(
        config=config.model_copy(update={"targets": resolved}),
        config_file=doc.file,
        root=root,
        machine=machine,
        machine_file=mdoc.file,
        rules=rules,
        params=params,
        param_docs=param_docs,
        venues=venues,
        instruments=instruments,
        docs=docs,
    )


def _check_basket(chk: _Checker, doc: YamlDoc, base: tuple, t: TokenWeightsTarget, venues: dict, instruments: dict,
                  params: dict[str, float], check_expr, check_venue, n_targets: int) -> None:
    """Checks of a ``token_weights`` target: every token a priced wallet token with a pair
    against ``quote`` on the swap venue, ETH (gas) and the quote in the basket, weights in (0, 1]
    summing to 1, and the basket the config's only target (it owns the wallet's tokens)."""
    check_venue(base + ("swap_venue",), t.swap_venue, ("dex",))
    for f in ("min_trade_usd", "max_trade_usd", "slippage_tolerance", "max_price_age_h", "max_price_divergence"):
        check_expr(base + (f,), getattr(t, f))
    for f, v in t.alerts.model_dump().items():
        if doc.has(base + ("alerts", f)) or isinstance(v, (int, float)):
            check_expr(base + ("alerts", f), v)
        else:  # a default naming a parameter: point at the target when it is undeclared
            check_expr(base + ("template",), v)
    if n_targets > 1:
        chk.add(doc, base + ("template",), "a token_weights basket owns the wallet's tokens: it must be the config's only target")
    wallet_assets = (venues["wallet"].assets or {}) if "wallet" in venues else {}
    pairs = (venues[t.swap_venue].pairs or {}) if t.swap_venue in venues else {}
    have_pairs = [frozenset(("ETH" if a == "WETH" else a) for a in name.split("/")) for name in pairs]
    tokens = [tw.token for tw in t.tokens]
    total, ok = 0.0, True
    for j, tw in enumerate(t.tokens):
        p = base + ("tokens", j, "token")
        key = f"wallet:BaseToken:{tw.token}"
        if tokens.index(tw.token) != j:
            chk.add(doc, p, f"token {tw.token!r} is listed twice")
        if key not in instruments:
            chk.add(doc, p, f"token {tw.token!r}: the wallet has no instrument {key!r}{suggest(key, sorted(k for k in instruments if k.startswith('wallet:BaseToken:')))}")
        elif tw.token not in wallet_assets:
            chk.add(doc, p, f"token {tw.token!r} has no price in venues/wallet.yaml assets")
        if tw.token != t.quote and t.swap_venue in venues and frozenset((tw.token, t.quote)) not in have_pairs:
            chk.add(doc, p, f"venue {t.swap_venue!r} has no {tw.token}/{t.quote} pair to trade {tw.token!r} against the quote "
                            f"(pairs: {', '.join(pairs) or 'none'})")
        check_expr(base + ("tokens", j, "weight"), tw.weight)
        try:
            w = float(compile_expr(tw.weight)(params)) if isinstance(tw.weight, str) else float(tw.weight)
        except Exception:  # noqa: BLE001 - an expression error was reported by check_expr
            ok = False
            continue
        if not 0 < w <= 1:
            chk.add(doc, base + ("tokens", j, "weight"), f"token {tw.token!r} weight {w:g} is outside (0, 1]")
        total += w
    if ok and abs(total - 1.0) > 1e-9:
        chk.add(doc, base + ("tokens",), f"basket weights sum to {total:.6g}, not 1")
    if t.quote not in tokens:
        chk.add(doc, base + ("quote",), f"the quote token {t.quote!r} (every trade is a swap against it) must be one of the basket's tokens")
    if "ETH" not in tokens:
        chk.add(doc, base + ("tokens",), "gas is paid in ETH from the wallet: a token_weights basket must hold ETH")
