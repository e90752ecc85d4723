"""A sweep: every variant of a grid backtested on Dask, into ``<out>/<sweep-id>/``.

Layout::

    <out>/<sweep-id>/sweep.json        config, grid, metric, window, the variants and their overrides
    <out>/<sweep-id>/sweep.parquet     one row per variant (trimtab.research.rows), rewritten as each finishes
    <out>/<sweep-id>/variants/<id>/    each variant's run directory (summary.json, equity.csv, journal)

The sweep directory is owned by one process (:func:`trimtab.runs.claim`: a lock held for the
sweep's life). ``resume=True`` continues an existing sweep: a variant whose run directory holds a
finished summary is read back, never rerun; the others (failed, interrupted, never started) run.
A resume whose config file or grid differ from ``sweep.json`` is refused, saying what differs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..runs import RunClaim, claim, holder, run_id_problem, unique_run_id
from . import ResearchError
from .grid import GridAxis, Variant, expand, parse_axes
from .rows import check_metric, to_frame, write_parquet
from .variant import JOURNAL_MODES, Task

__all__ = ["Batch", "SweepSpec", "SweepResult", "clear_partial", "finished_summary", "open_sweep", "prepare", "recorded_flags",
           "run_sweep", "wait_released"]

SWEEP_FILE = "sweep.json"
PARQUET = "sweep.parquet"
#: Keys of sweep.json a resume must find unchanged (``metric`` too for a walk-forward, whose
#: out-of-sample runs follow the choice it makes).
_SAME_ON_RESUME = ("config", "config_sha256", "grid", "random", "seed", "window", "walk_forward", "journal",
                   "allow_audit_errors")
#: Files a run that did not finish may have left in its directory: removed before it is rerun.
_PARTIAL = ("journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm", "summary.json", "equity.csv", "owner.json")

Progress = Callable[[int, int, Task, dict], None]


@dataclasses.dataclass
class SweepSpec:
    """What to sweep, checked (:func:`prepare`).

    Attributes:
        config: the strategy config (absolute path); name: the strategy's name.
        axes, variants: the grid (:mod:`trimtab.research.grid`); random, seed: ``--random``/``--seed``.
        start, end: the window asked for (UTC, None: the config's default); window: the resolved
            window of the config (UTC), what walk-forward folds divide.
        metric: the metric ranked by (:data:`trimtab.research.rows.DIRECTION`).
        journal: variant journal mode (:data:`trimtab.research.variant.JOURNAL_MODES`).
        walk_forward: the ``IS:OOS`` spec, or None.
    """

    config: Path
    name: str
    axes: list[GridAxis]
    variants: list[Variant]
    random: int | None
    seed: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    window: tuple[pd.Timestamp, pd.Timestamp]
    metric: str
    journal: str = "metrics"
    allow_audit_errors: bool = False
    walk_forward: str | None = None
    data_dir: str | None = None

    @property
    def param_names(self) -> list[str]:
        """The swept names, in flag order."""
        return [a.name for a in self.axes]

    @property
    def numeric(self) -> dict[str, bool]:
        """``{name: whether its param.<name> column is float}``."""
        return {a.name: a.numeric for a in self.axes}

    def params(self, v: Variant) -> dict:
        """``{name: column value}`` of variant ``v``."""
        return {a.name: a.column(v.values[a.name]) for a in self.axes}

    def task(self, v: Variant, out: Path, start=None, end=None, capital: float | None = None) -> Task:
        """The backtest of variant ``v`` over [start, end] (default: the window asked for) into ``out/<v.id>``."""
        start = self.start if start is None else start
        end = self.end if end is None else end
        return Task(v.id, self.params(v), str(self.config), tuple(v.sets), _iso(start), _iso(end), str(Path(out).resolve()),
                    capital=capital, journal=self.journal, allow_audit_errors=self.allow_audit_errors, data_dir=self.data_dir)

    def record(self) -> dict:
        """sweep.json's content."""
        return {
            "kind": "sweep",
            "config": str(self.config),
            "config_sha256": _sha256(self.config),
            "name": self.name,
            "grid": [f"{a.name}={a.spec}" for a in self.axes],
            "random": self.random,
            "seed": self.seed,
            "metric": self.metric,
            "window": {"start": _iso(self.start), "end": _iso(self.end),
                       "resolved_start": _iso(self.window[0]), "resolved_end": _iso(self.window[1])},
            "walk_forward": self.walk_forward,
            "journal": self.journal,
            "allow_audit_errors": self.allow_audit_errors,
            "variants": [{"id": v.id, "overrides": v.values} for v in self.variants],
        }


def _iso(t) -> str | None:
    return None if t is None else pd.Timestamp(t).isoformat()


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def prepare(config: Path, grid: list[str], *, random: int | None = None, seed: int = 0, start=None, end=None,
            metric: str = "apy", journal: str = "metrics", allow_audit_errors: bool = False,
            walk_forward: str | None = None, data=None, data_dir: Path | None = None) -> SweepSpec:
    """Check everything a sweep needs before anything runs and return its :class:`SweepSpec`.

    Every value of every ``--grid`` axis (an interval's two ends) is loaded as
    ``load_strategy(config, overrides=["NAME=value"])``, the check ``trimtab run --set`` makes,
    so a bad name or value is refused now, naming its ``--grid`` flag. Combinations that only
    fail together fail their own variants at run time.

    Args:
        start, end: the window (anything :func:`trimtab.timeutil.utc` reads; None: the config's).
        data: preloaded market data (used here only: workers load their own).
        data_dir: the data directory every task loads (default: ``TRIMTAB_DATA`` if set, else
            the bundle), passed to the workers by path.

    Raises:
        ConfigError: the config itself does not load.
        ResearchError: a bad ``--grid``/``--random``/``--metric``/``--journal``/``--walk-forward``
            (``flag`` says which); a grid value the config refuses.
        DataError: the window is outside the config's data.
    """
    from ..config.load import load_strategy
    from ..config.overrides import format_issue
    from ..data.feed import load_market_data
    from ..engine.window import resolve_window
    from ..errors import ConfigError
    from ..timeutil import utc

    check_metric(metric)
    if journal not in JOURNAL_MODES:
        raise ResearchError(f"--journal: {journal!r} is not a sweep journal mode; use one of: {', '.join(JOURNAL_MODES)}",
                            "--journal")
    axes = parse_axes(grid)
    variants = expand(axes, random, seed)
    if walk_forward is not None:
        from .folds import parse_spec

        parse_spec(walk_forward)
    config = Path(config).resolve()
    base = load_strategy(config)
    for a in axes:
        for v in a.values or (repr(a.low), repr(a.high)):
            try:
                load_strategy(config, overrides=[f"{a.name}={v}"])
            except ConfigError as e:
                why = "; ".join(format_issue(i).removeprefix(f"--set {a.name}={v}: ") for i in e.issues)
                raise ResearchError(f"{a.flag}: value {v} is refused: {why}", "--grid") from None
    # The data directory in force here (``trimtab --data DIR`` exports it as TRIMTAB_DATA) goes
    # with every task: workers of an existing cluster do not share this process's environment.
    if data_dir is None and os.environ.get("TRIMTAB_DATA"):
        data_dir = Path(os.environ["TRIMTAB_DATA"])
    data = data or load_market_data(data_dir)
    start, end = utc(start), utc(end)
    window = resolve_window(base, data, start, end)
    return SweepSpec(config, base.name, axes, variants, random, seed, start, end, window, metric, journal, allow_audit_errors,
                     walk_forward, None if data_dir is None else str(Path(data_dir).resolve()))


def open_sweep(spec: SweepSpec, out: Path, sweep_id: str | None, resume: bool) -> RunClaim:
    """Own the sweep directory (:func:`trimtab.runs.claim`) and write, or on ``resume`` check,
    its sweep.json. Hold the returned claim for the sweep's life.

    Raises:
        ResearchError: a bad ``--sweep-id``; a new sweep on an existing one (use ``resume``);
            ``resume`` of no sweep, or of one whose sweep.json is unreadable or differs (listing
            every difference); RunError: another process owns the sweep.
    """
    out = Path(out)
    if sweep_id is not None:
        why = run_id_problem(sweep_id)
        if why is not None:
            raise ResearchError(f"--sweep-id: {why}", "--sweep-id")
        d = out / sweep_id
        if not resume and d.exists() and any(d.iterdir()):
            raise ResearchError(f"sweep {sweep_id} already exists in {out}: continue it with --resume, or pick another --sweep-id",
                                "--sweep-id")
        if resume and not (d / SWEEP_FILE).is_file():
            raise ResearchError(f"no sweep {sweep_id} in {out} to resume (no {SWEEP_FILE})", "--resume")
    elif resume:
        raise ResearchError("names the sweep to continue: add --sweep-id ID", "--resume")
    owned = claim(out, sweep_id, new_id=lambda: unique_run_id(out, spec.name, *spec.window, prefix="sweep-"), resume=resume,
                  flag="--sweep-id")
    try:
        path = owned.run_dir / SWEEP_FILE
        new = spec.record()
        if resume:
            old = _read_record(path)
            diff = [f"{k}: sweep.json has {json.dumps(old.get(k))}, this command {json.dumps(new[k])}"
                    for k in (*_SAME_ON_RESUME, *(("metric",) if spec.walk_forward else ())) if old.get(k) != new[k]]
            if diff:
                raise ResearchError(f"sweep {owned.run_id} is not resumed, it differs from this command: " + "; ".join(diff)
                                    + " (rerun with the sweep's own flags, or start a new sweep)", "--resume")
        else:
            tmp = path.with_name(f".{SWEEP_FILE}.{os.getpid()}")
            tmp.write_text(json.dumps(new, indent=2))
            os.replace(tmp, path)
    except BaseException:
        owned.release()
        raise
    return owned


def recorded_flags(out: Path, sweep_id: str) -> dict:
    """The flags sweep ``sweep_id`` under ``out`` was started with, read from its sweep.json:
    ``{"grid", "random", "seed", "start", "end", "metric", "journal", "allow_audit_errors",
    "walk_forward"}`` (what ``trimtab sweep CONFIG --resume --sweep-id ID`` without ``--grid``
    continues with).

    Raises:
        ResearchError: (flag ``--resume``) no sweep.json there, or one that is unreadable or
            whose values do not have the types it is written with.
    """
    path = Path(out) / sweep_id / SWEEP_FILE
    if not path.is_file():
        raise ResearchError(f"no sweep {sweep_id} in {out} to resume (no {SWEEP_FILE})", "--resume")
    rec = _read_record(path)
    window = rec.get("window") if isinstance(rec.get("window"), dict) else {}
    flags = {"grid": rec.get("grid"), "random": rec.get("random"), "seed": rec.get("seed"), "start": window.get("start"),
             "end": window.get("end"), "metric": rec.get("metric"), "journal": rec.get("journal"),
             "allow_audit_errors": rec.get("allow_audit_errors"), "walk_forward": rec.get("walk_forward")}
    ok = (isinstance(flags["grid"], list) and flags["grid"] and all(isinstance(g, str) for g in flags["grid"])
          and (flags["random"] is None or (isinstance(flags["random"], int) and not isinstance(flags["random"], bool)))
          and isinstance(flags["seed"], int) and not isinstance(flags["seed"], bool)
          and all(flags[k] is None or isinstance(flags[k], str) for k in ("start", "end", "walk_forward"))
          and isinstance(flags["metric"], str) and isinstance(flags["journal"], str)
          and isinstance(flags["allow_audit_errors"], bool))
    if not ok:
        raise ResearchError(f"{path} does not hold a sweep's flags as trimtab writes them; pass them again "
                            f"(--grid ... with the sweep's own values) to resume it", "--resume")
    return flags


def _read_record(path: Path) -> dict:
    """sweep.json as written by :meth:`SweepSpec.record` (read back as possibly corrupt)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ResearchError(f"{path} cannot be read ({e}); this sweep cannot be resumed: start a new one", "--resume") from None
    if not isinstance(data, dict) or data.get("kind") != "sweep":
        raise ResearchError(f"{path} is not a sweep record; this sweep cannot be resumed: start a new one", "--resume")
    return data


class Batch:
    """Tasks whose rows make one ``sweep.parquet``: a run that already finished is read back
    (never rerun), the rest are to run (:attr:`todo`); :meth:`add` takes each new row and
    rewrites the parquet, so an interrupt keeps every finished row."""

    def __init__(self, spec: SweepSpec, tasks: list[Task], parquet: Path):
        from .rows import ok_row

        self.spec, self.tasks, self.parquet = spec, tasks, Path(parquet)
        self.rows: dict[str, dict] = {}
        self.todo: list[Task] = []
        for t in tasks:
            wait_released(t.run_dir)
            summary = finished_summary(t.run_dir)
            if summary is not None:
                self.rows[t.variant] = ok_row(t.variant, t.params, summary, t.run_dir)
            else:
                clear_partial(t.run_dir)
                self.todo.append(t)
        self.reused = len(self.rows)
        self.write()

    def add(self, task: Task, row: dict) -> None:
        """Record ``row`` for ``task`` and rewrite the parquet."""
        self.rows[task.variant] = row
        self.write()

    def frame(self) -> pd.DataFrame:
        """The rows so far, in the tasks' (grid) order, with the contract's columns."""
        rows = [self.rows[t.variant] for t in self.tasks if t.variant in self.rows]
        return to_frame(rows, self.spec.param_names, self.spec.numeric)

    def write(self) -> None:
        """Rewrite the parquet from the rows so far (whole or not at all)."""
        self.parquet.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(self.frame(), self.parquet)


def finished_summary(run_dir: Path) -> dict | None:
    """The summary of the finished run in ``run_dir``, or None: a run is finished when its
    summary.json reads back as one (:func:`trimtab.research.rows.read_summary`), its equity.csv
    (written after the summary) exists, and no process holds its lock any more."""
    from .rows import read_summary

    summary = read_summary(run_dir)
    if summary is None or not (Path(run_dir) / "equity.csv").is_file() or holder(run_dir) is not None:
        return None
    return summary


def wait_released(run_dir: Path, timeout_s: float = 300.0) -> None:
    """Wait until no process holds ``run_dir``'s lock. Under the sweep's own lock, a holder can
    only be a worker of an interrupted run of this sweep still finishing its task (Dask cannot
    stop a running task), so it is waited for, and what it finishes is then kept.

    Raises:
        ResearchError: still held after ``timeout_s`` seconds (naming the pid).
    """
    import time

    deadline = time.monotonic() + timeout_s
    while (owner := holder(run_dir)) is not None:
        if time.monotonic() > deadline:
            raise ResearchError(f"variant {Path(run_dir).name} is still being run by pid {owner.get('pid')} after "
                                f"{timeout_s:.0f} s: stop that process, then --resume again", "--resume")
        time.sleep(0.5)


def clear_partial(run_dir: Path) -> None:
    """Remove what an unfinished run left in ``run_dir`` so it can run again; refused while a
    process still owns it (its lock is held)."""
    if not run_dir.is_dir():
        return
    owner = holder(run_dir)
    if owner is not None:
        raise ResearchError(f"variant {run_dir.name} is still being run by pid {owner.get('pid')}: stop that sweep first",
                            "--resume")
    for name in _PARTIAL:
        (run_dir / name).unlink(missing_ok=True)


@dataclasses.dataclass
class SweepResult:
    """A finished (or interrupted-then-returned) sweep.

    Attributes:
        sweep_id, sweep_dir: where it is; parquet: its sweep.parquet (None for a walk-forward,
            whose rows are per fold, ``folds/fold-<k>/sweep.parquet``); frame: the rows
            (:mod:`trimtab.research.rows`; a walk-forward's: every fold's in-sample rows);
        reused: variants read back from an earlier run of the sweep (``--resume``), not rerun;
        walk_forward: the walk-forward result (:class:`trimtab.research.walkforward.WalkForward`) or None.
    """

    sweep_id: str
    sweep_dir: Path
    parquet: Path | None
    frame: pd.DataFrame
    reused: int
    walk_forward: object | None = None


def run_sweep(spec: SweepSpec, owned: RunClaim, client, progress: Progress | None = None) -> SweepResult:
    """Run every variant of ``spec`` over its window on ``client``'s workers, into
    ``owned.run_dir/variants/`` (the rows in ``sweep.parquet``); variants already finished are
    read back. ``progress(done, total, task, row)`` is called as each variant finishes
    (``total`` counts only the variants run now)."""
    sweep_dir = owned.run_dir
    tasks = [spec.task(v, sweep_dir / "variants") for v in spec.variants]
    batch = Batch(spec, tasks, sweep_dir / PARQUET)
    count = [0]

    def done(t: Task, row: dict) -> None:
        batch.add(t, row)
        count[0] += 1
        if progress:
            progress(count[0], len(batch.todo), t, row)

    from .cluster import run_tasks

    run_tasks(client, batch.todo, done)
    return SweepResult(owned.run_id, sweep_dir, batch.parquet, batch.frame(), batch.reused)
