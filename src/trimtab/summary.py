"""The run summary: one schema for every run kind (``trimtab run CONFIG --json``, ``summary.json``).

Every summary has the shared keys of :class:`SummaryBase`; ``kind`` says which run produced it
and which kind-specific keys come with it:

* ``"strategy"`` -- one strategy (:class:`StrategySummary`, from
  :meth:`trimtab.engine.kernel.Engine.finish`);
* ``"drift_basket"`` -- a ``token_weights`` basket (:class:`DriftBasketSummary`: a strategy
  summary plus the ``drift`` block of :meth:`trimtab.portfolio.drift.DriftTracker.summary`);
* ``"portfolio"`` -- a portfolio of strategies (:class:`PortfolioSummary`, from
  :meth:`trimtab.portfolio.runner.PortfolioRunner.finish`).

Units: money is in the run's share class (``share_class``: USDT or ETH); rates and drawdowns are
fractions (0.05 = 5%); times are ISO-8601 UTC strings. Non-finite numbers are written as the
strings ``"nan"``, ``"inf"``, ``"-inf"`` (:func:`trimtab.engine.journal.jsonable`).
``schema/summary.schema.json`` is generated from these models (``trimtab schema --out schema/``).
Summaries may carry further keys (e.g. ``audit``, ``unpaid_withdrawals`` added by the CLI).
The models live in :mod:`trimtab.summary_models`, imported on first use (``trimtab.summary.StrategySummary``
works as before): a run only amends its summary dict (:func:`amend_after_run`).

:func:`aave_balances` turns the scaled Aave balances of ``final_positions`` (book units) into
underlying token units with the reserve index at the end (``final_aave``).
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

KINDS = ("strategy", "drift_basket", "portfolio")
SHARED_KEYS = ("kind", "name", "share_class", "start", "end", "initial_equity", "final_equity", "net_flows", "apy", "apr",
               "max_drawdown", "sharpe", "final_nav", "attribution", "reconciliation_error", "positions_match_fills", "run_dir")


#: Names of :mod:`trimtab.summary_models` this module gives on first read (:func:`__getattr__`).
_MODELS = frozenset(("Num", "SummaryBase", "StrategySummary", "DriftBasketSummary", "PortfolioSummary", "Summary"))


def __getattr__(name: str):
    """The summary models (:data:`_MODELS`) as attributes of this module, imported when first read."""
    if name in _MODELS:
        from . import summary_models
        return getattr(summary_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def json_schema() -> dict:
    """JSON Schema (draft 2020-12 body) of a run summary, generated from the models."""
    from pydantic import TypeAdapter

    from .summary_models import Summary

    s = TypeAdapter(Summary).json_schema(mode="validation")
    s.pop("discriminator", None)   # an OpenAPI keyword; ``oneOf`` on the ``kind`` constants does the choosing
    return s


def amend_after_run(summary: dict, run_dir: str | Path | None, audit_errors: list) -> float:
    """Add what a run's caller knows after the run to ``summary`` (in place): the audit errors
    the run was allowed to go on with (``audit.allowed_errors``) and the withdrawals its flows
    asked for but the equity could not pay (``unpaid_withdrawals``, share class). When anything
    was added and ``run_dir`` is given, ``summary.json`` and the journal's ``summary`` meta are
    rewritten so every reader sees the same summary (``trimtab run`` and each sweep variant).

    Returns the unpaid amount (0.0 when every withdrawal was paid), for the caller to warn about.
    Raises OSError / sqlite3.DatabaseError when the run directory cannot be written.
    """
    from .diagnostics import to_json
    from .engine.flows import unpaid_withdrawals
    from .engine.journal import dumps, jsonable
    from .secrets import scrubbing

    changed = False
    if audit_errors:
        summary["audit"] = {"allowed_errors": [to_json(f) for f in audit_errors]}
        changed = True
    unpaid = unpaid_withdrawals(summary.get("flows") or [])
    if unpaid:
        summary["unpaid_withdrawals"] = unpaid
        changed = True
    if not changed or not run_dir:
        return unpaid
    run_dir = Path(run_dir)
    (run_dir / "summary.json").write_text(json.dumps(jsonable(summary), indent=2, default=str))
    journal = run_dir / "journal.sqlite"
    if journal.exists():
        db = scrubbing(sqlite3.connect(journal))
        try:
            with db:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", ("summary", dumps(summary)))
        finally:
            db.close()
    return unpaid


def validate(summary: dict) -> None:
    """Raise pydantic.ValidationError if ``summary`` (as written, after ``jsonable``) does not fit."""
    from pydantic import TypeAdapter

    from .summary_models import Summary

    TypeAdapter(Summary).validate_python(summary)


# --------------------------------------------------------------------------- Aave balances
#: Position types whose book balance is scaled by a reserve index (Aave v3 aTokens and debt tokens).
SCALED_TYPES = ("aToken", "debtToken")


def is_scaled(key: str) -> bool:
    """True for a position key ``venue:type:symbol`` held as a scaled balance (Aave)."""
    parts = key.split(":")
    return len(parts) == 3 and parts[1] in SCALED_TYPES


def index_fields(journal: str | Path) -> dict[str, str]:
    """Position key -> the data field of the reserve index its fills were priced with (the
    fills' ``price_field`` ending in ``_index``), from a run's ``journal.sqlite``; the latest
    fill wins. Keys without such a fill are absent. A leg list that is not JSON is skipped."""
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT price_field, legs FROM fills WHERE price_field LIKE '%\\_index' ESCAPE '\\' "
                          "ORDER BY fill_id").fetchall()
    finally:
        db.close()
    out: dict[str, str] = {}
    for field, legs in rows:
        try:
            keys = [leg[0] for leg in json.loads(legs) if isinstance(leg, list) and leg and isinstance(leg[0], str)]
        except (TypeError, ValueError, RecursionError):
            continue
        for k in keys:
            if is_scaled(k):
                out[k] = field
    return out


def aave_balances(positions: dict[str, Any], journal: str | Path, at: str, data_dir: str | Path | None = None) -> dict[str, dict]:
    """The Aave positions of ``positions`` (book units, e.g. a summary's ``final_positions``) in
    underlying units at time ``at`` (ISO UTC, e.g. the summary's ``end``).

    Aave v3 books a supply or a debt as a scaled balance; the token amount is scaled x the
    reserve's index at that time (liquidity index for aTokens, variable borrow index for debt
    tokens; Aave v3 ``ScaledBalanceTokenBase.balanceOf``). The index field comes from the run's
    fills (:func:`index_fields`), its value from the market data bundle (``data_dir``, default
    the bundled data) at ``at``, accrued as the engine reads it (:mod:`trimtab.data.accrual`).

    Returns ``{key: {"asset", "scaled", "index", "index_field", "underlying"}}``; ``index`` and
    ``underlying`` are None when the index is unknown (no priced fill, the series not in the
    data, or no value at ``at``). Raises sqlite3.DatabaseError for an unreadable journal.
    """
    from .data.feed import DataError, load_market_data
    from .data.market import series_of

    scaled = {k: float(v) for k, v in positions.items() if is_scaled(k) and isinstance(v, (int, float))}
    if not scaled:
        return {}
    fields = index_fields(journal) if Path(journal).is_file() else {}
    values: dict[str, float] = {}
    wanted = sorted({fields[k] for k in scaled if k in fields})
    if wanted:
        try:
            data = load_market_data(data_dir, start=at, end=at, series=sorted({series_of(f) for f in wanted}))
            for f in wanted:
                col = data.field(f)
                if len(col) and col[-1] == col[-1]:  # NaN: no value at that time
                    values[f] = float(col[-1])
        except (DataError, KeyError, ValueError):
            pass  # left without an index: shown scaled, never guessed
    out = {}
    for k, q in sorted(scaled.items()):
        f = fields.get(k)
        i = values.get(f) if f else None
        sym = k.split(":")[2]
        asset = sym[4:] if sym.startswith("debt") else sym[1:] if sym.startswith("a") else sym
        out[k] = {"asset": asset, "scaled": q, "index": i, "index_field": f, "underlying": None if i is None else q * i}
    return out
