"""Looking at configs and runs: ``trimtab diagram``, ``trimtab explain`` and ``trimtab schema``."""
# No `from __future__ import annotations`: typer reads these at every start-up (cli/main.py).

import json
import sqlite3
import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError
from .common import EXIT_CONFIG, fail, json_default, out_console, parse_time, print_issues

# Command modules import the engine inside the command, so `trimtab --help` and a usage error
# stay fast (no pandas/numpy load); no import here hides a cycle (tests/unit/test_layering.py).


def diagram(
    config: Path = typer.Argument(..., metavar="CONFIG", help="Strategy, basket or portfolio config whose machine to draw."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Image file, .svg or .png (default: <config name>.svg here)."),
    expressions: bool = typer.Option(False, "--expressions", "-e", help="Label transitions with guard expressions (parameters folded in) instead of rule names."),
    no_image: bool = typer.Option(False, "--no-image", help="Only print the Mermaid text."),
) -> None:
    """Print CONFIG's state machine as Mermaid text and write it as an SVG/PNG image (laid out by Graphviz `dot`)."""
    from ..config.load import load_strategy
    from ..diagram import DiagramError, draw, mermaid
    from ..portfolio.config import is_portfolio_file, load_portfolio

    if no_image and out is not None:
        raise typer.BadParameter("names the image file; --no-image writes none", param_hint="'--out'")
    try:
        # A portfolio's own machine (machines/portfolio.yaml); its sleeves are strategy configs.
        s = load_portfolio(config) if config.is_file() and is_portfolio_file(config) else load_strategy(config)
    except ConfigError as e:
        print_issues(e, sys.stderr)
        raise typer.Exit(EXIT_CONFIG) from None
    target = out or Path(f"{config.stem}.svg")
    if not no_image and target.suffix.lower() not in (".svg", ".png"):
        raise typer.BadParameter(f"must end in .svg or .png, got {target.name!r}", param_hint="'--out'")
    sys.stdout.write(mermaid(s, expressions=expressions))
    sys.stdout.flush()
    if not no_image:
        try:
            path = draw(s, target, expressions=expressions)
        except DiagramError as e:
            raise fail(str(e)) from None
        except OSError as e:
            raise fail(f"cannot write {target}: {e}") from None
        sys.stderr.write(f"wrote {path}\n")


def explain(
    run: str = typer.Argument(..., metavar="RUN", help="Run directory (any run kind; a portfolio's sleeve: RUN/sleeves/ID), its journal.sqlite or portfolio.sqlite, or a run id under --runs."),
    at: Optional[str] = typer.Option(None, "--at", help="Time to explain (UTC), e.g. 2024-08-05T03:00Z: the last tick at or before it."),
    transitions: bool = typer.Option(False, "--transitions", help="List every transition of the run (the default without --at)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs", help="Folder holding run directories (for a run id)."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
) -> None:
    """Explain a run: the decision in force at a time, or every transition.

    With --at: the state in force, every rule with its observed values and thresholds, the
    transitions tried, and the plan in force with its steps and expected costs. With
    --transitions (the default without --at): every transition with the comparisons that fired it.
    """
    from ..explain import RunError, explain_at, find_journal, list_transitions, print_explain, print_transitions

    t = parse_time(at, "at")
    try:
        journal = find_journal(run, runs_dir)
        result: dict = {}
        if t is not None:
            result["at"] = explain_at(journal, t)
        if transitions or t is None:
            result["transitions"] = list_transitions(journal)
    except RunError as e:
        raise fail(str(e)) from None
    except sqlite3.DatabaseError as e:
        raise fail(f"{run}: not a readable run journal ({e})") from None
    if as_json:
        from ..engine.journal import jsonable

        sys.stdout.write(json.dumps(jsonable(result), default=json_default) + "\n")
        return
    con = out_console()
    if "at" in result:
        print_explain(result["at"], con)
    if "transitions" in result:
        print_transitions(result["transitions"], con)


def schema(
    kind: Optional[str] = typer.Argument(None, metavar="[KIND]", help="config, machine, rules, venue, ruletest or summary (default: all)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write <kind>.schema.json files into this folder instead of printing."),
) -> None:
    """JSON Schemas of trimtab's YAML and of the run summary, generated from the models (for editors and CI)."""
    from ..schema import KINDS, render, schema as get_schema, write_schemas

    from .preflight import check_out_dir

    if kind is not None and kind not in KINDS:
        raise typer.BadParameter(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}", param_hint="'KIND'")
    check_out_dir(out)
    if out is not None:
        try:
            if kind:
                out.mkdir(parents=True, exist_ok=True)
                (out / f"{kind}.schema.json").write_text(render(kind))
                sys.stderr.write(f"wrote {out / f'{kind}.schema.json'}\n")
            else:
                for p in write_schemas(out):
                    sys.stderr.write(f"wrote {p}\n")
        except OSError as e:
            raise fail(f"cannot write the schemas into {out}: {e}") from None
        return
    if kind:
        sys.stdout.write(render(kind))
    else:
        sys.stdout.write(json.dumps({k: get_schema(k) for k in KINDS}, indent=2) + "\n")
