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

:func:`aave_balances` turns the scaled Aave balances of ``final_positions`` (book units) into
underlying token units with the reserve index at the end (``final_aave``).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

import json
import sqlite3
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

#: A JSON number, or a non-finite float as written by ``jsonable``.
Num = Union[float, Literal["nan", "inf", "-inf"]]

KINDS = ("strategy", "drift_basket", "portfolio")
SHARED_KEYS = ("kind", "name", "share_class", "start", "end", "initial_equity", "final_equity", "net_flows", "apy", "apr",
               "max_drawdown", "sharpe", "final_nav", "attribution", "reconciliation_error", "positions_match_fills", "run_dir")


class SummaryBase(BaseModel):
    """The keys every run summary has, whatever its kind."""

    # Built on first use (schema, validate): a run only amends its summary dict, and building
    # these four models at import was ~7 ms of every `trimtab run`'s start.
    model_config = ConfigDict(extra="allow", defer_build=True)

    kind: str = Field(description='Run kind: "strategy", "drift_basket" or "portfolio".')
    name: str = Field(description="Name of the strategy (its mode) or of the portfolio.")
    share_class: str = Field(description="Share class every money amount is in (USDT or ETH).")
    start: str = Field(description="First tick of the run (ISO-8601 UTC).")
    end: str = Field(description="Last tick of the run (ISO-8601 UTC).")
    initial_equity: Num = Field(description="Capital at the start (share class).")
    final_equity: Num = Field(description="Equity at the last tick, marked to market (share class).")
    net_flows: Num = Field(description="External capital flows in minus out over the run (share class); "
                                       "0 for a portfolio, whose sleeves' flows stay inside it.")
    apy: Num = Field(description="Annual percentage yield, compounded, of NAV per unit (fraction per year).")
    apr: Num = Field(description="Annual percentage rate, simple, of NAV per unit (fraction per year).")
    max_drawdown: Num = Field(description="Largest fall of NAV per unit from its running peak (fraction).")
    sharpe: Num = Field(description="Sharpe ratio of daily NAV returns, annualised with sqrt(365) (dimensionless).")
    final_nav: Num = Field(description="NAV per unit at the last tick (1.0 at the start; dimensionless).")
    attribution: dict[str, Num] = Field(description="P&L by category over the run (share class).")
    reconciliation_error: Num = Field(description="Largest absolute mismatch between the attributed P&L and the equity "
                                                  "change (share class); for a portfolio the largest of its sleeves' "
                                                  "errors and its own pnl/attribution mismatches.")
    positions_match_fills: bool = Field(description="True when the positions equal the sum of the fills "
                                                    "(for a portfolio: in every sleeve).")
    run_dir: str = Field(description="Folder of the run (summary.json, equity.csv, journal).")


