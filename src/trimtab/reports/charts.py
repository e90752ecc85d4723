"""Figure builders over a loaded run: pure functions ``fig_*(run, ...) -> plotly Figure | None``.

Each takes a :class:`~trimtab.reports.rundata.LoadedRun` (and, for the risk charts, the run's
:class:`~trimtab.reports.thresholds.Thresholds`) and returns a ``plotly.graph_objects.Figure``,
or None when the run has nothing to draw (a pure lending run has no margin ratio): the caller
says why instead of drawing an empty chart. They read nothing but their arguments and write
nothing, so the operator console (issue 17) can call them on a run it has loaded.

Values are as the run wrote them, in the share class (equity, funding, attribution) or as the
metric's unit (docs/metrics.md). ``inf`` (no debt, no perp position) is not drawn.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .rundata import LoadedRun
from .thresholds import Line, Thresholds

HEIGHT = 360
#: More transitions than this are not marked on every chart (:func:`mark_transitions`; the state
#: timeline has them all).
MAX_MARKED = 150
#: Line colours by kind: where the venue liquidates, a guard of the strategy, the config's target.
LINE_STYLE = {"protocol": dict(color="#c0392b", dash="solid"), "rule": dict(color="#e67e22", dash="dash"),
              "target": dict(color="#2980b9", dash="dot")}


def _layout(fig: go.Figure, title: str, y: str, **kw) -> go.Figure:
    base = dict(title=dict(text=title, x=0.01), template="plotly_white", height=HEIGHT, hovermode="x unified",
                margin=dict(l=60, r=20, t=50, b=40), legend=dict(orientation="h", y=-0.15), yaxis_title=y)
    fig.update_layout(**{**base, **kw})
    return fig


def _finite(s: pd.Series) -> pd.Series:
    return s.replace([np.inf, -np.inf], np.nan)


def _x(times) -> np.ndarray:
    """UTC times (a tz-aware DatetimeIndex or Series) as naive UTC ``datetime64`` for an x axis.
    Why: plotly holds tz-aware times as one Python Timestamp per point and deep-copies them on
    every ``add_trace`` and ``to_html`` (~0.8 s a chart on a 16-month hourly run; naive: ~10 ms);
    plotly.js ignores a time's offset, so the chart is drawn the same."""
    t = pd.DatetimeIndex(times)
    return (t.tz_convert("UTC").tz_localize(None) if t.tz is not None else t).to_numpy()


def _vlines(times, **line) -> list[dict]:
    """Vertical lines across the plot at ``times`` (UTC), as layout shapes for one
    ``update_layout(shapes=...)``: ``fig.add_vline`` per line re-validates the whole layout each
    call (~40 ms; 100 transitions x 7 charts was 28 s for a console run page)."""
    return [dict(type="line", xref="x", yref="paper", x0=t, x1=t, y0=0, y1=1, line=line)
            for t in pd.DatetimeIndex(times).strftime("%Y-%m-%d %H:%M:%S")]


def mark_transitions(fig: go.Figure, transitions: pd.DataFrame, limit: int = MAX_MARKED) -> go.Figure:
    """``fig`` with every transition of ``transitions`` (a LoadedRun's: ``time`` UTC) marked as a
    dotted vertical line, added in one layout update; unchanged with none or more than ``limit``
    (too many lines hide the series; the state timeline lists them all)."""
    tr = transitions.dropna(subset=["time"])
    if tr.empty or len(tr) > limit:
        return fig
    lines = [{**ln, "opacity": 0.6} for ln in _vlines(pd.to_datetime(tr["time"], utc=True), color="#e67e22", dash="dot", width=1)]
    fig.update_layout(shapes=list(fig.layout.shapes) + lines)
    return fig


