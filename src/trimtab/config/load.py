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

from ..diagnostics import Diagnostic
from ..errors import ConfigError
from ..keys import InstrumentKeyError, parse_key
from ..metrics import Scope
from ..metrics import accepts as accepts_metric
from ..metrics import expand as expand_metrics
from ..rules.compile import CompiledExpr, compile_expr
from ..rules.nodes import ExprError
from ..rules.nodes import names as expr_names
from ..rules.parse import parse as parse_expr
from ..templates.registry import TargetSpec, template_for
from .models import MachineSpec, RuleFile, RuleSpec, StrategyConfig, VenueSpec
from .overrides import apply_overrides
from . import domains, enable
from .acknowledge import parse_accept
from .pydantic_errors import validate
from .wording import suggest
from .yamldoc import YamlDoc, load_yaml



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
    overrides: dict[str, Any] = field(default_factory=dict)  # ``--set`` NAME: value, as applied
    #: Units of the parameters: a rules file's ``unit:``, or for a parameter only the config
    #: declares, its ``{value, unit, description}`` entry's (missing: no unit declared).
    param_units: dict[str, str] = field(default_factory=dict)
    #: Defaults of the parameters only the config declares: the config file's values, before ``--set``.
    config_defaults: dict[str, float] = field(default_factory=dict)
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


