"""The lines a report's risk charts are drawn against: :func:`run_thresholds` -> :class:`Thresholds`.

* **Rule thresholds**, as the run compared them: every comparison of every rule in the rule trace
  of the run's first tick (:func:`trimtab.explain.tick_trace`: stored, or recomputed exactly from
  the journal's rules and parameters), grouped by the metric it reads (``health_factor < 1.08``
  of ``health_factor_critical``). Parameters are folded in as constants, so the value is the
  run's own, ``--set`` overrides included. A portfolio's come from the first decision's trace in
  ``portfolio.sqlite``.
* **Protocol levels**: Aave's liquidation at health factor 1.0; the LTV at which it liquidates,
  the collateral's liquidation threshold (eMode category when the loop uses one), and the loop's
  max LTV, from the venue files of the run's config (:func:`trimtab.templates.leveraged_stake.loop_risk`);
  if the config cannot be loaded any more, the threshold the run itself implies, median of
  health_factor x ltv (Aave v3: HF = collateral x LT / debt and LTV = debt / collateral, so
  HF x LTV = LT for one collateral). Each perp venue's maintenance margin ratio: the
  maintenance rate of the smallest risk-limit bracket of the instrument traded
  (``perp.risk_limits`` in the venue YAML, :mod:`trimtab.venues.margin`), below which the
  exchange liquidates the account.
"""
from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from ..explain import RunError, tick_trace
from .rundata import LoadedRun

#: Aave v3 liquidates a position whose health factor falls below 1.0.
AAVE_LIQUIDATION_HF = 1.0


@dataclass(frozen=True)
class Line:
    """One horizontal line on a chart: ``value`` in the metric's unit, ``label`` for the legend,
    ``kind`` ``rule`` (a guard of the strategy) or ``protocol`` (where the venue liquidates) or
    ``target`` (the config's target)."""

    label: str
    value: float
    kind: str = "rule"


@dataclass
class Thresholds:
    """``by_metric``: metric name as rules write it (``health_factor``, ``ltv``,
    ``margin_ratio_min``, ``delta_drift``, ``max_drift``, ``portfolio_drawdown``, or
    ``margin_ratio.<venue>``) -> its lines. ``notes``: why a protocol level is missing."""

    by_metric: dict[str, list[Line]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, metric: str, line: Line) -> None:
        """Add ``line`` to ``metric``'s lines unless the same label and value are there already."""
        lines = self.by_metric.setdefault(metric, [])
        if not any(abs(x.value - line.value) < 1e-12 and x.label == line.label for x in lines):
            lines.append(line)

    def get(self, metric: str) -> list[Line]:
        """``metric``'s lines (a copy; empty when it has none)."""
        return list(self.by_metric.get(metric, []))


def _rule_lines(trace: list, th: Thresholds) -> None:
    """Comparisons ``metric op number`` of each rule in ``trace`` (the machine's trace format:
    ``{"rule", "comparisons": [[left, observed, op, threshold, result], ...]}``)."""
    for r in trace if isinstance(trace, list) else []:
        if not isinstance(r, dict):
            continue
        for c in r.get("comparisons") or []:
            if not (isinstance(c, list) and len(c) == 5):
                continue
            left, _, op, thr = c[0], c[1], c[2], c[3]
            if not isinstance(left, str) or isinstance(thr, bool) or not isinstance(thr, (int, float)) or not math.isfinite(thr):
                continue
            metric = left[4:-1] if left.startswith("abs(") and left.endswith(")") else left
            sym = f"|{metric}| {op} " if left.startswith("abs(") else f"{op} "
            th.add(metric, Line(f"{r.get('rule')} ({sym}{thr:g})", float(thr)))
            if left.startswith("abs("):
                th.add(metric, Line(f"{r.get('rule')} ({metric} < -{thr:g})", -float(thr)))