def _lines(fig: go.Figure, lines: list[Line], x0, x1, secondary: bool = False) -> None:
    """Each threshold as a horizontal line trace (a trace, not a shape: it has a legend entry and
    shows in the hover)."""
    for ln in lines:
        fig.add_trace(go.Scatter(x=[x0, x1], y=[ln.value, ln.value], mode="lines", name=ln.label,
                                 line=dict(width=1.2, **LINE_STYLE.get(ln.kind, LINE_STYLE["rule"])), hoverinfo="name"))


def fig_equity(run: LoadedRun) -> go.Figure:
    """Equity (share class, left axis) and NAV per unit (right axis, 1.0 at the start) per tick;
    a portfolio also draws each sleeve's equity and its cash."""
    eq = run.equity
    fig = go.Figure()
    x = _x(eq.index)
    fig.add_trace(go.Scatter(x=x, y=eq["equity"], name=f"equity ({run.share_class})", line=dict(color="#1f4e79", width=1.6)))
    for col in eq.columns:
        if col.startswith("sleeve.") or col == "cash":
            fig.add_trace(go.Scatter(x=x, y=eq[col], name=col, line=dict(width=1)))
    if "nav" in eq and eq["nav"].notna().any():
        fig.add_trace(go.Scatter(x=x, y=eq["nav"], name="NAV per unit", yaxis="y2", line=dict(color="#27ae60", width=1.2, dash="dot")))
    flows = run.summary.get("flows") or []
    times = pd.to_datetime([f["time"] for f in flows if isinstance(f, dict) and f.get("time")] if isinstance(flows, list) else [],
                           utc=True, errors="coerce").dropna()
    if len(times):
        fig.update_layout(shapes=_vlines(times, color="#7f8c8d", dash="dot", width=1))
    return _layout(fig, "Equity and NAV", run.share_class, yaxis2=dict(title="NAV per unit", overlaying="y", side="right", showgrid=False))


def drawdown(run: LoadedRun) -> pd.Series:
    """Drawdown per tick as a fraction <= 0: NAV / running peak NAV - 1 (on NAV so capital flows
    are not losses; on equity when the run has no NAV). Its minimum is the summary's
    ``max_drawdown`` with the opposite sign."""
    s = run.equity["nav"] if "nav" in run.equity and run.equity["nav"].notna().any() else run.equity["equity"]
    s = _finite(s).ffill()
    return s / s.cummax() - 1.0


def fig_drawdown(run: LoadedRun, th: Thresholds | None = None) -> go.Figure:
    """Drawdown (fraction, <= 0) per tick; a portfolio's drawdown guards drawn as negative lines."""
    dd = drawdown(run)
    fig = go.Figure(go.Scatter(x=_x(dd.index), y=dd, name="drawdown", fill="tozeroy", line=dict(color="#c0392b", width=1)))
    if th is not None and th.get("portfolio_drawdown"):
        _lines(fig, [Line(x.label, -x.value, x.kind) for x in th.get("portfolio_drawdown")], dd.index[0], dd.index[-1])
    return _layout(fig, "Drawdown (NAV from its running peak)", "fraction", yaxis_tickformat=".2%")


def _risk(run: LoadedRun, col: str, lines: list[Line], title: str, y: str, fmt: str | None = None) -> go.Figure | None:
    if col not in run.equity:
        return None
    s = _finite(run.equity[col])
    if not s.notna().any():
        return None
    fig = go.Figure(go.Scatter(x=_x(s.index), y=s, name=col, line=dict(color="#1f4e79", width=1.4)))
    _lines(fig, lines, s.index[0], s.index[-1])
    return _layout(fig, title, y, **({"yaxis_tickformat": fmt} if fmt else {}))


def fig_health_factor(run: LoadedRun, th: Thresholds) -> go.Figure | None:
    """Aave health factor per tick against Aave's liquidation at 1.0 and the strategy's health
    factor guards; None when the run never had debt (health factor inf throughout)."""
    return _risk(run, "health_factor", th.get("health_factor"), "Health factor", "ratio")


