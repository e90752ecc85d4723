"""``trimtab params CONFIG``: every parameter a strategy config can set, as a table or JSON.

One row per parameter, sorted by name: ``name``; ``value`` (the rules file's default, then the
config's ``parameters:``, then ``--set``); ``default`` (the rules file's; for a parameter only
the config declares, the config file's value before ``--set``); ``unit`` (the rules file's
``unit:``, or the config's ``{value, unit, description}`` entry's; for a parameter declaring
none, a guess from the name as the audit's parameter domains read it: ``_h`` hours, ``_usd``
USD, an LTV a fraction; empty when the name says none); ``description`` (the rules file's, or
the config entry's); ``source`` (the rules file declaring it, or ``config``);
and who reads it: ``rules`` (rules whose ``when`` names it), ``targets`` (target ids with an
expression naming it) and ``machine`` (states and transitions whose action settings name it).
A parameter the planner or executor reads by name (e.g. ``max_transfer_usd``) has none of these.

A second table lists every field of every target, by the dotted name ``--set`` takes
(``targets.<id>.<field>``, nested blocks and list items by index: ``targets.hedge.legs.0.weight``):
``value`` (as loaded: a number, an expression over parameters, a name), ``evaluated`` (an
expression's number with the parameters folded in), ``default`` (the template model's; none for
a required field), ``unit`` and ``description`` (declared with the field in its template module,
:func:`trimtab.templates.base.spec`; ``-``: no unit).

``--json`` prints one JSON object ``{"config", "name", "overrides": {NAME: value},
"parameters": [{name, value, default, unit, description, source, rules, targets, machine}],
"fields": [{name, target, template, value, evaluated, default, unit, description}]}``.
Exit codes as ``trimtab run``: 2 for a config error (every issue printed, ``--set`` ones at
their flag).
"""
# No `from __future__ import annotations`: typer reads these at every start-up (cli/main.py).

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..errors import ConfigError
from .common import EXIT_CONFIG

if TYPE_CHECKING:   # rich is imported where a table is drawn (cli/common.py: a `run` never draws one)
    from rich.console import Console

#: FALLBACK ONLY, for a parameter whose rules file declares no ``unit:`` (user files; every shipped
#: one declares it): units by parameter name (first match wins), the naming conventions the
#: audit's parameter domains read (trimtab.config.domains.PARAMETER_DOMAINS).
_UNITS: tuple[tuple[str, str], ...] = (
    (r"_h$", "hours"), (r"_days$", "days"), (r"_min$", "minutes"), (r"_usd$", "USD"), (r"_eth$", "ETH"),
    (r"_bps$", "bps"), (r"(^|_)ltv$", "fraction"), (r"(^|_)(allocation|weight)(_|$)", "fraction"),
    (r"drawdown|tolerance|divergence|fraction|drift|deviation|imbalance", "fraction"),
    (r"^hf_", "health factor"), (r"^margin_", "margin ratio"), (r"_multiple$", "multiple"),
)


def unit_of(name: str) -> str:
    """The unit guessed from a parameter's name (``rebalance_cooldown_h`` -> ``"hours"``), or ``""``;
    the fallback for a parameter without a declared ``unit:``."""
    return next((u for pattern, u in _UNITS if re.search(pattern, name)), "")