def _strategy_levels(run: LoadedRun, th: Thresholds) -> None:
    meta = _meta(run.journal) if run.journal else {}
    cfg = (meta.get("strategy") or {}).get("config") if isinstance(meta.get("strategy"), dict) else None
    strategy = None
    if isinstance(cfg, str) and Path(cfg).is_file():
        try:
            from ..config.load import load_strategy

            strategy = load_strategy(cfg)
        except Exception as e:  # noqa: BLE001 - extras only: the report works from the run's files alone
            th.notes.append(f"venue levels not shown: {cfg} does not load any more ({' '.join(str(e).split())[:160]})")
    elif cfg:
        th.notes.append(f"venue levels from the run's data only: its config {cfg} is not found from here")
    eq = run.equity
    if strategy is not None:  # the venue files as they are now; a --set override changes parameters, not venues
        from ..templates.leveraged_stake import loop_risk

        for t in strategy.config.targets:
            if getattr(t, "debt", None) and getattr(t, "collateral", None):
                lr = loop_risk(t, strategy.venues, strategy.instruments)
                if lr is not None:
                    th.add("ltv", Line(f"liquidation threshold {lr[2]} ({lr[1].liquidation_threshold:g})", lr[1].liquidation_threshold, "protocol"))
                    th.add("ltv", Line(f"max LTV {lr[2]} ({lr[1].ltv:g})", lr[1].ltv, "protocol"))
        if "target_ltv" in strategy.params:
            v = (meta.get("parameters") or {}).get("target_ltv", strategy.params["target_ltv"])
            if isinstance(v, (int, float)):
                th.add("ltv", Line(f"target_ltv ({v:g})", float(v), "target"))
        held = _traded_symbols(run.journal)
        for col in eq.columns:
            if not col.startswith("margin_ratio.") or col == "margin_ratio_min":
                continue
            venue = col.split(".", 1)[1]
            spec = strategy.venues.get(venue)
            perp = getattr(spec, "perp", None)
            if perp is None:
                continue
            traded = [k for k in perp.risk_limits if (venue, k.split(":")[-1]) in held]
            for key in traded:
                tiers = getattr(perp.risk_limits[key], "tiers", None)
                if tiers:
                    th.add(col, Line(f"maintenance {key.split(':')[-1]} ({tiers[0].mmr:g}, smallest bracket)", tiers[0].mmr, "protocol"))
    if "ltv" in eq and "health_factor" in eq and not any(x.kind == "protocol" for x in th.get("ltv")):
        implied = (eq["health_factor"] * eq["ltv"]).replace([math.inf, -math.inf], math.nan).dropna()
        implied = implied[eq.loc[implied.index, "ltv"] > 0]
        if len(implied):
            lt = float(implied.median())
            th.add("ltv", Line(f"liquidation threshold, implied HF x LTV ({lt:.4g})", lt, "protocol"))


def _traded_symbols(journal: Path | None) -> set[tuple[str, str]]:
    """(venue, symbol) of every perp the run held: a nonzero ``liquidation_price.<venue>.<symbol>``
    on some tick of the journal's metrics (docs/journal.md)."""
    if journal is None:
        return set()
    from ..engine.journal import metric_names, quote

    out = set()
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
        try:
            for name in metric_names(db):
                parts = name.split(".")
                if parts[0] == "liquidation_price" and len(parts) == 3:
                    # typeof: a column added after the first ticks reads '' on those (not a price)
                    hit = db.execute(f"SELECT 1 FROM metrics WHERE typeof({quote(name)}) = 'real' AND {quote(name)} > 0 LIMIT 1").fetchone()
                    if hit:
                        out.add((parts[1], parts[2]))
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return set()
    return out


def _meta(journal: Path) -> dict:
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
        try:
            out = {}
            for k, v in db.execute("SELECT key, value FROM meta"):
                try:
                    out[k] = json.loads(v)
                except (TypeError, ValueError):
                    continue
            return out
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return {}


def run_thresholds(run: LoadedRun) -> Thresholds:
    """The chart lines of ``run`` (see the module docstring). Never raises for a run that
    :func:`~trimtab.reports.rundata.load_run` accepted: what cannot be found is left out and said
    in ``notes``."""
    th = Thresholds()
    if "health_factor" in run.equity:
        th.add("health_factor", Line(f"Aave liquidation (HF {AAVE_LIQUIDATION_HF:g})", AAVE_LIQUIDATION_HF, "protocol"))
    if run.kind == "portfolio":
        db_path = run.run_dir / "portfolio.sqlite"
        try:
            db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
            try:
                row = db.execute("SELECT rules FROM decisions ORDER BY tick LIMIT 1").fetchone()
            finally:
                db.close()
            _rule_lines(json.loads(row[0]) if row and isinstance(row[0], str) else [], th)
        except (sqlite3.DatabaseError, ValueError) as e:
            th.notes.append(f"rule thresholds not shown: {db_path} ({e})")
        return th
    if run.journal is not None and not run.states.empty:
        try:
            _rule_lines(tick_trace(run.journal, 0), th)
        except (RunError, sqlite3.DatabaseError, ValueError, KeyError, TypeError) as e:
            th.notes.append(f"rule thresholds not shown: the journal's rule trace cannot be rebuilt ({e})")
    _strategy_levels(run, th)
    return th
