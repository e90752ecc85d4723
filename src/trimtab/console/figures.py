"""The run page's charts: the report's figure builders (:mod:`trimtab.reports.charts`, one plotting
module for report and console) with the run's transitions marked (:func:`~trimtab.reports.charts.mark_transitions`).

:func:`run_figures` -> list of ``{"key", "title", "figure"}`` (plotly figure JSON, or None
with ``note`` saying why there is nothing to draw). The console's own part is only which charts a
run page shows and the figures as JSON for its page script.
"""
from __future__ import annotations

from typing import Any

from ..reports import charts
from ..reports.rundata import LoadedRun
from ..reports.thresholds import run_thresholds


def run_figures(run: LoadedRun) -> list[dict[str, Any]]:
    """The report's per-tick charts (:func:`~trimtab.reports.charts.run_charts`: equity, drawdown,
    health factor, LTV, margin ratio per venue, delta drift, funding) with the run's transitions
    marked, then the state timeline and, once the run has its summary, the P&L waterfall. The
    thresholds' notes (a guard that could not be drawn) go on the first chart."""
    th = run_thresholds(run)
    out = []
    for key, title, fig, note in charts.run_charts(run, th):
        if fig is not None:
            charts.mark_transitions(fig, run.transitions)
        out.append((key, title, fig, note))
    tl = charts.fig_timeline(run)
    out.append(("timeline", "State timeline", tl, None if tl else "no state rows yet"))
    if run.summary.get("attribution"):
        out.append(("waterfall", "P&L attribution", charts.fig_waterfall(run), None))
    rows = [{"key": key, "title": title, "figure": fig.to_json() if fig is not None else None, "note": note}
            for key, title, fig, note in out]
    if th.notes:
        rows[0]["note"] = "; ".join(th.notes)
    return rows