def fig_ltv(run: LoadedRun, th: Thresholds) -> go.Figure | None:
    """Aave LTV (debt / collateral) per tick against the liquidation threshold, the max LTV and the
    target; None when the run never borrowed (LTV 0 throughout)."""
    if "ltv" not in run.equity or not (run.equity["ltv"].fillna(0) > 0).any():
        return None
    return _risk(run, "ltv", th.get("ltv"), "Loan-to-value", "fraction", ".1%")


def fig_margin(run: LoadedRun, th: Thresholds) -> go.Figure | None:
    """Margin ratio (account equity / position notional) of each perp venue per tick, against
    each venue's maintenance margin (smallest bracket) and the strategy's margin guards (read on
    ``margin_ratio_min``); None when the run held no perp (every margin ratio inf or absent)."""
    cols = [c for c in run.equity.columns if c.startswith("margin_ratio.")]
    if not cols:
        cols = ["margin_ratio_min"] if "margin_ratio_min" in run.equity else []
    fig = go.Figure()
    drawn = False
    eq = run.equity
    for c in cols:
        s = _finite(eq[c])
        if s.notna().any():
            fig.add_trace(go.Scatter(x=_x(s.index), y=s, name=c, line=dict(width=1.3)))
            drawn = True
    if not drawn:
        return None
    lines = th.get("margin_ratio_min") + [Line(f"{c.split('.', 1)[1]} {x.label}", x.value, x.kind) for c in cols for x in th.get(c)]
    _lines(fig, lines, eq.index[0], eq.index[-1])
    return _layout(fig, "CEX margin ratio per venue", "fraction", yaxis_tickformat=".0%")


def fig_delta(run: LoadedRun, th: Thresholds) -> go.Figure | None:
    """Delta drift (net_delta / hedged delta, fraction) per tick against the drift guards, with the
    net delta (asset units) on the right axis; for a drift basket, the largest token drift against
    the rebalance threshold. None when nothing was hedged and there is no basket."""
    eq = run.equity
    if "max_drift" in th.by_metric and run.kind == "drift_basket":
        return _basket_drift(run, th)
    if "delta_drift" not in eq:
        return None
    s = _finite(eq["delta_drift"])
    if not (s.fillna(0) != 0).any():
        return None
    fig = go.Figure(go.Scatter(x=_x(s.index), y=s, name="delta_drift", line=dict(color="#1f4e79", width=1.2)))
    if "net_delta" in eq:
        fig.add_trace(go.Scatter(x=_x(eq.index), y=_finite(eq["net_delta"]), name="net_delta (asset units)", yaxis="y2",
                                 line=dict(color="#8e44ad", width=1, dash="dot")))
    lines = th.get("delta_drift")
    _lines(fig, lines, eq.index[0], eq.index[-1])
    # The tick before the hedge is on reads a drift of 1.0 (100%): zoom on the thresholds and the
    # bulk of the run instead, and say how far the peaks go.
    peak = float(s.abs().max())
    span = max([2.0 * abs(x.value) for x in lines] + [float(s.abs().quantile(0.99))]) * 1.1
    kw = {}
    if peak > span > 0:
        kw["yaxis_range"] = [-span, span]
        fig.add_annotation(xref="paper", yref="paper", x=1, y=1.08, showarrow=False, font=dict(size=11, color="#7f8c8d"),
                           text=f"axis clipped at ±{span:.1%}; |delta_drift| peaks at {peak:.1%} (hover for values)")
    return _layout(fig, "Delta drift", "fraction", yaxis_tickformat=".1%",
                   yaxis2=dict(title="net delta", overlaying="y", side="right", showgrid=False), **kw)


def _basket_drift(run: LoadedRun, th: Thresholds) -> go.Figure | None:
    rows = run.tables.get("rebalances") or []
    fig = go.Figure()
    t = [r["time"] for r in rows if isinstance(r.get("max_drift"), (int, float))]
    v = [r["max_drift"] for r in rows if isinstance(r.get("max_drift"), (int, float))]
    if not t:
        return None
    fig.add_trace(go.Scatter(x=_x(pd.to_datetime(t, utc=True)), y=v, mode="markers", name="largest |drift| at each rebalance",
                             marker=dict(size=8, color="#1f4e79")))
    _lines(fig, th.get("max_drift"), run.equity.index[0], run.equity.index[-1])
    return _layout(fig, "Token drift at rebalances", "fraction", yaxis_tickformat=".0%")


