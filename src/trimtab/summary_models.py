"""The pydantic models of the run summary (:mod:`trimtab.summary`): the JSON Schema
(``schema/summary.schema.json``, :func:`trimtab.summary.json_schema`) and validation
(:func:`trimtab.summary.validate`) come from them.

Apart from :mod:`trimtab.summary` so that a run, which only amends its summary dict
(:func:`trimtab.summary.amend_after_run`), does not build them: defining these models is ~5 ms
of CPU (pydantic collects every field at class creation, even with ``defer_build``).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

#: A JSON number, or a non-finite float as written by ``jsonable``.
Num = Union[float, Literal["nan", "inf", "-inf"]]


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