class StrategySummary(SummaryBase):
    """Summary of one strategy run (``kind: strategy``)."""

    kind: Literal["strategy"] = Field(description='"strategy".')
    mode: str = Field(description="Strategy name (same as ``name``; kept for older readers).")
    flows: list[dict[str, Any]] = Field(description="Capital flow log: deposits, withdrawal requests, payouts (amounts in share class).")
    rewards_received: dict[str, Any] = Field(description="Rewards paid out by venues, by token (token units).")
    transitions: int = Field(description="State machine transitions taken (count).")
    plans: int = Field(description="Execution plans attempted (count).")
    failed_plans: int = Field(description="Execution plans that failed (count).")
    last_plan_failure: Optional[Any] = Field(description="The last plan failure, or null.")
    instructions: int = Field(description="Venue instructions executed (count).")
    liquidations: int = Field(description="Liquidations suffered (count).")
    final_state: str = Field(description="State machine state at the last tick.")
    final_positions: dict[str, Num] = Field(description="Non-zero book balances at the end, by position key, in book units: "
                                                        "token units, except Aave aToken/debtToken balances, which are scaled "
                                                        "(underlying / reserve index; ``final_aave`` has them in underlying units).")
    final_aave: Optional[dict[str, dict[str, Any]]] = Field(
        default=None, description="Aave positions of ``final_positions`` in underlying units, by position key: ``asset`` "
                                  "(the reserve's token), ``underlying`` (token units = scaled x index), ``scaled`` (book "
                                  "units), ``index`` (the reserve's liquidity or variable borrow index at ``end``, "
                                  "dimensionless) and ``index_field`` (its data field); null where not computed.")
    stale_marks_hours: dict[str, Any] = Field(description="Series marked at a stale price, with the hours (hours).")
    funding_proxies: dict[str, Any] = Field(description="Funding settlements taken from a proxy venue (counts).")
    funding_missing: dict[str, Any] = Field(description="Missing funding settlements (counts).")
    data_gaps: list[dict[str, Any]] = Field(description="Gaps, duplicates and missing required series in the data window.")
    quarantined: Any = Field(description="Series quarantined by the data checks, with tick counts.")
    hedge_gap: dict[str, Any] = Field(description="Delta left unhedged while plans ran (journal table plan_hedge, "
                                                  "trimtab.engine.legrisk.PlanGap): ``max_unhedged_usd`` (USD, |net_delta| x asset "
                                                  "price, max over plans) with its ``plan_id`` and ``time``, ``max_unhedged_hours`` "
                                                  "(the most hours one plan left |delta_drift| above ``drift_threshold``), "
                                                  "``unhedged_hours`` (their sum), ``plans`` (plans submitted).")
    overrides: dict[str, Any] = Field(default_factory=dict,
                                      description="``--set NAME=VALUE`` overrides the run was started with: NAME (a parameter "
                                                  "or a dotted config path) -> the value as read from YAML; {} without any.")
    costs: dict[str, Any] = Field(description="Trading costs by route (trimtab.venues.costs.costs_block): ``multiplier`` (on "
                                              "spread + slippage), ``routes`` {route: {fee, slippage, price (pool vs valuation price), "
                                              "gas (share class, positive = paid), fills (count)}}, ``total`` {fee, slippage, price, gas}.")


class DriftBasketSummary(StrategySummary):
    """Summary of a ``token_weights`` basket run (``kind: drift_basket``): a strategy summary plus ``drift``."""

    kind: Literal["drift_basket"] = Field(description='"drift_basket".')
    drift: dict[str, Any] = Field(description="Drift block: rebalance log, alerts, final weights and drift "
                                              "(weights and drift as fractions; see DriftTracker.summary).")


class PortfolioSummary(SummaryBase):
    """Summary of a portfolio of strategies (``kind: portfolio``)."""

    kind: Literal["portfolio"] = Field(description='"portfolio".')
    portfolio: str = Field(description="Portfolio name (same as ``name``; kept for older readers).")
    ticks: int = Field(description="Ticks simulated (count).")
    pnl: Num = Field(description="final_equity - initial_equity (share class).")
    final_cash: Num = Field(description="Portfolio cash outside the sleeves at the end (share class).")
    allocation: dict[str, Any] = Field(description="Allocation settings of the config.")
    limits: dict[str, Any] = Field(description="Portfolio limits of the config.")
    parameters: dict[str, Any] = Field(description="Portfolio parameters.")
    final_state: str = Field(description="Portfolio state machine state at the last tick.")
    final_metrics: dict[str, Any] = Field(description="Portfolio metrics at the last tick.")
    sleeves: dict[str, dict[str, Any]] = Field(description="Per-sleeve results (equity and pnl in share class, weights "
                                                           "and returns as fractions), by sleeve id.")
    correlation: dict[str, Any] = Field(description="Correlation of the sleeves' daily NAV returns (-1..1).")
    reconciliation: dict[str, Any] = Field(description="Portfolio reconciliation: pnl vs sleeve pnl, attribution vs pnl, "
                                                       "cash check (share class), positions_match_fills, ok.")
    reallocations: dict[str, Any] = Field(description="Reallocations: count, by status, by trigger, moved (share class), history.")
    limit_events: list[Any] = Field(description="Limit breaches and the actions taken.")
    transitions: int = Field(description="Portfolio state machine transitions taken (count).")


Summary = Annotated[Union[StrategySummary, DriftBasketSummary, PortfolioSummary], Field(discriminator="kind")]


def json_schema() -> dict:
    """JSON Schema (draft 2020-12 body) of a run summary, generated from the models."""
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