def fig_funding(run: LoadedRun) -> go.Figure | None:
    """Cumulative funding received per perp venue (share class; negative: paid), from the
    journal's funding fills; None when the run had no funding payment."""
    f = run.funding.dropna(subset=["time", "amount"])
    if f.empty:
        return None
    fig = go.Figure()
    for venue, g in f.groupby("venue", sort=True):
        g = g.sort_values("time")
        fig.add_trace(go.Scatter(x=_x(g["time"]), y=g["amount"].cumsum(), name=str(venue), line_shape="hv", line=dict(width=1.4)))
    return _layout(fig, "Cumulative funding per venue", run.share_class)


def run_charts(run: LoadedRun, th: Thresholds) -> list[tuple[str, str, go.Figure | None, str | None]]:
    """The per-tick charts of a run page, in page order, for the report and the console alike:
    ``(key, title, figure, note)`` for equity, drawdown and (not for a portfolio, whose sleeves
    are runs with their own pages) health factor, LTV, margin ratio, delta drift and funding.
    ``figure`` is None when the run has nothing to draw, and ``note`` then says why."""
    out: list[tuple[str, str, go.Figure | None, str | None]] = [
        ("equity", "Equity and NAV", fig_equity(run), None), ("drawdown", "Drawdown", fig_drawdown(run, th), None)]
    if run.kind == "portfolio":
        return out
    for key, title, fig, why in (
            ("health_factor", "Health factor", fig_health_factor(run, th), "no Aave debt in this run (health factor inf throughout)"),
            ("ltv", "Loan-to-value", fig_ltv(run, th), "no Aave debt in this run (LTV 0 throughout)"),
            ("margin", "Margin ratio per venue", fig_margin(run, th), "no perps in this run"),
            ("delta", "Token drift" if run.kind == "drift_basket" else "Delta drift", fig_delta(run, th),
             "nothing hedged in this run (delta drift 0 throughout)"),
            ("funding", "Cumulative funding per venue", fig_funding(run), "no funding payments in this run")):
        out.append((key, title, fig, None if fig else why))
    return out


def waterfall_steps(run: LoadedRun, tol: float | None = None) -> list[tuple[str, float, str]]:
    """The P&L attribution as waterfall steps ``(label, value, measure)``: start equity
    (``absolute``), each nonzero attribution category and the net capital flows (``relative``),
    end equity (``total``). Start + the relatives = end: if the summary's figures miss that by more
    than ``tol`` (default 1e-6 of the start equity, at least 0.01), an ``unreconciled`` step
    shows the difference rather than hiding it."""
    s = run.summary
    start, end = float(s["initial_equity"]), float(s["final_equity"])
    steps = [("start equity", start, "absolute")]
    steps += [(cat, float(v), "relative") for cat, v in s["attribution"].items() if abs(v) > 0]
    flows = float(s.get("net_flows") or 0.0)
    if flows:
        steps.append(("capital flows", flows, "relative"))
    gap = end - math.fsum(v for _, v, _ in steps)
    if abs(gap) > (tol if tol is not None else max(1e-6 * abs(start), 0.01)):
        steps.append(("unreconciled", gap, "relative"))
    steps.append(("end equity", end, "total"))
    return steps