def _strings(value: Any) -> set[str]:
    """Every string value (not mapping key) anywhere in ``value``."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(set(), *(_strings(v) for v in value.values()))
    if isinstance(value, (list, tuple)):
        return set().union(set(), *(_strings(v) for v in value))
    return set()


def parameter_rows(strategy) -> list[dict[str, Any]]:
    """One JSON-ready dict per parameter of a loaded :class:`trimtab.config.load.Strategy`, by name
    (the keys of the module docstring; value and default as floats, or null)."""
    from ..config.load import expression_names
    from ..rules.nodes import names
    from ..rules.parse import parse

    defaults: dict[str, float] = {}
    sources: dict[str, str] = {}
    units: dict[str, str] = {}
    for key, doc in strategy.docs.items():
        if key.startswith("rules:") and isinstance(doc.data, dict) and isinstance(doc.data.get("parameters"), dict):
            for n, spec in doc.data["parameters"].items():
                if n not in defaults and isinstance(spec, dict) and isinstance(spec.get("default"), (int, float)):
                    defaults[n] = float(spec["default"])  # validated by load_strategy: a finite number
                    sources[n] = doc.file
                    if isinstance(spec.get("unit"), str) and spec["unit"]:
                        units[n] = spec["unit"]  # declared by the rules file (ParameterSpec.unit)
    readers: dict[str, dict[str, list[str]]] = {n: {"rules": [], "targets": [], "machine": []} for n in strategy.params}
    for rname, rule in strategy.rules.items():
        for n in sorted(set(names(parse(rule.spec.when))) & set(readers)):
            readers[n]["rules"].append(rname)
    raw_targets = strategy.docs["config"].data.get("targets") or []
    for t in raw_targets:
        if isinstance(t, dict):
            for n in sorted(expression_names({k: v for k, v in t.items() if k not in ("id", "template")}) & set(readers)):
                readers[n]["targets"].append(str(t.get("id")))
    machine = strategy.machine
    parts = [(f"state {s}", st.model_dump()) for s, st in machine.states.items()]
    parts += [(f"transition {t.trigger}", {"overrides": t.overrides}) for t in machine.transitions]
    for where, dump in parts:
        for n in sorted(_strings(dump) & set(readers)):
            readers[n]["machine"].append(where)
    rows = []
    for n in sorted(strategy.params):
        declared_units = getattr(strategy, "param_units", {})
        default = defaults.get(n, getattr(strategy, "config_defaults", {}).get(n))
        rows.append({
            "name": n, "value": strategy.params[n], "default": default, "unit": units.get(n) or declared_units.get(n) or unit_of(n),
            "description": strategy.param_docs.get(n, ""), "source": sources.get(n, "config"), **readers[n],
        })
    return rows


def _field_rows(model: Any, prefix: str, target: Any, evaluate) -> list[dict[str, Any]]:
    """Rows of ``model``'s fields under the dotted ``prefix``; nested blocks and list items of
    blocks are walked (their own fields are the rows)."""
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    from ..templates.base import Expr, field_unit

    rows: list[dict[str, Any]] = []
    for fname, info in type(model).model_fields.items():
        if fname in ("id", "template") and prefix.count(".") == 1:
            continue  # what names the target, not a setting (the id is in the row's name)
        value = getattr(model, fname)
        name = f"{prefix}.{fname}"
        if isinstance(value, BaseModel):
            rows += _field_rows(value, name, target, evaluate)
            continue
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, BaseModel) for v in value):
            for j, item in enumerate(value):
                rows += _field_rows(item, f"{name}.{j}", target, evaluate)
            continue
        default = None if info.default is PydanticUndefined else info.default
        rows.append({
            "name": name, "target": target.id, "template": target.template,
            "value": list(value) if isinstance(value, tuple) else value,
            "evaluated": evaluate(value) if info.annotation == Expr and isinstance(value, str) else None,
            "default": default, "unit": field_unit(info), "description": info.description or "",
        })
    return rows


def field_rows(strategy) -> list[dict[str, Any]]:
    """One JSON-ready dict per field of every target of a loaded strategy, in config order (the
    ``fields`` keys of the module docstring): what ``--set targets.<id>.<field>`` changes."""
    def evaluate(expr: str) -> float | None:
        try:
            return strategy.target_value(expr)
        except Exception:  # noqa: BLE001 - a field that only looks like an expression stays unevaluated
            return None

    rows: list[dict[str, Any]] = []
    for t in strategy.config.targets:
        rows += _field_rows(t, f"targets.{t.id}", t, evaluate)
    return rows


def _fmt(x: Any) -> str:
    return "" if x is None else f"{x:g}" if isinstance(x, float) else str(x)


def print_table(console: "Console", strategy, rows: list[dict[str, Any]]) -> None:
    """The rows as one rich table; a value that differs from its default is bold."""
    from rich import box
    from rich.table import Table

    t = Table(title=f"{strategy.name}: parameters", box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for col, wrap in (("name", False), ("value", False), ("default", False), ("unit", False), ("read by", True),
                      ("description", True)):
        t.add_column(col, no_wrap=not wrap, overflow="fold")
    for r in rows:
        changed = r["default"] is not None and r["value"] != r["default"]
        who = [*(f"rule {x}" for x in r["rules"]), *(f"target {x}" for x in r["targets"]), *r["machine"]]
        t.add_row(r["name"], f"[bold]{_fmt(r['value'])}[/]" if changed else _fmt(r["value"]), _fmt(r["default"]), r["unit"],
                  ", ".join(who) or "[dim]no rule, target or state[/]", r["description"])
    console.print(t)
    print_fields(console, strategy, field_rows(strategy))
    if strategy.overrides:
        console.print("overrides: " + ", ".join(f"{k}={v}" for k, v in strategy.overrides.items()), markup=False)


def print_fields(console: "Console", strategy, rows: list[dict[str, Any]]) -> None:
    """The target fields as one rich table; a value that differs from its default is bold."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"{strategy.name}: target fields (--set targets.<id>.<field>)", box=box.SIMPLE_HEAD, title_justify="left",
              pad_edge=False)
    for col, wrap in (("field", False), ("value", True), ("default", False), ("unit", False), ("description", True)):
        t.add_column(col, no_wrap=not wrap, overflow="fold")
    for r in rows:
        value = ", ".join(map(str, r["value"])) if isinstance(r["value"], list) else _fmt(r["value"])
        if r["evaluated"] is not None:
            value += f" = {_fmt(r['evaluated'])}"
        changed = r["default"] is not None and r["value"] != r["default"]
        value = escape(value)  # descriptions and values are text, not rich markup ("[floor, cap]")
        t.add_row(r["name"], f"[bold]{value}[/]" if changed else value, escape(_fmt(r["default"])), r["unit"], escape(r["description"]))
    console.print(t)


def params_command(
    config: Path = typer.Argument(..., metavar="CONFIG", help="Strategy config, e.g. configs/<strategy>.yaml"),
    set_: list[str] = typer.Option([], "--set", metavar="NAME=VALUE", help="Override as `trimtab run --set` (repeatable): the values shown are after it."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
) -> None:
    """Every parameter CONFIG can set: value, default, unit, description, and the rules, targets and machine states reading it."""
    from ..config.load import load_strategy
    from ..config.overrides import format_issue

    try:
        strategy = load_strategy(config, overrides=set_)
    except ConfigError as e:
        for issue in e.issues:
            sys.stderr.write(format_issue(issue) + "\n")
        n = len(e.issues)
        sys.stderr.write(f"{config}: {n} configuration issue{'s' if n != 1 else ''}\n")
        raise typer.Exit(EXIT_CONFIG) from None
    rows = parameter_rows(strategy)
    if as_json:
        out = {"config": strategy.config_file, "name": strategy.name, "overrides": strategy.overrides, "parameters": rows,
               "fields": field_rows(strategy)}
        sys.stdout.write(json.dumps(out, indent=1, default=str) + "\n")
        return
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)
    print_table(console, strategy, rows)
