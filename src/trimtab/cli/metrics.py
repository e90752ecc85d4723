"""``trimtab metrics``: the metric registry (:mod:`trimtab.metrics`) as a table or JSON.

One row per declaration, in registry order: name (a family as ``margin_ratio.<venue>``), unit,
domain (the range the audit reasons over), the stage that computes it and the description;
one table per scope (strategy, portfolio). ``--json`` prints one JSON object
``{"metrics": [{name, family, scope, unit, domain: {lo, hi, lo_open, hi_open, integer, reason,
text}, kind, stage, description}, ...]}``; ``inf`` is written as the string ``"inf"``.
"""
# No `from __future__ import annotations`: typer reads these at every start-up (cli/main.py).

import json
import math
import sys
from typing import TYPE_CHECKING, Any, Optional

import typer

from ..metrics import REGISTRY, Family, Metric, Scope

if TYPE_CHECKING:   # rich is imported where a table is drawn (cli/common.py: a `run` never draws one)
    from rich.console import Console


def _num(x: float) -> float | str:
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def record(d: Metric | Family) -> dict[str, Any]:
    """One declaration as a JSON-ready dict (the ``--json`` row)."""
    dom = d.domain
    return {
        "name": d.name, "family": isinstance(d, Family), "scope": d.scope.value, "unit": d.unit,
        "domain": {"lo": _num(dom.lo), "hi": _num(dom.hi), "lo_open": dom.lo_open, "hi_open": dom.hi_open,
                   "integer": dom.integer, "reason": dom.reason, "text": dom.text()},
        "kind": d.kind, "stage": d.stage.value, "description": d.description,
    }


def print_tables(console: "Console", scope: Scope | None = None) -> None:
    """The registry as one rich table per scope (only ``scope`` if given)."""
    from rich import box
    from rich.table import Table

    for sc in Scope:
        if scope is not None and sc is not scope:
            continue
        t = Table(title=f"{sc.value} metrics", box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
        t.add_column("name", no_wrap=True)
        t.add_column("unit", no_wrap=True)
        t.add_column("domain", no_wrap=True)
        t.add_column("stage", no_wrap=True)
        t.add_column("description", overflow="fold")
        for d in REGISTRY:
            if d.scope is sc:
                t.add_row(d.name, d.unit, d.domain.text(), d.stage.value, d.description)
        console.print(t)


def metrics_command(
    scope: Optional[Scope] = typer.Option(None, "--scope", help="Only the metrics of this scope: strategy or portfolio."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
) -> None:
    """Every metric rules can read: name, unit, domain the audit reasons over, the stage computing it, description."""
    if as_json:
        rows = [record(d) for d in REGISTRY if scope is None or d.scope is scope]
        sys.stdout.write(json.dumps({"metrics": rows}, indent=1) + "\n")
        return
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)
    print_tables(console, scope)
