"""``trimtab run`` for the two configs of issue 6 (portfolio of strategies, drift basket), and their readable summaries.

:func:`dispatch_run` is called first thing by ``trimtab run``: a portfolio config (``sleeves:``)
runs through :func:`trimtab.portfolio.runner.run_portfolio`, a ``token_weights`` basket
backtest through :func:`trimtab.portfolio.drift.run_drift`; anything else (and a basket with
``--live``, which the live runner steps like any strategy) is left to the usual path. Same
conventions: the summary (or with ``--json`` exactly one JSON object) on stdout, progress and
errors on stderr, exit 1 for a runtime or data error, 2 for a config error.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import typer

from ..errors import ConfigError, TrimtabError
from .common import parse_time, stderr_console, stderr_is_terminal
from .preflight import amend_summary, audit_gate, check_flows_window
from .progress import tick_progress

if TYPE_CHECKING:   # rich (and cli/render.py, which needs it) only where a summary is drawn
    from rich.console import Console

    from ..data.background import BackgroundLoad

EXIT_RUNTIME, EXIT_CONFIG = 1, 2


def _exit(code: int, message: str | None = None):
    if message:
        sys.stderr.write(f"error: {' '.join(str(message).split())}\n")
    return typer.Exit(code)


def dispatch_run(config: Path, start=None, end=None, capital=None, out: Path = Path("runs"), as_json: bool = False,
                 flow: list[str] | None = None, live: bool = False, run_id: str | None = None, resume: bool = False,
                 overwrite: bool = False, allow_audit_errors: bool = False,
                 begin: Callable[[], None] = lambda: None, data_load: BackgroundLoad | None = None) -> Path | None:
    """Run ``config`` if it is a portfolio or a basket config and print its summary (a resumed
    portfolio says on stderr from which checkpoint tick it continues, at its first tick).

    The config is audited first (:func:`trimtab.cli.preflight.audit_gate`): an error finding
    refuses the run unless ``allow_audit_errors``. ``begin`` is called once loading and the audit
    are done, as the run starts (:func:`trimtab.cli.common.pause_collection`). ``data_load``: the
    bundle already loading (``trimtab run`` starts it before the config is read), else it is
    loaded here.

    Returns the run directory it wrote, or None (nothing done) for any other config. Raises ``typer.Exit`` on errors and
    ``typer.BadParameter`` for a flag the config kind cannot take.
    """
    from ..portfolio.config import is_basket_file, is_portfolio_file

    portfolio = is_portfolio_file(config)
    if not portfolio and (live or not is_basket_file(config)):
        return None
    from ..data.feed import load_market_data
    from ..engine.flows import FlowError, parse_flow
    from ..engine.journal import jsonable

    t0, t1 = parse_time(start, "start"), parse_time(end, "end")
    show = stderr_is_terminal()
    err = stderr_console() if show else None
    started = time.perf_counter()
    name = config.stem
    try:
        if portfolio:
            from ..portfolio.config import load_portfolio
            from ..portfolio.runner import run_portfolio

            if live:
                raise typer.BadParameter(f"{name} is a portfolio of strategies, which runs as a backtest (its sleeves' live runs "
                                         f"are separate)", param_hint="'--live'")
            if flow:
                raise typer.BadParameter(f"applies to a strategy; {name} is a portfolio, which moves capital between its sleeves "
                                         f"itself", param_hint="'--flow'")
            if overwrite:
                raise _exit(EXIT_RUNTIME, f"{name}: --overwrite replaces a finished backtest; a portfolio run is continued with "
                                          f"--resume, never replaced: pick another --run-id")
            p = None if resume else load_portfolio(config)
            data = data_load.result() if data_load is not None else load_market_data()
            audit_errors = audit_gate(config, data=data, start=t0, end=t1, allow=allow_audit_errors)
            begin()
            with tick_progress(err, enabled=show, label="portfolio") as progress:
                if resume and run_id:
                    from .live import announce_resume

                    progress = announce_resume(progress, Path(out) / run_id)  # where it continues from
                result = run_portfolio(p or config, start=t0, end=t1, capital=capital, out=out, run_id=run_id, data=data,
                                       progress=progress, resume=resume)
            summary = result.summary
        else:
            from ..config.load import load_strategy
            from ..portfolio.drift import run_drift

            if resume:
                raise typer.BadParameter(f"continues a live run or a portfolio run; {name} is a basket backtest (add --live "
                                         f"--replay to run it live)", param_hint="'--resume'")
            try:
                flows = [parse_flow(f) for f in (flow or [])]
            except FlowError as e:
                raise _exit(EXIT_CONFIG, str(e)) from None
            strategy = load_strategy(config)
            data = data_load.result() if data_load is not None else load_market_data()
            from ..portfolio.window import strategy_window

            check_flows_window(flows, *strategy_window(strategy, data, t0, t1))  # a window outside the data: one line
            audit_errors = audit_gate(config, strategy=strategy, data=data, start=t0, end=t1, allow=allow_audit_errors)
            begin()
            with tick_progress(err, enabled=show) as progress:
                result = run_drift(strategy, start=t0, end=t1, capital=capital, out=out, run_id=run_id, progress=progress,
                                   data=data, flows=flows, overwrite=overwrite)
            summary = result.summary
    except ConfigError as e:
        for issue in e.issues:
            sys.stderr.write(f"{issue}\n")
        n = len(e.issues)
        sys.stderr.write(f"{config}: {n} configuration issue{'s' if n != 1 else ''}; nothing was run\n")
        raise _exit(EXIT_CONFIG) from None
    except TrimtabError as e:
        raise _exit(EXIT_RUNTIME, str(e) if name in str(e) else f"{name}: {e}") from None
    except OSError as e:
        raise _exit(EXIT_RUNTIME, f"{name}: cannot write the run: {e}") from None
    except KeyboardInterrupt:
        raise _exit(130, "interrupted") from None
    amend_summary(summary, getattr(result, "run_dir", None), audit_errors)
    if as_json:
        sys.stdout.write(json.dumps(jsonable(summary), default=str) + "\n")
        sys.stdout.flush()
        return Path(result.run_dir)
    if not show:
        sys.stderr.write(f"{name}: {summary.get('ticks') or result.ticks:,} ticks in {time.perf_counter() - started:.1f} s\n")
    from rich.console import Console

    from .render import print_summary

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)  # a file or pipe: keep table rows whole
    if portfolio:
        print_portfolio(summary, console)
    else:
        print_summary(summary, console)
        print_drift(summary, console)
    return Path(result.run_dir)


# --------------------------------------------------------------------------- drift basket
def print_drift(s: dict, console: Console) -> None:
    """The basket section of a drift run: rebalances by status, trades, costs, alerts, final weights."""
    d = s.get("drift")
    if not d:
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from .render import num, pct

    console.print(Text(f"drift basket  ·  prices {d['price_source']}  ·  calendar {d['calendar']}", style="bold"))
    t = Table(box=box.SIMPLE_HEAD, title="rebalances", title_justify="left")
    for c in ("rebalances", "by status", "trades sent", "clamped", "skipped", "blocked", "traded USD", "gas USD", "execution USD", "cost USD"):
        t.add_column(c, justify="right")
    tr = d["trades"]
    t.add_row(str(d["rebalances"]), ", ".join(f"{k} {v}" for k, v in d["by_status"].items()) or "-", str(tr["sent"]), str(tr["clamped"]),
              str(tr["skipped"]), str(tr["blocked"]), f"{num(d['traded_usd']):,.2f}", f"{num(d['gas_usd']):,.2f}",
              f"{num(d['execution_usd']):,.2f}", f"{num(d['cost_usd']):,.2f}")
    console.print(t)
    a = Table(box=box.SIMPLE_HEAD, title="alerts (fired / suppressed by cooldown)", title_justify="left")
    a.add_column("kind")
    a.add_column("fired", justify="right")
    a.add_column("suppressed", justify="right")
    for k, v in d["alerts"].items():
        a.add_row(k, str(v["fired"]), str(v["suppressed"]), style="yellow" if v["fired"] else "dim")
    console.print(a)
    for al in d.get("recent_alerts") or []:
        console.print(Text(f"  {al['time']} {al['kind']}: {al['message']}", style="dim"), soft_wrap=True)
    w = Table(box=box.SIMPLE_HEAD, title="final basket", title_justify="left")
    for c in ("token", "weight", "target", "drift", "health"):
        w.add_column(c, justify="left" if c in ("token", "health") else "right")
    for tok, v in d["final"].items():
        w.add_row(tok, pct(v["weight"]), pct(v["target_weight"]), pct(v["drift"], signed=True), v["health"])
    console.print(w)
    console.print(Text("rebalance log and alerts: tables `rebalances` and `alerts` of journal.sqlite", style="dim"))


# --------------------------------------------------------------------------- portfolio
def print_portfolio(s: dict, console: Console) -> None:
    """The readable summary of a portfolio run: totals, per-sleeve results, correlations,
    reallocations, limit events and the reconciliation."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from .render import amount, num, pct, ratio

    sc = s["share_class"]
    e0, e1 = num(s["initial_equity"]), num(s["final_equity"])
    h = Text()
    h.append(s["portfolio"], style="bold")
    h.append(f"  ·  portfolio of {len(s['sleeves'])} strategies  ·  share class {sc}  ·  final state {s['final_state']}\n")
    h.append(f"window  {s['start']} → {s['end']}  ({s['ticks']:,} ticks)\n")
    h.append(f"equity  {amount(e0, sc)} → {amount(e1, sc)} {sc}  ")
    h.append(f"({amount(e1 - e0, sc, signed=True)}, {pct((e1 - e0) / e0, signed=True)})", style="green" if e1 >= e0 else "red")
    a = s["allocation"]
    h.append(f"\nallocation  {a['method']}" + (f" ({a['risk_model']})" if a["method"] == "risk_parity" else "")
             + f", period {a['period']}, threshold {a['threshold']:g}, lookback {a['lookback_days']}d")
    h.append(f"\nAPY {pct(s['apy'])}  ·  APR {pct(s['apr'])}  ·  max drawdown {pct(s['max_drawdown'])}  ·  Sharpe {ratio(s['sharpe'])}"
             f"  ·  cash {amount(s['final_cash'], sc)}")
    console.print(h, soft_wrap=True)
    t = Table(box=box.SIMPLE_HEAD, title="sleeves (weight: now / target now / configured)", title_justify="left")
    for c in ("sleeve", "strategy", "weight", "capital", "net flows", "final equity", "P&L", "APY", "Sharpe", "max DD", "plans (failed)",
              "recon err"):
        t.add_column(c, justify="left" if c in ("sleeve", "strategy") else "right", no_wrap=True)
    for k, v in s["sleeves"].items():
        t.add_row(k, v["strategy"], f"{pct(v['final_weight'], 1)} / {pct(v['final_target'], 1)} / {pct(v['target_weight'], 0)}",
                  amount(v["initial_capital"], sc), amount(v["net_flows"], sc, signed=True), amount(v["final_equity"], sc),
                  Text(amount(v["pnl"], sc, signed=True), style="green" if num(v["pnl"]) >= 0 else "red"), pct(v["apy"]),
                  ratio(v["sharpe"]), pct(v["max_drawdown"]), f"{v['plans']} ({v['failed_plans']})", amount(v["reconciliation_error"], sc))
    console.print(t)
    for k, v in s["sleeves"].items():
        d = v.get("drift")
        if d:
            al = ", ".join(f"{kind} {x['fired']}" for kind, x in d["alerts"].items())
            console.print(Text(f"  {k}: {d['rebalances']} rebalances ({', '.join(f'{a} {b}' for a, b in d['by_status'].items())}), "
                               f"{d['trades']['sent'] + d['trades']['clamped']} trades, cost {num(d['cost_usd']):,.2f} USD; alerts: {al}"),
                          soft_wrap=True)
    corr = s.get("correlation") or {}
    if corr:
        c = Table(box=box.SIMPLE_HEAD, title="correlation of daily returns", title_justify="left")
        c.add_column("")
        for k in corr:
            c.add_column(k, justify="right")
        for k, row in corr.items():
            c.add_row(k, *("n/a" if row[j] is None else f"{row[j]:+.2f}" for j in corr))
        console.print(c)
    r = s["reallocations"]
    console.print(Text(f"reallocations {r['count']}  ·  {', '.join(f'{k} {v}' for k, v in r['by_status'].items()) or 'none'}  ·  "
                       f"by trigger: {', '.join(f'{k} {v}' for k, v in r['by_trigger'].items()) or '-'}  ·  moved {amount(r['moved'], sc)} {sc}",
                       style="bold"), soft_wrap=True)
    if r["history"]:
        ht = Table(box=box.SIMPLE_HEAD, show_edge=False)
        for col in ("#", "start", "end", "trigger", "status", "withdrawn", "deposited", "targets"):
            ht.add_column(col, no_wrap=True)
        shown = r["history"] if len(r["history"]) <= 12 else r["history"][:6] + r["history"][-6:]
        for x in shown:
            ht.add_row(str(x["id"]), x["start_time"], x.get("end_time") or "-", x["trigger"], x["status"],
                       ", ".join(f"{k} {v:,.0f}" for k, v in x["paid"].items()) or "-",
                       ", ".join(f"{k} {v:,.0f}" for k, v in x["deposited"].items()) or "-",
                       " ".join(f"{k} {v:.0%}" for k, v in x["targets"].items()))
        console.print(ht)
        if len(r["history"]) > 12:
            console.print(Text(f"  ({len(r['history']) - 12} more in the `reallocations` table)", style="dim"))
    for ev in s.get("limit_events") or []:
        console.print(Text(f"limit: {ev['time']} {ev.get('sleeve', '')} {ev['event']} "
                           + ", ".join(f"{k} {v:.3g}" for k, v in ev.items() if isinstance(v, float)), style="yellow"), soft_wrap=True)
    rec = s["reconciliation"]
    ok = rec["ok"]
    rt = Text("reconciliation: ")
    rt.append("ok" if ok else "FAILED", style="green" if ok else "bold red")
    rt.append(f"  ·  portfolio P&L − Σ sleeve P&L {num(rec['pnl_minus_sleeve_pnl']):.2g}  ·  Σ attribution − P&L "
              f"{num(rec['attribution_minus_pnl']):.2g}  ·  max sleeve |attribution − equity change| {num(rec['max_sleeve_reconciliation_error']):.2g}"
              f"  ·  positions match fills: {'yes' if rec['positions_match_fills'] else 'NO'}")
    console.print(rt, soft_wrap=True)
    console.print(Text(f"run directory {s['run_dir']}  (portfolio.sqlite: decisions, reallocations, series, sleeve_series, checkpoints; "
                       f"sleeves/<id>/journal.sqlite per sleeve)", style="dim"), soft_wrap=True)