def fig_waterfall(run: LoadedRun) -> go.Figure:
    """The P&L attribution as a waterfall, start equity -> categories -> flows -> end equity
    (:func:`waterfall_steps`); the y axis is zoomed on the range the bars move through."""
    steps = waterfall_steps(run)
    labels, values, measures = zip(*steps)
    fig = go.Figure(go.Waterfall(x=list(labels), y=list(values), measure=list(measures), name="attribution",
                                 text=[f"{v:+,.2f}" if m == "relative" else f"{v:,.2f}" for _, v, m in steps], textposition="outside",
                                 connector=dict(line=dict(color="#95a5a6", width=1)),
                                 increasing=dict(marker=dict(color="#27ae60")), decreasing=dict(marker=dict(color="#c0392b")),
                                 totals=dict(marker=dict(color="#1f4e79"))))
    level, lo, hi = 0.0, math.inf, -math.inf
    for _, v, m in steps:
        level = v if m != "relative" else level + v
        lo, hi = min(lo, level), max(hi, level)
    pad = max((hi - lo) * 0.25, abs(hi) * 1e-4, 1e-9)
    return _layout(fig, "P&L attribution (waterfall)", run.share_class, hovermode="closest", yaxis_range=[lo - pad, hi + pad], showlegend=False)


def fig_timeline(run: LoadedRun) -> go.Figure | None:
    """The machine state per tick as a step line over the states, with every transition marked
    (hover: trigger, from -> to); None when the run has no state rows."""
    st = run.states.dropna(subset=["time"])
    if st.empty:
        return None
    order = list(dict.fromkeys(st["state"].astype(str)))
    fig = go.Figure(go.Scatter(x=_x(st["time"]), y=st["state"].astype(str), mode="lines", line_shape="hv", name="state",
                               line=dict(color="#1f4e79", width=2)))
    tr = run.transitions.dropna(subset=["time"])
    if not tr.empty:
        fig.add_trace(go.Scatter(x=_x(tr["time"]), y=tr["dest"].astype(str), mode="markers", name="transition",
                                 marker=dict(symbol="diamond", size=10, color="#e67e22", line=dict(width=1, color="#2c3e50")),
                                 customdata=np.stack([tr["trigger"].astype(str), tr["source"].astype(str)], axis=1),
                                 hovertemplate="%{customdata[0]}: %{customdata[1]} → %{y}<extra></extra>"))
    return _layout(fig, f"State timeline ({len(tr)} transitions)", "state", hovermode="closest",
                   yaxis=dict(type="category", categoryorder="array", categoryarray=order, title="state"))


# --------------------------------------------------------------------------- sweeps
def direction(metric: str) -> str:
    """``max`` when more of ``metric`` is better, ``min`` when less (trimtab.research.rows.DIRECTION;
    ``max`` for a metric it does not list, such as an attribution category)."""
    from ..research.rows import DIRECTION

    return DIRECTION.get(metric, "max")


def heatmap_table(rows: pd.DataFrame, x: str, y: str, metric: str) -> pd.DataFrame:
    """``metric`` of the ok variants of ``rows`` (sweep.parquet rows) as a table: rows the
    ``param.<y>`` values, columns the ``param.<x>`` values (both sorted). With more than two swept
    parameters, each cell is the best variant over the others (:func:`direction`). Raises
    KeyError for a name that is not a column."""
    ok = rows[(rows["status"] == "ok") & rows[metric].notna()]
    agg = "max" if direction(metric) == "max" else "min"
    return ok.pivot_table(index=f"param.{y}", columns=f"param.{x}", values=metric, aggfunc=agg).sort_index().sort_index(axis=1)