def expression_names(value) -> set[str]:
    """Every name used by an expression anywhere in ``value`` (a target, raw or dumped; nested
    lists and mappings walked); strings that are not expressions (instrument keys, file names)
    count for nothing. Also read by ``trimtab params`` (who reads each parameter)."""
    if isinstance(value, str):
        try:
            return set(expr_names(parse_expr(value)))
        except ExprError:
            return set()
    if isinstance(value, dict):
        return set().union(*(expression_names(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(expression_names(v) for v in value)) if value else set()
    return set()


def find_root(config_path: Path) -> Path:
    """The nearest ancestor of ``config_path`` holding machines/, rules/ and venues/."""
    for parent in [config_path.resolve().parent, *config_path.resolve().parents]:
        if all((parent / d).is_dir() for d in ("machines", "rules", "venues")):
            return parent
    raise ConfigError(
        [Diagnostic(str(config_path), 1, 1, (), "no project root found: expected machines/, rules/ and venues/ folders in an ancestor of the config")]
    )


class _Checker:
    """Collects issues across files; each check appends and carries on."""

    def __init__(self) -> None:
        self.issues: list[Diagnostic] = []

    def add(self, doc: YamlDoc, path: tuple, message: str, key: bool = False, hint: str | None = None) -> None:
        self.issues.append(doc.issue(path, message, key=key, hint=hint))

    def expr_issue(self, doc: YamlDoc, path: tuple, err: ExprError) -> None:
        line, col = doc.locate(path)
        # Point at the offending character: quoted scalars start one column later.
        raw = doc.data
        for p in path:
            raw = raw[p]
        quoted = 1 if _is_quoted(doc, path) else 0
        self.issues.append(Diagnostic(doc.file, line, col + quoted + err.offset, tuple(path), f"bad expression: {err.message}"))


def _is_quoted(doc: YamlDoc, path: tuple) -> bool:
    line, col = doc.locate(path)
    try:
        text = Path(doc.file).read_text().splitlines()[line - 1]
        return text[col - 1] in "\"'"
    except (OSError, IndexError):
        return False


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
            raw = {k: (v.get("value") if isinstance(v, dict) else v) for k, v in raw.items()}
            values[name] = {k: float(v) for k, v in raw.items() if _finite_number(v)}
            continue
        try:
            values[name] = TypeAdapter(f.annotation).validate_python(raw)
        except ValidationError:
            pass
    return StrategyConfig.model_construct(**values)


def metric_members(config: StrategyConfig, venues: dict[str, VenueSpec]) -> dict[str, list[str]]:
    """The members of the metric families (:class:`trimtab.metrics.Family`) a strategy publishes,
    by member kind: ``venue``: its ``cex_perp`` venues (``margin_ratio.<venue>``); ``perp``: their perp
    instruments as ``<venue>.<symbol>`` (``liquidation_price.<venue>.<symbol>``); the other kinds
    from its templates' ``metric_keys`` (``token``: a basket's tokens, ``drift.<token>``)."""
    members: dict[str, list[str]] = {"venue": [n for n, v in venues.items() if v.model == "cex_perp"]}
    # ``perp``: every perp instrument of those venues, ``<venue>.<symbol>`` (liquidation_price.<venue>.<symbol>)
    members["perp"] = [f"{n}.{i.key.rsplit(':', 1)[-1]}" for n in members["venue"] for i in venues[n].instruments
                       if i.key.split(":")[1] == "Perp"]
    for t in config.targets:
        for kind, keys in template_for(t).metric_keys(t).items():
            members.setdefault(kind, []).extend(keys)
    return members


def load_strategy(path: str | Path, overrides: list[str] | None = None) -> Strategy:
    """Load and cross-check a strategy config and the machine, rules and venues it names.

    ``overrides``: ``--set NAME=VALUE`` strings (:func:`trimtab.config.overrides.apply_overrides`),
    written into the config's data before it is validated; recorded as ``Strategy.overrides``.

    Raises:
        ConfigError: every problem found in any of the files, each at ``file:line:col`` (at its
            ``--set`` flag for a problem with an overridden value).
    """
    path = Path(path)
    chk = _Checker()
    doc = load_yaml(path)
    # What the file itself says of its own parameters (``{value, unit, description}``), before --set.
    written = doc.data.get("parameters") if isinstance(doc.data, dict) and isinstance(doc.data.get("parameters"), dict) else {}
    if overrides:
        doc = apply_overrides(doc, overrides, find_root(path))
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
    param_units = {pname: pspec.unit for rf, _ in rule_files for pname, pspec in rf.parameters.items() if pspec.unit}
    config_defaults: dict[str, float] = {}
    for pname, entry in written.items():
        if pname in declared:
            continue
        value = entry.get("value") if isinstance(entry, dict) else entry
        if _finite_number(value):
            config_defaults[pname] = float(value)
        if isinstance(entry, dict):
            if isinstance(entry.get("description"), str):
                param_docs[pname] = entry["description"]
            if isinstance(entry.get("unit"), str) and entry["unit"]:
                param_units[pname] = entry["unit"]
    params.update(config.parameters)
    n_before = len(chk.issues)
    domains.check_parameters([(n, params[n], d) for n, d in param_files.items()], config, doc, chk.add)
    bad_params = {str(i.path[1]) for i in chk.issues[n_before:] if len(i.path) > 1 and i.path[0] == "parameters"}
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
    metric_names = set(expand_metrics(Scope.STRATEGY, metric_members(config, venues)))
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
            unknown = [n for n in sorted(expr_names(node)) if n not in metric_names and n not in params and not accepts_metric(n, Scope.STRATEGY)]
            for n in unknown:
                # A metric the registry declares but this config does not publish, or a parameter
                # of a rule file it does not load: name what to enable, not a look-alike.
                hint = enable.metric_hint(n, metric_members(config, venues)) or enable.rules_hint(root, config.rules, parameter=n)
                if hint:
                    chk.add(rdoc, rpath, f"name {n!r} in rule {rname!r} is not available to this config", hint=hint)
                else:
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
                    hint = enable.rules_hint(root, config.rules, rule=r)
                    if hint:
                        chk.add(mdoc, ("transitions", i, "when", j), f"rule {r!r} is in no rule file this config loads "
                                                                     f"(rules: {', '.join(config.rules)})", hint=hint)
                    else:
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
                hint = enable.rules_hint(root, config.rules, parameter=n)
                if hint:
                    chk.add(doc, p, f"parameter {n!r} is not declared by the rule files this config loads nor by its `parameters:`", hint=hint)
                else:
                    chk.add(doc, p, f"unknown parameter {n!r}{suggest(n, sorted(params))}")

    def check_inst(p: tuple, k: str, types: tuple[str, ...]) -> None:
        try:
            ik = parse_key(k)
        except InstrumentKeyError as e:
            chk.add(doc, p, str(e))
            return
        if ik.venue not in venues and ik.venue in config.venues and (root / "venues" / f"{ik.venue}.yaml").is_file():
            # Listed but its file did not load: its own errors are the fix, not another venue.
            chk.add(doc, p, f"instrument {k!r} is on venue {ik.venue!r}, whose file did not load; fix the errors of "
                            f"venues/{ik.venue}.yaml reported with this one")
        elif ik.venue not in venues:
            hint = enable.instrument_hint(root, k, venues) or enable.venue_hint(root, ik.venue, venues)
            chk.add(doc, p, f"instrument {k!r} is on venue {ik.venue!r}, which is not in this config's venues"
                            f"{'' if hint else suggest(ik.venue, list(venues))}", hint=hint)
        elif k not in instruments:
            hint = enable.instrument_hint(root, k, venues)
            chk.add(doc, p, f"venue {ik.venue!r} has no instrument {k!r}{'' if hint else suggest(k, sorted(instruments))}", hint=hint)
        if ik.position_type not in types:
            chk.add(doc, p, f"instrument {k!r} must be a {' or '.join(types)} position, not {ik.position_type}")

    def check_venue(p: tuple, name: str, models: tuple[str, ...]) -> None:
        if name not in venues and name in config.venues and (root / "venues" / f"{name}.yaml").is_file():
            chk.add(doc, p, f"venue {name!r}'s file did not load; fix the errors of venues/{name}.yaml reported with this one")
        elif name not in venues:
            hint = enable.venue_hint(root, name, venues)
            if hint:
                chk.add(doc, p, f"venue {name!r} is not in this config's venues", hint=hint)
            else:
                chk.add(doc, p, f"unknown venue {name!r}{suggest(name, list(venues))}; add it to `venues:` or fix the name")
        elif venues[name].model not in models:
            chk.add(doc, p, f"venue {name!r} is a {venues[name].model} venue; expected {' or '.join(models)}")

    def lst_venue_of(p: tuple, token: str, given: str | None) -> str | None:
        if given:
            return given
        found = [n for n, v in venues.items() if v.model == "lst" and v.lst and v.lst.token == token]
        if not found:
            have = sorted(v.lst.token for v in venues.values() if v.model == "lst" and v.lst)
            hint = enable.lst_hint(root, token, venues)
            if hint:  # the project has a venue minting it: enabling it is the fix, not a look-alike LST
                chk.add(doc, p, f"no configured staking venue mints {token!r}", hint=hint)
            else:
                chk.add(doc, p, f"no configured staking venue mints {token!r}{suggest(token, have)}; "
                                f"LSTs available: {', '.join(have) or 'none (add etherfi or lido to venues)'}")
            return None
        return found[0]

    refs = _Refs(chk, doc, venues, instruments, params, target_ids, written_ids, path.parent,
                 check_expr, check_inst, check_venue, lst_venue_of)
    resolved = []
    for i, t in enumerate(config.targets):
        base = ("targets", i)
        if target_ids.index(t.id) != i:
            chk.add(doc, base + ("id",), f"target id {t.id!r} is used twice")
        resolved.append(template_for(t).check(t, base, refs))

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
        used |= expression_names(t.model_dump())
    used |= expression_names(raw_targets)  # targets with errors still use their parameters
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
            hint = enable.rules_hint(root, config.rules, parameter=pname)
            if hint:
                chk.add(doc, ("parameters", pname), f"parameter {pname!r} is declared by no rule file this config loads", key=True, hint=hint)
            else:
                chk.add(doc, ("parameters", pname), f"unknown parameter {pname!r}{suggest(pname, sorted(declared | used))}: no rule, target or action uses it", key=True)

    if config.capital_at:
        check_inst(("capital_at",), config.capital_at, ("BaseToken", "Margin"))
    if config.flows and not (path.parent / config.flows).exists():
        chk.add(doc, ("flows",), f"flows file {config.flows!r} not found next to the config")
    elif config.flows:
        from ..data.flows import FlowError, read_flows  # only for a config that has a flows file

        try:
            read_flows(path.parent / config.flows)  # as the run reads it, so a bad row stops validate, not the run
        except FlowError as e:
            chk.add(doc, ("flows",), f"flows file {config.flows!r} does not load: {e}")
    if "wallet" not in venues and not any(i.path == ("venues",) for i in chk.issues):
        chk.add(doc, ("venues",), "every strategy needs the 'wallet' venue (it holds capital and pays gas)")
    elif "wallet" in venues:
        _check_wallet_keys(config, venues, instruments, vdocs["wallet"], chk)
    _check_signal_files(resolved, doc, path.parent, chk)

    for i, entry in enumerate(config.audit.accept):
        try:
            parse_accept(i, entry)
        except ValueError as e:
            chk.add(doc, ("audit", "accept", i), f"bad audit acknowledgement: {e}")

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
        overrides=dict(getattr(doc, "overrides", {})),
        param_units=param_units,
        config_defaults=config_defaults,
    )


def _check_wallet_keys(config: StrategyConfig, venues: dict, instruments: dict, wdoc: YamlDoc, chk: _Checker) -> None:
    """The wallet instruments a run of this config books to, listed in venues/wallet.yaml: ETH
    (gas), the share class token (the capital starts there unless ``capital_at`` says
    otherwise), ``Transit:USDT`` when a target holds CEX accounts (a withdrawal in flight) and
    ``Transit:ETH`` when a venue can ``unstake`` (an LST in the withdrawal queue). Without them a
    run stops at its first booking with a missing key, after ``validate`` said ok."""
    need = {"wallet:BaseToken:ETH": ("ETH", "gas is paid in ETH from the wallet")}
    if not config.capital_at:
        need[f"wallet:BaseToken:{config.share_class}"] = (config.share_class, f"the capital starts there (share class "
                                                                              f"{config.share_class}; or set capital_at)")
    if any(template_for(t).cex for t in config.targets):
        need["wallet:Transit:USDT"] = ("USDT", "USDT withdrawn from a CEX is in transit there")
    if any("unstake" in v.operations for v in venues.values()):
        need["wallet:Transit:ETH"] = ("ETH", "an LST queued for withdrawal is held there as ETH until it is paid")
    for key, (asset, why) in need.items():
        if key not in instruments:
            chk.add(wdoc, ("instruments",), f"the wallet has no instrument {key!r}, which this config needs: {why}; add "
                                            f"`- {{key: \"{key}\", asset: {asset}}}` to its instruments", key=True)


def _check_signal_files(targets: list, doc: YamlDoc, config_dir: Path, chk: _Checker) -> None:
    """Each target's signal file read as the run reads it (:func:`trimtab.data.signals.read_signals`):
    a malformed one is refused at the field naming it, not after the run has started."""
    for i, t in enumerate(targets):
        name = template_for(t).signal_file(t)
        if not name or not (config_dir / name).is_file():
            continue  # none, or missing (reported by the template's check)
        from ..data.signals import SignalError, read_signals  # numpy: only for a config that has a signal file

        try:
            read_signals(config_dir / name)
        except SignalError as e:
            where = ("targets", i, "signal", "file") if doc.has(("targets", i, "signal", "file")) else ("targets", i)
            chk.add(doc, where, f"signal file {name!r} does not load: {e}")


@dataclass
class _Refs:
    """What a template's ``check`` reads and reports through
    (:class:`trimtab.templates.base.RefContext`), bound to one config document."""

    chk: _Checker
    doc: YamlDoc
    venues: dict
    instruments: dict
    params: dict[str, float]
    target_ids: list[str]
    written_ids: set
    config_dir: Path
    check_expr: Any
    check_inst: Any
    check_venue: Any
    lst_venue_of: Any

    def add(self, path: tuple, message: str) -> None:
        self.chk.add(self.doc, path, message)

    def has(self, path: tuple) -> bool:
        return self.doc.has(path)

    def is_target(self, target_id: str) -> bool:
        return target_id in self.target_ids or target_id in self.written_ids

    def number(self, expr) -> float | None:
        """``expr`` folded with the parameters; None when it does not evaluate (reported by check_expr)."""
        try:
            return float(compile_expr(expr)(self.params)) if isinstance(expr, str) else float(expr)
        except Exception:  # noqa: BLE001 - an expression error was reported by check_expr
            return None

    @staticmethod
    def suggest(name: str, choices: list[str]) -> str:
        return suggest(name, choices)
