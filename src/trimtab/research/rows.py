"""One row per variant: the column contract of ``sweep.parquet`` and the metrics a sweep ranks by.

Columns, in order (another lane draws reports from them; change them only together)::

    variant (str), status ("ok" | "failed"), error (str or null),
    param.<name> (one per swept name: float, or str for non-numeric values),
    apy, max_drawdown, sharpe, worst_health_factor, worst_margin_ratio, liquidations, fees_usd,
    attribution.<category> (one per trimtab.accounting.attribution.CATEGORIES, share class units),
    final_equity, start, end (ISO UTC strings), run_dir

``apy``, ``max_drawdown`` (fractions), ``sharpe``, ``liquidations``, ``attribution.*`` and
``final_equity`` are the variant's ``summary.json`` values. The summary has no worst health
factor or margin ratio, so they are the minimum over the run's ``equity.csv`` columns
``health_factor`` and ``margin_ratio_min`` (NaN when the run never borrowed or never held a perp:
the column is absent or infinite throughout). ``fees_usd`` is the summary's
``costs.total.fee + costs.total.gas`` (venue fees and network gas paid, in the share class: USD
for a USDT config). Every number of a failed variant is NaN.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..accounting.attribution import CATEGORIES
from . import ResearchError

__all__ = ["DIRECTION", "METRICS", "best", "check_metric", "columns", "failed_row", "ok_row", "read_summary", "to_frame",
           "write_parquet"]

#: Each metric a sweep can rank by, and whether more ("max") or less ("min") is better. The one
#: place the direction is decided: the table, --top and the walk-forward choice all read it.
DIRECTION: dict[str, str] = {
    "apy": "max",
    "sharpe": "max",
    "final_equity": "max",
    "worst_health_factor": "max",
    "worst_margin_ratio": "max",
    "max_drawdown": "min",
    "liquidations": "min",
    "fees_usd": "min",
}
METRICS = tuple(DIRECTION)
_NUMBERS = ("apy", "max_drawdown", "sharpe", "worst_health_factor", "worst_margin_ratio", "liquidations", "fees_usd")


def columns(param_names: list[str]) -> list[str]:
    """The ``sweep.parquet`` columns, in order, for a sweep over ``param_names``."""
    return ["variant", "status", "error", *(f"param.{n}" for n in param_names), *_NUMBERS,
            *(f"attribution.{c}" for c in CATEGORIES), "final_equity", "start", "end", "run_dir"]


def check_metric(metric: str) -> str:
    """``metric`` if a sweep can rank by it (:data:`DIRECTION`). Raises ResearchError (flag ``--metric``)."""
    if metric not in DIRECTION:
        raise ResearchError(f"--metric: {metric!r} is not a sweep metric; use one of: {', '.join(METRICS)}", "--metric")
    return metric


def _num(x: Any) -> float:
    """A summary value as a float; NaN for anything that is not a finite number (a corrupt file)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return float("nan")
    return float(x)


def read_summary(run_dir: Path) -> dict | None:
    """``run_dir/summary.json`` if it is a finished run's summary (a JSON object with a numeric
    ``final_equity``); None when it is missing, unreadable or not one (the variant is rerun)."""
    try:
        data = json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not math.isfinite(_num(data.get("final_equity"))):
        return None
    return data


def _worst(equity_csv: Path, column: str) -> float:
    """The smallest finite value of ``column`` in ``equity.csv``; NaN if it has none (or no such
    column, or the file cannot be read as a CSV)."""
    try:
        head = pd.read_csv(equity_csv, nrows=0).columns
        if column not in head:
            return float("nan")
        s = pd.to_numeric(pd.read_csv(equity_csv, usecols=[column])[column], errors="coerce").to_numpy(dtype=float)
    except (OSError, ValueError, pd.errors.ParserError):
        return float("nan")
    s = s[np.isfinite(s)]
    return float(s.min()) if s.size else float("nan")


