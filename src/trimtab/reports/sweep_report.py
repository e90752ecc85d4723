"""The report of a sweep: :func:`build_sweep_page` and :func:`write_sweep_report`
(``<sweep_dir>/report.html`` by default).

Sections: heatmaps of the chosen metric (then max drawdown and Sharpe) over two swept
parameters (a bar chart for a one-parameter sweep); the best variants by the metric; the failed
variants; with a walk-forward, the stitched out-of-sample equity, in-sample vs out-of-sample
metric per fold and the folds table.
"""
from __future__ import annotations

from pathlib import Path

from . import ReportError, charts
from .html import Page, Section, render_page
from .run_report import write_html
from .sweepdata import LoadedSweep, load_sweep

#: Metrics drawn as heatmaps after the chosen one, where the variants have them.
EXTRA_HEATMAPS = ("max_drawdown", "sharpe")
#: A walk-forward's folds with a heatmap drawn (the rest are named).
MAX_FOLD_HEATMAPS = 6


def check_axes(sweep: LoadedSweep, x: str | None, y: str | None, metric: str | None) -> tuple[str, str | None, str]:
    """(x, y, metric) with the defaults filled in: the first two swept parameters, the sweep's
    own metric (sweep.json) or ``apy``. Raises ReportError naming the flag (``--x``, ``--y``,
    ``--metric``) for a name the sweep lacks, with the names it has."""
    names = sweep.params
    metric = metric or sweep.record.get("metric") or "apy"
    if not isinstance(metric, str) or metric not in sweep.rows.columns or metric.startswith("param.") or \
            metric in ("variant", "status", "error", "start", "end", "run_dir", "fold"):
        metrics = [c for c in sweep.rows.columns if c in charts_metrics(sweep)]
        raise ReportError(f"--metric: {metric!r} is not a metric of this sweep; use one of: {', '.join(metrics)}")
    for flag, v in (("--x", x), ("--y", y)):
        if v is not None and v not in names:
            raise ReportError(f"{flag}: {v!r} is not a swept parameter of {sweep.sweep_dir}; swept: {', '.join(names)}")
    x = x or next(n for n in names if n != y)
    if y is None:
        y = next((n for n in names if n != x), None)
    if x == y:
        raise ReportError(f"--y: {y!r} is also --x; choose two different swept parameters ({', '.join(names)})")
    return x, y, metric


def charts_metrics(sweep: LoadedSweep) -> list[str]:
    """The numeric result columns of the sweep a report can draw (the contract's metrics and the attribution)."""
    skip = {"variant", "status", "error", "start", "end", "run_dir", "fold"}
    return [c for c in sweep.rows.columns if c not in skip and not c.startswith("param.")]


