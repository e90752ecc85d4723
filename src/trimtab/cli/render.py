"""Human-readable rendering of a run summary (the dict ``run_backtest`` returns and writes to
``summary.json``), shared by ``trimtab run`` and any later command that shows a run.

Accepts the summary as returned by the engine or as read back from ``summary.json`` (where
inf/nan are the strings ``"inf"``, ``"-inf"``, ``"nan"``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

#: What each file of a run directory holds.
RUN_FILES = {
    "journal.sqlite": "decisions, plans, instructions, fills, ledger, per-tick metrics",
    "summary.json": "this summary",
    "equity.csv": "hourly equity, NAV, health factor, LTV, margin ratios, delta",
    "run.lock": "the run's lock, held while a process runs it (trimtab status)",
    "owner.json": "which process owns (or last owned) the run",
    "checkpoint.json": "tick and digest of the last committed checkpoint (checked on --resume)",
}

#: Readable names of the attribution categories (unknown ones are shown as they come).
CATEGORY_NAMES = {
    "supply_yield": "supply yield",
    "borrow_cost": "borrow cost",
    "staking_yield": "staking yield",
    "rewards": "rewards",
    "funding": "funding",
    "price_delta": "price / delta",
    "basis": "basis",
    "trading_fees": "trading fees",
    "gas": "gas",
    "liquidation": "liquidation",
}


# --------------------------------------------------------------------------- formatting
def num(x: Any) -> float:
    """A float from an engine value or its JSON form (``"inf"``, ``"nan"``, None -> nan)."""
    if x is None:
        return math.nan
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return math.nan
    return float(x)


def _special(v: float) -> str | None:
    """How NaN and infinities read in tables; None for an ordinary number."""
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return None


def _unsigned_zero(v: float, digits: int) -> float:
    """``v``, or 0.0 when it rounds to zero at ``digits`` decimals: a tiny negative such as
    -1e-12 would otherwise print as "-0.00"."""
    return 0.0 if round(v, digits) == 0 else v


def pct(x: Any, digits: int = 2, signed: bool = False) -> str:
    """A fraction as a percentage with ``digits`` decimals and thousands separators
    (0.0693 -> "6.93%"); ``signed`` adds "+" to positives. NaN/inf read "n/a", "∞"."""
    v = num(x)
    if _special(v):
        return _special(v)
    v = _unsigned_zero(v * 100, digits)
    return f"{v:{'+' if signed and v != 0 else ''},.{digits}f}%"


def decimals(share_class: str) -> int:
    """Decimals to show amounts with: cents for stablecoins, more for ETH/BTC."""
    return 2 if share_class.upper() in {"USD", "USDT", "USDC", "DAI"} else 6


def amount(x: Any, share_class: str, signed: bool = False) -> str:
    """Money in ``share_class`` in fixed point, never scientific notation: cents for stablecoins,
    6 decimals for ETH/BTC (:func:`decimals`), thousands separators ("+1,243.69")."""
    v = num(x)
    if _special(v):
        return _special(v)
    v = _unsigned_zero(v, decimals(share_class))
    return f"{v:{'+' if signed and v != 0 else ''},.{decimals(share_class)}f}"


def ratio(x: Any, digits: int = 2) -> str:
    v = num(x)
    if _special(v):
        return _special(v)
    return f"{v:.{digits}f}"


def size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _signed_style(v: float) -> str:
    return "green" if v > 0 else "red" if v < 0 else "dim"


# --------------------------------------------------------------------------- sections
def header(s: dict) -> RenderableType:
    sc = s.get("share_class", "")
    e0, e1 = num(s.get("initial_equity")), num(s.get("final_equity"))
    change = e1 - e0
    t = Text()
    t.append(f"{s.get('mode', '?')}", style="bold")
    t.append(f"  ·  share class {sc}")
    if s.get("final_state"):
        t.append(f"  ·  final state {s['final_state']}")
    t.append("\n")
    t.append(f"window  {s.get('start', '?')} → {s.get('end', '?')}")
    days = _days(s.get("start"), s.get("end"))
    if days is not None:
        t.append(f"  ({days:,.1f} days)")
    t.append("\n")
    t.append(f"equity  {amount(e0, sc)} → {amount(e1, sc)} {sc}  ")
    t.append(f"({amount(change, sc, signed=True)}, {pct(change / e0 if e0 else math.nan, signed=True)})",
             style=_signed_style(change))
    return t


def _days(a: Any, b: Any) -> float | None:
    try:
        from ..timeutil import utc  # ISO times: read without pandas

        return (utc(b) - utc(a)).total_seconds() / 86400
    except Exception:  # noqa: BLE001 - the header just omits the length
        return None


def performance(s: dict) -> Table:
    t = Table(title="performance", box=box.SIMPLE_HEAD, title_justify="left", show_header=True)
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("APY", pct(s.get("apy")))
    t.add_row("APR", pct(s.get("apr")))
    t.add_row("max drawdown", pct(s.get("max_drawdown")))
    t.add_row("Sharpe (daily, ×√365)", ratio(s.get("sharpe")))
    return t


def attribution(s: dict) -> Table:
    """P&L by category, largest first, then the lines that add up to the equity change:
    total P&L + net capital flows (deposits − withdrawals paid, the summary's ``net_flows``)
    = final − initial equity, and the difference (rounding only: the engine reconciles each tick)."""
    sc = s.get("share_class", "")
    attr = {k: num(v) for k, v in (s.get("attribution") or {}).items()}
    total = math.fsum(v for v in attr.values() if not math.isnan(v))
    flows = num(s.get("net_flows"))
    flows = 0.0 if math.isnan(flows) else flows
    change = num(s.get("final_equity")) - num(s.get("initial_equity"))
    t = Table(title=f"P&L attribution ({sc})", box=box.SIMPLE_HEAD, title_justify="left",
              caption="share = amount / total P&L; total P&L + net flows = equity change", caption_justify="left",
              show_footer=False)
    t.add_column("category")
    t.add_column("amount", justify="right")
    t.add_column("share", justify="right")
    for k, v in sorted(attr.items(), key=lambda kv: (-abs(kv[1]) if not math.isnan(kv[1]) else 0.0, kv[0])):
        share = pct(v / total, 1) if abs(total) > 1e-12 and v != 0 else "—"
        style = "dim" if v == 0 else None
        t.add_row(CATEGORY_NAMES.get(k, k), Text(amount(v, sc, signed=True), style=style or _signed_style(v)),
                  share, style=style)
    t.add_section()
    t.add_row(Text("total P&L", style="bold"), Text(amount(total, sc, signed=True), style="bold"), "100.0%" if abs(total) > 1e-12 else "—")
    if flows != 0 or s.get("flows"):
        t.add_row("net flows", amount(flows, sc, signed=True), "", style="cyan")
    t.add_row("equity change", amount(change, sc, signed=True), "")
    t.add_row(Text("difference", style="dim"), Text(amount(total + flows - change, sc, signed=True), style="dim"), "")
    return t


def final_aave(s: dict) -> dict[str, dict]:
    """The summary's ``final_aave`` (Aave positions in underlying units), or, for a summary
    written without it, the same computed from the run's journal and the data
    (:func:`trimtab.summary.aave_balances`); {} when neither is available."""
    if isinstance(s.get("final_aave"), dict):
        return s["final_aave"]
    import sqlite3

    from ..summary import aave_balances, is_scaled

    pos, d = s.get("final_positions") or {}, s.get("run_dir")
    if not d or not any(is_scaled(k) for k in pos):
        return {}

    try:
        return aave_balances(pos, Path(d) / "journal.sqlite", s.get("end") or "")
    except (sqlite3.DatabaseError, OSError):
        return {}  # an unreadable journal: the positions are shown in book units, labelled so


def positions(s: dict) -> RenderableType:
    """Final positions (the summary's ``final_positions``) in token units: Aave balances in
    underlying units (scaled x the reserve index at the end), with the scaled balance and index."""
    pos = s.get("final_positions") or {}
    if not pos:
        return Text("")
    aave = final_aave(s)
    t = Table(title="final positions (token units; perps signed)", box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("position", "amount", "scaled", "index"):
        t.add_column(col, justify="left" if col == "position" else "right", no_wrap=True)
    for k, v in pos.items():
        a = aave.get(k)
        if a and a.get("underlying") is not None:
            t.add_row(k, f"{num(a['underlying']):,.6f} {a['asset']}", f"{num(a['scaled']):,.6f}", f"{num(a['index']):.6f}")
        elif a:  # index unknown: the book figure, marked as scaled
            t.add_row(k, "n/a", f"{num(v):,.6f}", "n/a")
        else:
            t.add_row(k, f"{num(v):,.6f}", "", "")
    if aave:
        t.caption = "Aave: amount = scaled x reserve index at the end (the book keeps the scaled balance)"
        t.caption_justify = "left"
    return t


def counts(s: dict) -> RenderableType:
    t = Text()
    parts = [
        ("transitions", s.get("transitions")),
        ("plans", s.get("plans")),
        ("failed plans", s.get("failed_plans")),
        ("instructions", s.get("instructions")),
        ("liquidations", s.get("liquidations")),
    ]
    for i, (name, v) in enumerate(parts):
        if i:
            t.append("  ·  ")
        style = "bold red" if name in ("failed plans", "liquidations") and v else None
        t.append(f"{name} {v if v is not None else 'n/a'}", style=style)
    if s.get("last_plan_failure"):
        t.append(f"\nlast plan failure: {s['last_plan_failure']}", style="yellow")
    return t


def _ranges(gaps: Iterable[dict], limit: int = 3) -> str:
    gaps = list(gaps)
    shown = [f"{g['start'][:10]}→{g['end'][:10]}" for g in gaps[:limit]]
    more = f", +{len(gaps) - limit} more" if len(gaps) > limit else ""
    return ", ".join(shown) + more


def data_notes(s: dict) -> RenderableType:
    """Stale marks, funding proxies/missing settlements and data gaps, one line each."""
    lines: list[Text] = []
    stale = s.get("stale_marks_hours") or {}
    if stale:
        lines.append(Text("stale marks (h marked at the reference price): "
                          + ", ".join(f"{k} {v}h" for k, v in sorted(stale.items()))))
    proxies = s.get("funding_proxies") or {}
    if proxies:
        lines.append(Text("funding settled at the other venues' mean rate: "
                          + ", ".join(f"{k} ×{v}" for k, v in sorted(proxies.items()))))
    missing = s.get("funding_missing") or {}
    if missing:
        lines.append(Text("funding settlements with no rate at all (skipped): "
                          + ", ".join(f"{k} ×{v}" for k, v in sorted(missing.items())), style="yellow"))
    for g in s.get("data_gaps") or []:
        gaps = g.get("gaps") or []
        if g.get("missing"):
            lines.append(Text(f"{g.get('series')}: {g['missing']}"))
        if gaps:
            hours = sum(num(x.get("hours")) for x in gaps)
            lines.append(Text(f"gaps in {g.get('series')}: {len(gaps)} ({hours:,.0f}h) {_ranges(gaps)}"))
        dups = g.get("duplicates") or []
        if dups:
            lines.append(Text(f"duplicate timestamps in {g.get('series')}: {len(dups)} (the later row used), first "
                              f"{dups[0].get('time')}", style="yellow"))
    for name, q in sorted((s.get("quarantined") or {}).items()):
        reasons = ", ".join(f"{r} ×{n}" for r, n in sorted((q.get("reasons") or {}).items()))
        lines.append(Text(f"quarantined {name}: {q.get('ticks')}h ({reasons}) {q.get('first')} → {q.get('last')}; "
                          "not traded, valued at the last good or cross-venue price", style="yellow"))
    if not lines:
        return Text("data: no stale marks, funding proxies, gaps or quarantined data in the window", style="dim")
    out = Text("data notes\n", style="bold")
    out.append(Text("\n").join(Text("  ") + ln for ln in lines))
    return out


def reconciliation(s: dict) -> RenderableType:
    sc = s.get("share_class", "")
    err = num(s.get("reconciliation_error"))
    cap = num(s.get("initial_equity"))
    t = Text("reconciliation: max |attribution − equity change| ")
    rel = err / cap if cap else math.nan
    ok = not math.isnan(rel) and rel <= 1e-9
    t.append(f"{err:.3g} {sc}", style="green" if ok else "bold red")
    t.append(f" ({rel:.2g} of capital)")
    match = s.get("positions_match_fills")
    if match is not None:
        t.append("  ·  positions match fills: ")
        t.append("yes" if match else "NO", style="green" if match else "bold red")
    return t


def run_dir(s: dict) -> RenderableType:
    d = s.get("run_dir")
    if not d:
        return Text("")
    p = Path(d)
    t = Text("run directory ", style="bold")
    t.append(str(p))
    files = sorted(p.iterdir()) if p.is_dir() else []
    for f in files:
        t.append(f"\n  {f.name:<16} {size(f.stat().st_size):>9}  ")
        t.append(RUN_FILES.get(f.name, ""), style="dim")
    return t


def costs(s: dict) -> RenderableType:
    """Trading costs by route (the summary's ``costs`` block): fee, spread/slippage and gas, the
    largest first; routes under half a cent are left out."""
    c = s.get("costs") or {}
    sc = s.get("share_class", "")
    rows = [(r, d) for r, d in (c.get("routes") or {}).items() if abs(num(d["fee"]) + num(d["slippage"]) + num(d["gas"])) >= 0.005]
    if not rows:
        return Text("")
    t = Table(title=f"costs by route ({sc}; spread + slippage x{num(c.get('multiplier', 1.0)):g})", box=box.SIMPLE_HEAD,
              title_justify="left")
    for col in ("route", "fee", "slippage", "price", "gas", "fills"):
        t.add_column(col, justify="left" if col == "route" else "right", no_wrap=True)
    for r, d in sorted(rows, key=lambda rd: -(num(rd[1]["fee"]) + num(rd[1]["slippage"]) + num(rd[1]["gas"]))):
        t.add_row(r, *(amount(num(d.get(k, 0.0)), sc) for k in ("fee", "slippage", "price", "gas")), str(d["fills"]))
    t.caption = "price: the pool's price against the valuation price (negative: the pool paid better)"
    t.caption_justify = "left"
    return t


def hedge_gap(s: dict) -> RenderableType:
    """One line: the largest notional a plan left unhedged and the longest gap (the summary's
    ``hedge_gap``); nothing for a run without hedge legs or plans."""
    g = s.get("hedge_gap") or {}
    if not g.get("plans") or g.get("max_unhedged_usd") is None:
        return Text("")
    t = Text("hedge gap in plans: ", style="bold")
    t.append(f"largest unhedged {num(g['max_unhedged_usd']):,.0f} USD")
    if g.get("time"):
        t.append(f" at {g['time']} (plan {g['plan_id']})")
    t.append(f"; |delta drift| > {num(g.get('drift_threshold', 0.0)):.0%} for {g.get('unhedged_hours', 0)} h in all, "
             f"at most {g.get('max_unhedged_hours', 0)} h in one plan")
    return t


def summary_renderables(s: dict, files: bool = True) -> list[RenderableType]:
    """The summary as rich renderables, top to bottom; the run directory's files last (unless
    not ``files``)."""
    out = [header(s), Text(""), performance(s), attribution(s), costs(s), positions(s), counts(s), hedge_gap(s), Text(""),
           data_notes(s), Text(""), reconciliation(s), Text("")]
    return out + [run_dir(s)] if files else out


def print_summary(s: dict, console: Console | None = None, files_ready: Callable[[], None] | None = None) -> None:
    """Print the readable summary of a run to ``console`` (default: stdout). ``files_ready``:
    called before the run directory's files are listed with their sizes, to wait for one still
    being written (``RunResult.settle``)."""
    console = console or Console()
    for r in summary_renderables(s, files=False):
        # Text lines are not wrapped, so paths and instrument keys stay whole (copyable).
        console.print(r, soft_wrap=isinstance(r, Text))
    if files_ready is not None:
        files_ready()
    console.print(run_dir(s), soft_wrap=True)


def print_comparison(result: dict, console: Console) -> None:
    """The side-by-side view of :func:`trimtab.compare.compare`: a table of each run's APY,
    APR, max drawdown and Sharpe beside its stated target and the benchmark's APY over the
    same window, its equity and P&L, then the P&L attribution of each by category (in its share
    class), all with the number formats of ``trimtab run`` (:func:`pct`, :func:`amount`), and
    where the runs were written."""
    w = result["window"]
    b = result["benchmark"]
    console.print(f"[bold]side by side[/bold]  ·  {w['start']} → {w['end']}  ·  benchmark {b['name']} APY {pct(b['apy'])}")
    t = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for col in ("strategy", "kind", "class", "APY", "target APY", "vs sUSDe", "APR", "max DD", "target DD", "Sharpe",
                "final equity", "P&L"):
        t.add_column(col, justify="left" if col in ("strategy", "kind", "class") else "right", no_wrap=True)
    for r in result["rows"]:
        sc = r["share_class"]
        pnl = num(r["final_equity"]) - num(r["initial_equity"]) - num(r.get("net_flows") or 0.0)
        t.add_row(r["mode"], r.get("kind", "strategy").replace("_", " "), sc, pct(r["apy"]),
                  pct(r["target_apy"]) if r["target_apy"] is not None else "-",
                  pct(num(r["apy"]) - num(b["apy"]), signed=True) if sc == "USDT" else "n/a",
                  pct(r["apr"]), pct(r["max_drawdown"]),
                  pct(r["target_max_drawdown"]) if r["target_max_drawdown"] is not None else "-", ratio(r["sharpe"]),
                  amount(r["final_equity"], sc), Text(amount(pnl, sc, signed=True), style=_signed_style(pnl)))
    console.print(t)
    cats = [c for c in CATEGORY_NAMES if any(num(r["attribution"].get(c, 0)) for r in result["rows"])]
    cats += sorted({c for r in result["rows"] for c in r["attribution"] if c not in CATEGORY_NAMES and num(r["attribution"][c])})
    a = Table(title="P&L attribution (each strategy's share class)", box=box.SIMPLE_HEAD, show_edge=False, title_justify="left")
    a.add_column("strategy", no_wrap=True)
    a.add_column("class", no_wrap=True)
    for c in cats:
        a.add_column(CATEGORY_NAMES.get(c, c), justify="right", no_wrap=True)
    for r in result["rows"]:
        a.add_row(r["mode"], r["share_class"],
                  *(amount(r["attribution"][c], r["share_class"], signed=True) if num(r["attribution"].get(c, 0)) else "" for c in cats))
    console.print(a)
    console.print("targets: seed 001 (each config's performance_target); 'vs sUSDe' only for USDT share classes")
    if result.get("dir"):
        runs = Text("runs written to ", style="bold")
        runs.append(f"{result['dir']}/")
        runs.append("  (comparison.json: this result, and one run folder each)", style="dim")
        for r in result["rows"]:
            runs.append(f"\n  {r['mode']:<32} {r['run_dir']}")
        console.print(runs, soft_wrap=True)
    for config, why in (result.get("skipped") or {}).items():
        console.print(Text(f"skipped {config}: {why}", style="yellow"), soft_wrap=True)