def fig_heatmap(rows: pd.DataFrame, x: str, y: str, metric: str, others: list[str] | tuple = (), label: str = "") -> go.Figure | None:
    """Heatmap of ``metric`` over the swept parameters ``x`` and ``y`` (:func:`heatmap_table`),
    each cell labelled with its value; ``others``: the other swept names (the title says a cell
    is the best over them); ``label`` prefixes the title (``fold 2, in-sample``). None when no ok
    variant has the metric."""
    t = heatmap_table(rows, x, y, metric)
    if t.empty:
        return None
    fmt = ".2%" if metric in ("apy", "max_drawdown") or metric.endswith("_apy") else ".4g"
    title = (f"{label}: " if label else "") + f"{metric} over {x} × {y}" + (f" (best over {', '.join(others)})" if others else "")
    fig = go.Figure(go.Heatmap(z=t.to_numpy(), x=[str(v) for v in t.columns], y=[str(v) for v in t.index], texttemplate=f"%{{z:{fmt}}}",
                               colorscale="RdYlGn" if direction(metric) == "max" else "RdYlGn_r", colorbar=dict(title=metric),
                               hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}=%{{z:{fmt}}}<extra></extra>"))
    return _layout(fig, title, y, hovermode="closest", xaxis=dict(title=x, type="category"), yaxis=dict(title=y, type="category"))


def fig_metric_by_param(rows: pd.DataFrame, x: str, metric: str, label: str = "") -> go.Figure | None:
    """``metric`` of the ok variants against the one swept parameter ``x`` (a sweep over a
    single parameter has no heatmap); None when no ok variant has the metric."""
    ok = rows[(rows["status"] == "ok") & rows[metric].notna()].sort_values(f"param.{x}")
    if ok.empty:
        return None
    fig = go.Figure(go.Bar(x=[str(v) for v in ok[f"param.{x}"]], y=ok[metric], name=metric, marker_color="#1f4e79"))
    return _layout(fig, (f"{label}: " if label else "") + f"{metric} by {x}", metric, hovermode="closest", xaxis=dict(title=x, type="category"))


def fig_oos_equity(sweep) -> go.Figure | None:
    """The stitched out-of-sample equity of a walk-forward (share class) with each fold's
    out-of-sample window shaded and labelled with the variant it ran; None without one."""
    if sweep.oos_equity is None or sweep.oos_equity.empty:
        return None
    eq = sweep.oos_equity
    fig = go.Figure(go.Scatter(x=_x(eq.index), y=eq, name="out-of-sample equity (stitched)", line=dict(color="#1f4e79", width=1.5)))
    if sweep.walkforward is not None:
        # One layout update with every band and label (as _vlines: add_vrect per fold re-validates the layout).
        shapes, labels = [], []
        for k, (_, f) in enumerate(sweep.walkforward.sort_values("fold").iterrows()):
            shapes.append(dict(type="rect", xref="x", yref="y domain", x0=f["oos_start"], x1=f["oos_end"], y0=0, y1=1, line_width=0,
                               fillcolor="#3498db" if k % 2 else "#95a5a6", opacity=0.08, layer="below"))
            labels.append(dict(xref="x", yref="y domain", x=f["oos_start"], y=1, xanchor="left", yanchor="top", showarrow=False,
                               text=f"fold {int(f['fold'])}: {f['variant']}", font=dict(size=10)))
        fig.update_layout(shapes=shapes, annotations=labels)
    return _layout(fig, "Walk-forward: stitched out-of-sample equity", "equity")


def fig_is_vs_oos(sweep, metric: str) -> go.Figure | None:
    """Per fold, the chosen variant's in-sample ``metric`` against its out-of-sample one (the
    overfitting gap); falls back to APY when the folds lack ``is_<metric>``. None without a walk-forward."""
    wf = sweep.walkforward
    if wf is None or wf.empty:
        return None
    m = metric if f"is_{metric}" in wf and f"oos_{metric}" in wf else "apy"
    wf = wf.sort_values("fold")
    folds = [f"fold {int(f)}" for f in wf["fold"]]
    fig = go.Figure([go.Bar(x=folds, y=wf[f"is_{m}"], name=f"in-sample {m}", marker_color="#95a5a6"),
                     go.Bar(x=folds, y=wf[f"oos_{m}"], name=f"out-of-sample {m}", marker_color="#1f4e79")])
    return _layout(fig, f"Walk-forward: in-sample vs out-of-sample {m} per fold", m, barmode="group", hovermode="closest",
                   **({"yaxis_tickformat": ".1%"} if m in ("apy", "max_drawdown") else {}))