def build_sweep_page(sweep: LoadedSweep, x: str | None = None, y: str | None = None, metric: str | None = None,
                     top: int = 10) -> Page:
    """The sweep's report page; ``x``/``y``/``metric`` as :func:`check_axes`, ``top`` best variants listed."""
    x, y, metric = check_axes(sweep, x, y, metric)
    rows = sweep.rows
    secs: list[Section] = []
    others = [p for p in sweep.params if p not in (x, y)]
    # A walk-forward has one in-sample sweep per fold: the chosen metric's heatmap of each.
    groups = [("", "", rows)] if sweep.folds is None else \
        [(f"-fold{n}", f"fold {n}, in-sample", f) for n, f in sorted(sweep.folds.items())[:MAX_FOLD_HEATMAPS]]
    for suffix, label, part in groups:
        for m in dict.fromkeys((metric, *(EXTRA_HEATMAPS if sweep.folds is None else ()))):
            if m not in part.columns:
                continue
            fig = charts.fig_heatmap(part, x, y, m, others, label) if y else charts.fig_metric_by_param(part, x, m, label)
            secs.append(Section(f"heatmap-{m}{suffix}", f"{label + ': ' if label else ''}{m} over {x} × {y}" if y else f"{m} by {x}", fig,
                                None if fig else f"no variant finished with a value of {m}"))
    if sweep.folds is not None and len(sweep.folds) > MAX_FOLD_HEATMAPS:
        secs.append(Section("heatmap-more", "More folds", None, f"heatmaps of the first {MAX_FOLD_HEATMAPS} of {len(sweep.folds)} folds "
                            f"shown; each fold's sweep is in folds/fold-<n>/ (trimtab report {sweep.sweep_dir}/folds/fold-<n>)"))
    ok = rows[(rows["status"] == "ok") & rows[metric].notna()]
    ranked = ok.sort_values(metric, ascending=charts.direction(metric) == "min", kind="mergesort").head(top)
    cols = [*(["fold"] if sweep.folds is not None else []), "variant", *(f"param.{p}" for p in sweep.params), metric,
            *(c for c in ("apy", "max_drawdown", "sharpe", "worst_health_factor", "worst_margin_ratio", "liquidations", "fees_usd",
                          "final_equity") if c != metric), "run_dir"]
    secs.append(Section("best", f"Best {len(ranked)} of {len(rows)} variant runs{' (all folds, in-sample)' if sweep.folds is not None else ''} by {metric} "
                        f"({'higher' if charts.direction(metric) == 'max' else 'lower'} is better)", None, None,
                        _records(ranked[cols]), cols))
    failed = rows[rows["status"] != "ok"]
    secs.append(Section("failed", f"Failed variants ({len(failed)})", None, None,
                        _records(failed[["variant", *(f"param.{p}" for p in sweep.params), "error"]])))
    if sweep.walkforward is not None:
        oos = charts.fig_oos_equity(sweep)
        secs.append(Section("walkforward-equity", "Walk-forward: stitched out-of-sample equity", oos,
                            None if oos else "walkforward_equity.csv is missing: no stitched equity to draw"))
        secs.append(Section("walkforward-folds-chart", "In-sample vs out-of-sample per fold", charts.fig_is_vs_oos(sweep, metric)))
        wf = sweep.walkforward.sort_values("fold")
        wcols = [c for c in ("fold", "is_start", "is_end", "oos_start", "oos_end", "variant", f"is_{metric}", f"oos_{metric}",
                             "is_apy", "oos_apy", "oos_final_equity") if c in wf.columns]
        secs.append(Section("walkforward", "Walk-forward folds", None, None, _records(wf[list(dict.fromkeys(wcols))])))
    rec = sweep.record
    window = rec.get("window") if isinstance(rec.get("window"), dict) else {}
    facts = [("config", str(rec.get("config", "?"))), ("variants", f"{len(rows):,}"), ("ok", f"{int((rows['status'] == 'ok').sum()):,}"),
             ("failed", f"{len(failed):,}"), ("metric", metric),
             ("window (UTC)", f"{window.get('resolved_start') or window.get('start') or '?'} → {window.get('resolved_end') or window.get('end') or '?'}")]
    if isinstance(rec.get("grid"), list):
        facts.append(("grid", " ".join(f"--grid {g}" for g in rec["grid"])))
    if rec.get("walk_forward"):
        facts.append(("walk-forward", str(rec["walk_forward"])))
    return Page(title=f"{rec.get('name') or sweep.sweep_dir.name}: sweep report", subtitle=str(sweep.sweep_dir), facts=facts,
                sections=secs)


def _records(df) -> list[dict]:
    out = []
    for r in df.to_dict("records"):
        out.append({k: (None if v is None or (isinstance(v, float) and v != v) else (v.strftime("%Y-%m-%dT%H:%MZ") if hasattr(v, "strftime") else v))
                    for k, v in r.items()})
    return out


def write_sweep_report(sweep_dir: str | Path, out: str | Path | None = None, x: str | None = None, y: str | None = None,
                       metric: str | None = None, top: int = 10) -> Path:
    """Read the sweep in ``sweep_dir`` and write its report to ``out`` (default
    ``<sweep_dir>/report.html``). Returns the path. Raises ReportError."""
    if top < 1:
        raise ReportError(f"--top: must be at least 1, got {top}")
    sweep = load_sweep(sweep_dir)
    return write_html(render_page(build_sweep_page(sweep, x, y, metric, top)), Path(out) if out is not None else Path(sweep_dir) / "report.html")
