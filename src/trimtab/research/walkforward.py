"""Walk-forward: choose the best variant in-sample, run it out-of-sample, fold after fold.

``--walk-forward IS:OOS`` (``6m:3m``; units ``d`` days, ``w`` weeks, ``m`` calendar months)
divides the sweep's window into folds. The out-of-sample (OOS) windows tile the period after the
first in-sample (IS) window: OOS_0 starts IS after the window's start, each OOS window starts
where the previous one ends, the last one ends at the window's end (a tail shorter than a day is
left out). Fold k's IS window is the IS length just before OOS_k (so IS windows overlap each
other when IS > OOS, but never their own OOS window).

For each fold every variant runs on the IS window (``folds/fold-<k>/variants/``, rows in
``folds/fold-<k>/sweep.parquet``); the best by the sweep's metric among those IS rows only
(:func:`trimtab.research.rows.best`: OOS results do not exist yet when it is chosen) runs on
OOS_k (``folds/fold-<k>/oos/<variant>/``) with ``capital`` = the previous fold's OOS final
equity, so the OOS runs chain into one equity curve.

Outputs in the sweep directory:

* ``walkforward.parquet`` -- one row per fold: fold, is_start, is_end, oos_start, oos_end (ISO UTC),
  variant, param.<name>..., is_<metric>, oos_<metric>, is_apy, oos_apy, oos_final_equity, run_dir
  (the OOS run);
* ``walkforward_equity.csv`` -- time, equity: the OOS runs' equity.csv stitched (a boundary hour
  kept once, from the earlier fold).

The overfitting gap is mean IS APY of the chosen variants minus the stitched OOS APY, where
APY = (E_end / E_start) ^ (365 / days) - 1 as in :mod:`trimtab.engine.results`, E_start the first
OOS run's initial equity, E_end the last one's final equity, days the OOS period.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import pandas as pd

from ..runs import RunClaim
from . import ResearchError
from .folds import make_folds, parse_spec
from .rows import best, failed_row, ok_row, write_parquet
from .sweep import PARQUET, Batch, SweepResult, SweepSpec, clear_partial, finished_summary, wait_released
from .variant import Task

__all__ = ["WalkForward", "run_walk_forward"]


@dataclasses.dataclass
class WalkForward:
    """The walk-forward result.

    Attributes:
        folds: walkforward.parquet's rows; equity: the stitched OOS equity (time-indexed Series);
        oos_apy: stitched OOS APY; mean_is_apy: mean IS APY of the chosen variants; gap: their
        difference (mean_is_apy - oos_apy); stopped: why folds are missing, or None.
    """

    folds: pd.DataFrame
    equity: pd.Series
    oos_apy: float
    mean_is_apy: float
    gap: float
    parquet: Path
    equity_csv: Path
    stopped: str | None = None


def _iso(t) -> str:
    return f"{pd.Timestamp(t):%Y-%m-%dT%H:%MZ}"


def _read_equity(run_dir: Path) -> pd.Series:
    """``time, equity`` of a run's equity.csv, checked (a corrupt file raises ResearchError)."""
    path = Path(run_dir) / "equity.csv"
    try:
        df = pd.read_csv(path, usecols=["time", "equity"])
        idx = pd.to_datetime(df["time"], utc=True)
        eq = pd.to_numeric(df["equity"], errors="raise").astype(float)
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as e:
        raise ResearchError(f"{path} cannot be read as time, equity ({e}); rerun that fold with --resume after removing it") from None
    return pd.Series(eq.to_numpy(), index=pd.DatetimeIndex(idx), name="equity")