def ok_row(variant: str, params: dict[str, Any], summary: dict, run_dir: Path) -> dict:
    """The row of a finished variant from its ``summary.json`` (as read back, possibly hostile:
    every value is checked to be a number, else NaN) and ``equity.csv``.

    ``params``: ``{name: column value}`` (float or str, :meth:`GridAxis.column`)."""
    run_dir = Path(run_dir)
    attribution = summary.get("attribution") if isinstance(summary.get("attribution"), dict) else {}
    costs = summary.get("costs") if isinstance(summary.get("costs"), dict) else {}
    total = costs.get("total") if isinstance(costs.get("total"), dict) else {}
    row: dict[str, Any] = {"variant": variant, "status": "ok", "error": None}
    row.update({f"param.{n}": v for n, v in params.items()})
    row.update({
        "apy": _num(summary.get("apy")),
        "max_drawdown": _num(summary.get("max_drawdown")),
        "sharpe": _num(summary.get("sharpe")),
        "worst_health_factor": _worst(run_dir / "equity.csv", "health_factor"),
        "worst_margin_ratio": _worst(run_dir / "equity.csv", "margin_ratio_min"),
        "liquidations": _num(summary.get("liquidations")),
        "fees_usd": _num(total.get("fee")) + _num(total.get("gas")) if total else float("nan"),
    })
    row.update({f"attribution.{c}": _num(attribution.get(c)) for c in CATEGORIES})
    row.update({"final_equity": _num(summary.get("final_equity")),
                "start": summary.get("start") if isinstance(summary.get("start"), str) else None,
                "end": summary.get("end") if isinstance(summary.get("end"), str) else None,
                "run_dir": str(run_dir)})
    return row


def failed_row(variant: str, params: dict[str, Any], error: str, run_dir: Path, start=None, end=None) -> dict:
    """The row of a variant whose run raised: ``error`` its one-line message, every number NaN."""
    row: dict[str, Any] = {"variant": variant, "status": "failed", "error": error}
    row.update({f"param.{n}": v for n, v in params.items()})
    row.update({k: float("nan") for k in _NUMBERS})
    row.update({f"attribution.{c}": float("nan") for c in CATEGORIES})
    row.update({"final_equity": float("nan"), "start": _iso(start), "end": _iso(end), "run_dir": str(run_dir)})
    return row


def _iso(t) -> str | None:
    return None if t is None else f"{pd.Timestamp(t):%Y-%m-%dT%H:%MZ}"


def to_frame(rows: list[dict], param_names: list[str], numeric: dict[str, bool]) -> pd.DataFrame:
    """The rows as a DataFrame with exactly :func:`columns` (in that order) and stable dtypes:
    ``param.<name>`` float64 when ``numeric[name]`` else string, the metrics float64."""
    cols = columns(param_names)
    df = pd.DataFrame(rows, columns=cols)
    for c in cols:
        if c in ("variant", "status", "error", "start", "end", "run_dir") or (c.startswith("param.") and not numeric[c[6:]]):
            df[c] = df[c].astype(object).where(df[c].notna(), None)
        else:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    return df


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` to ``path`` whole or not at all (a temporary file renamed over it), so an
    interrupt never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def best(df: pd.DataFrame, metric: str, top: int | None = None) -> pd.DataFrame:
    """The ok rows with a value of ``metric``, best first by :data:`DIRECTION` (ties keep the
    rows' order, so the first variant of the grid wins), at most ``top`` of them."""
    ok = df[(df["status"] == "ok") & df[metric].notna()]
    ranked = ok.sort_values(metric, ascending=DIRECTION[metric] == "min", kind="mergesort")
    return ranked if top is None else ranked.head(top)


def inert_params(df: pd.DataFrame) -> list[str]:
    """The swept parameters (``param.<name>`` columns of a sweep frame) that changed nothing:
    among the finished variants, every group that differs only in that parameter ended with the
    same ``final_equity``, over at least two of its values. Such a name is usually one no rule,
    target or state of the config reads (``trimtab params CONFIG`` lists the readers); a sweep
    says so rather than let a flat heatmap pass for a robust result. Sorted names; [] when fewer
    than two variants finished."""
    ok = df[df["status"] == "ok"]
    params = [c for c in df.columns if c.startswith("param.")]
    out = []
    for p in params:
        if ok[p].nunique() < 2:
            continue
        others = [c for c in params if c != p]
        groups = ok.groupby(others, dropna=False) if others else [(None, ok)]
        # a group with two values of p is a controlled comparison; all of them equal: inert
        pairs = [g["final_equity"].nunique() for _, g in groups if g[p].nunique() >= 2]
        if pairs and all(n == 1 for n in pairs):
            out.append(p.removeprefix("param."))
    return sorted(out)

