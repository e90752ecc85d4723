"""The summary of a finished portfolio run (``kind: "portfolio"`` of :mod:`trimtab.summary`).

Built from the runner's hourly books once every sleeve has finished: per sleeve its result
and limits, the portfolio's performance, correlation and attribution, the reconciliation of
portfolio P&L against the sleeves' (both must agree to rounding: money only moves between a
sleeve and the portfolio's cash) and the reallocation history. Units: money in the share
class, rates and drawdowns as fractions, times ISO-8601 UTC.
"""
from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from ..engine.results import performance_of
from .allocation import correlation, daily_returns, sleeve_stats


def sleeve_summary(s, sm: dict, drift: dict | None, pf, last: int, t_final: dict[str, float], total: float) -> dict:
    """One sleeve's block: sleeve ``s`` (a :class:`trimtab.portfolio.runner.Sleeve`) with its
    finished engine's summary ``sm`` and its drift block, at the end of running portfolio ``pf``
    after ``last`` ticks; ``t_final`` are the final targets and ``total`` the final equity."""
    pnl = sm["final_equity"] - s.capital - sm["net_flows"]
    vol = sleeve_stats(daily_returns(pf.epoch, {s.id: pf.nav[s.id]}, last - 1))[s.id]["vol"]
    return {
        "config": s.spec.config, "strategy": s.strategy.name, "target_weight": s.spec.weight, "final_target": t_final[s.id],
        "final_weight": sm["final_equity"] / total if total else 0.0, "limits": {"min_weight": s.spec.min_weight,
        "max_weight": s.spec.max_weight, "max_drawdown": s.spec.max_drawdown}, "cut_for_drawdown": s.id in pf.cut,
        "initial_capital": s.capital, "final_equity": sm["final_equity"], "net_flows": sm["net_flows"], "pnl": pnl,
        "return_nav": float(pf.nav[s.id][last - 1]) - 1.0, "apy": sm["apy"], "sharpe": sm["sharpe"], "max_drawdown": sm["max_drawdown"],
        "daily_volatility": vol, "reconciliation_error": sm["reconciliation_error"], "positions_match_fills": sm["positions_match_fills"],
        "plans": sm["plans"], "failed_plans": sm["failed_plans"], "transitions": sm["transitions"], "final_state": sm["final_state"],
        "attribution": sm["attribution"], "run_dir": sm["run_dir"], "drift": drift,
    }


def portfolio_summary(pf, last: int, final_metrics: dict, t_final: dict[str, float], finished: list[tuple],
                      history: list[dict]) -> dict:
    """The summary of portfolio run ``pf`` (a :class:`trimtab.portfolio.runner.PortfolioRunner`)
    after ``last`` ticks (its hourly equity is ``pf.port_eq[:last]``).

    ``finished`` holds ``(sleeve, summary, drift)`` per sleeve in order, ``history`` every
    reallocation record by id (:meth:`trimtab.portfolio.store.PortfolioStore.history`).
    """
    total = pf.port_eq[last - 1]
    attribution: dict[str, float] = defaultdict(float)
    sleeves_out = {}
    pnl_sum, max_err, fills_ok = 0.0, 0.0, True
    for s, sm, drift in finished:
        entry = sleeve_summary(s, sm, drift, pf, last, t_final, total)
        pnl_sum += entry["pnl"]
        max_err = max(max_err, sm["reconciliation_error"])
        fills_ok = fills_ok and sm["positions_match_fills"]
        for k, v in sm["attribution"].items():
            attribution[k] += v
        sleeves_out[s.id] = entry
    final = float(total)
    perf = performance_of(pf.port_eq[:last], pf.epoch[:last])
    port_pnl = final - pf.capital
    rets = daily_returns(pf.epoch, pf.nav, last - 1)
    summary = {
        "kind": "portfolio", "name": pf.p.name, "portfolio": pf.p.name, "share_class": pf.cfg.share_class,
        "start": pf.iso[0], "end": pf.iso[last - 1],
        "ticks": last, "initial_equity": pf.capital, "final_equity": final,
        "net_flows": 0.0,   # the sleeves' payouts and deposits stay inside the portfolio (its cash)
        "pnl": port_pnl,
        "final_cash": pf.cash, "apy": perf["apy"], "apr": perf["apr"], "max_drawdown": perf["max_drawdown"], "sharpe": perf["sharpe"],
        "final_nav": final / pf.capital if pf.capital else float("nan"),
        "allocation": pf.cfg.allocation.model_dump(), "limits": pf.cfg.limits.model_dump(), "parameters": pf.params,
        "final_state": pf.machine.state, "final_metrics": final_metrics,
        "sleeves": sleeves_out,
        "correlation": correlation(rets) if len(rets) > 2 else {},
        "attribution": dict(attribution),
        "reconciliation": {
            "pnl_minus_sleeve_pnl": port_pnl - pnl_sum,
            "attribution_minus_pnl": sum(attribution.values()) - port_pnl,
            "max_sleeve_reconciliation_error": max_err,
            "positions_match_fills": fills_ok,
            "cash_check": pf.cash - (sum(-sm["net_flows"] for sm in sleeves_out.values())),
        },
        "reallocations": {
            "count": len(history), "by_status": dict(sorted(pf.reallocs.by_status.items())),
            "by_trigger": dict(sorted(_count(r["trigger"] for r in history).items())),
            "moved": sum(r.get("moved", 0.0) or 0.0 for r in history), "history": history,
        },
        "limit_events": pf.limit_events,
        "transitions": pf.transitions,
        "run_dir": str(pf.run_dir),
    }
    rec = summary["reconciliation"]
    # Shared keys of every run kind (trimtab.summary): the largest mismatch, and the fills check.
    summary["reconciliation_error"] = max(abs(rec["pnl_minus_sleeve_pnl"]), abs(rec["attribution_minus_pnl"]), max_err)
    summary["positions_match_fills"] = fills_ok
    rec["ok"] = bool(abs(rec["pnl_minus_sleeve_pnl"]) <= 1e-9 * pf.capital
                     and abs(rec["attribution_minus_pnl"]) <= 1e-6 * pf.capital
                     and fills_ok)
    return summary


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for x in items:
        out[x] += 1
    return out