def run_walk_forward(spec: SweepSpec, owned: RunClaim, client, progress=None) -> SweepResult:
    """Run the walk-forward of ``spec`` (``spec.walk_forward``) into ``owned.run_dir``; finished
    runs of an earlier, interrupted run of the sweep are read back, never rerun.
    ``progress(done, total, task, row)`` as each backtest finishes (IS and OOS alike)."""
    from .cluster import run_tasks

    is_len, oos_len = parse_spec(spec.walk_forward)
    folds = make_folds(*spec.window, is_len, oos_len, spec.walk_forward)
    root = owned.run_dir
    batches: list[Batch] = []
    for f in folds:
        fdir = root / "folds" / f"fold-{f.k}"
        batches.append(Batch(spec, [spec.task(v, fdir / "variants", f.is_start, f.is_end) for v in spec.variants], fdir / PARQUET))
    owner = {(t.out, t.variant): b for b in batches for t in b.todo}
    todo = [t for b in batches for t in b.todo]
    total = len(todo) + len(folds)
    count = [0]

    def tick(t: Task, row: dict) -> None:
        count[0] += 1
        if progress:
            progress(count[0], total, t, row)

    def done(t: Task, row: dict) -> None:
        owner[(t.out, t.variant)].add(t, row)
        tick(t, row)

    run_tasks(client, todo, done)  # every fold's IS runs at once: none depends on an OOS result

    metric = spec.metric
    by_id = {v.id: v for v in spec.variants}
    rows: list[dict] = []
    legs: list[tuple[float, float, float]] = []  # (initial, final, days) per OOS run
    curves: list[pd.Series] = []
    stopped = None
    capital = None
    wf_parquet = root / "walkforward.parquet"
    for f, batch in zip(folds, batches):
        chosen = best(batch.frame(), metric, 1)
        if chosen.empty:
            stopped = f"fold {f.k}: no in-sample variant finished with a value of {metric}; later folds not run"
            break
        is_row = chosen.iloc[0]
        v = by_id[is_row["variant"]]
        task = spec.task(v, root / "folds" / f"fold-{f.k}" / "oos", f.oos_start, f.oos_end, capital)
        wait_released(task.run_dir)
        summary = finished_summary(task.run_dir)
        if summary is not None:
            oos = ok_row(task.variant, task.params, summary, task.run_dir)
            tick(task, oos)
        else:
            clear_partial(task.run_dir)
            got: list[dict] = []
            run_tasks(client, [task], lambda t, r: (got.append(r), tick(t, r)))
            oos = got[0] if got else failed_row(task.variant, task.params, "not run", task.run_dir, task.start, task.end)
            summary = finished_summary(task.run_dir) if oos["status"] == "ok" else None
        rows.append({
            "fold": f.k, "is_start": _iso(f.is_start), "is_end": _iso(f.is_end), "oos_start": _iso(f.oos_start),
            "oos_end": _iso(f.oos_end), "variant": v.id, **{f"param.{n}": x for n, x in task.params.items()},
            f"is_{metric}": float(is_row[metric]), f"oos_{metric}": float(oos[metric]),
            "is_apy": float(is_row["apy"]), "oos_apy": float(oos["apy"]), "oos_final_equity": float(oos["final_equity"]),
            "run_dir": str(task.run_dir),
        })
        _write_folds(rows, wf_parquet)
        if summary is None:
            stopped = f"fold {f.k}: the out-of-sample run of {v.id} failed ({oos['error']}); later folds not run"
            break
        initial = float(summary.get("initial_equity", float("nan")) or float("nan"))
        legs.append((initial, float(oos["final_equity"]), (f.oos_end - f.oos_start).total_seconds() / 86400))
        curves.append(_read_equity(task.run_dir))
        capital = float(oos["final_equity"])  # the next fold starts where this one ended
    frame = _write_folds(rows, wf_parquet)
    equity = pd.concat(curves) if curves else pd.Series(dtype=float, name="equity")
    equity = equity[~equity.index.duplicated(keep="first")]
    equity_csv = root / "walkforward_equity.csv"
    tmp = equity_csv.with_name(f".{equity_csv.name}.{os.getpid()}")
    equity.rename_axis("time").rename("equity").to_frame().to_csv(tmp)
    os.replace(tmp, equity_csv)
    oos_apy = float("nan")
    if legs and legs[0][0] > 0 and legs[-1][1] > 0:
        days = sum(d for _, _, d in legs)
        oos_apy = (legs[-1][1] / legs[0][0]) ** (365 / days) - 1
    chosen_is = [r["is_apy"] for r in rows if math.isfinite(r["is_apy"])]
    mean_is = sum(chosen_is) / len(chosen_is) if chosen_is else float("nan")
    wf = WalkForward(frame, equity, oos_apy, mean_is, mean_is - oos_apy, wf_parquet, equity_csv, stopped)
    # Every in-sample row of every fold (the folds' own sweep.parquet files hold them by fold).
    every = pd.concat([b.frame() for b in batches], ignore_index=True)
    return SweepResult(owned.run_id, root, None, every, sum(b.reused for b in batches), wf)


def _write_folds(rows: list[dict], path: Path) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    write_parquet(df, path)
    return df