def portfolio_status(run_dir: str | Path) -> dict:
    """``trimtab status`` of a portfolio run (``run_dir/portfolio.sqlite``): the portfolio's
    state, equity and cash at its last tick, its last checkpoint, whether a process owns it
    (its lock, :func:`trimtab.runs.holder`), the reallocation in flight, and each sleeve's
    status (:func:`trimtab.live.control.status` of ``run_dir/sleeves/<id>``). Money in the
    share class, times ISO-8601 UTC.

    Raises:
        RunError: no portfolio journal there, or one whose records cannot be read;
        sqlite3.DatabaseError: a damaged file.
    """
    from ..live.control import status as sleeve_status
    from ..runs import RunError, holder

    run_dir = Path(run_dir)
    path = run_dir / "portfolio.sqlite"
    if not path.is_file():
        raise RunError(f"no portfolio run at {run_dir} (no portfolio.sqlite)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        meta = {}
        for k, v in db.execute("SELECT key, value FROM meta"):
            try:
                meta[k] = json.loads(v)
            except (TypeError, ValueError, RecursionError):
                raise RunError(f"{path}: its meta record {k!r} is not readable JSON") from None
        last = db.execute("SELECT tick, time, equity, cash, state FROM series ORDER BY tick DESC LIMIT 1").fetchone()
        cp = db.execute("SELECT max(tick) FROM checkpoints").fetchone()[0]
        cp_time = db.execute("SELECT time FROM series WHERE tick = ?", (cp,)).fetchone() if cp is not None else None
        open_realloc = db.execute("SELECT realloc_id, start_time, trigger FROM reallocations WHERE end_tick IS NULL "
                                  "ORDER BY realloc_id DESC LIMIT 1").fetchone()
    finally:
        db.close()
    owner = holder(run_dir)
    sleeves = {}
    root = run_dir / "sleeves"
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if (d / "journal.sqlite").is_file():
            st = sleeve_status(d)
            sleeves[d.name] = {k: st[k] for k in ("run_dir", "strategy", "state", "time", "equity", "positions", "open_steps")}
    w = meta.get("window") if isinstance(meta.get("window"), dict) else {}
    return {
        "kind": "portfolio", "run_dir": str(run_dir), "strategy": (meta.get("portfolio") or {}).get("name"),
        "config": (meta.get("portfolio") or {}).get("config"),
        "share_class": w.get("share_class"), "running": owner is not None, "pid": owner.get("pid") if owner else None,
        "since": owner.get("started") if owner else None, "mode": "backtest", "feed": None, "reconciliation": None,
        "finished": "summary" in meta, "stopped": None,
        "tick": last[0] if last else None, "time": last[1] if last else None, "equity": last[2] if last else None,
        "cash": last[3] if last else None, "state": last[4] if last else None,
        "checkpoint_tick": cp, "checkpoint_time": cp_time[0] if cp_time else None,
        "reallocation_in_flight": {"id": open_realloc[0], "start_time": open_realloc[1], "trigger": open_realloc[2]}
        if open_realloc else None,
        "sleeves": sleeves,
    }
