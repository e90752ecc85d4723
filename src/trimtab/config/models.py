"""Pydantic models of trimtab's YAML: venues, rules, machines and strategy configs.

Every model forbids unknown fields (``extra="forbid"``) so a misspelt key is an error at its
``file:line:col`` rather than a silently ignored setting. These models check *shape*; the
cross-file references (state, rule, venue, instrument, parameter names) are checked in
:mod:`trimtab.config.load`, before any machine is built.

A field typed :data:`Expr` takes a number or an expression over parameters
(``1 - stake_allocation``), parsed by :mod:`trimtab.rules.expr` and folded to a number when
the strategy is compiled.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from ..data.quality import Bands as _Bands

_BANDS = _Bands()   # the data checks' defaults live with the checks (trimtab.data.quality)

Expr = Union[float, str]


class Strict(BaseModel):
    """Base: unknown fields are errors; models are immutable once loaded. Numbers are strict:
    ``.nan``/``.inf`` are never a setting, and ``true`` or ``"100"`` is not a number (pydantic's
    lax mode would read them as 1.0 and 100.0)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


# --------------------------------------------------------------------------- venues
class InstrumentSpec(Strict):
    """One instrument a venue holds. ``key`` is ``venue:position_type:symbol``.

    ``reserve`` (Aave) names the reserve series (``aave.weETH``); ``mark_field`` and
    ``funding_field`` (perps) name data fields; ``cost_pair`` keys the execution-cost table.
    """

    key: str
    asset: str
    reserve: str | None = None
    mark_field: str | None = None
    funding_field: str | None = None
    cost_pair: str | None = None


class OperationSpec(Strict):
    """An operation a venue supports: gas units by ``gas_op`` (data/static.json gas_units),
    fee in bps of notional, fixed fee in asset units, latency in seconds, minimum notional (USD)."""

    gas_op: str | None = None
    fee_bps: float = Field(0.0, ge=0, lt=10000)
    fee: float = Field(0.0, ge=0)
    latency_s: float = Field(0.0, ge=0)
    min_notional: float = Field(0.0, ge=0)


class AssetPrice(Strict):
    """How an asset is priced in USD: a constant, a USD data field, or an ETH rate field."""

    usd: float | None = None
    usd_field: str | None = None
    eth_rate_field: str | None = None
    delta_asset: str


class EmodeSpec(Strict):
    assets: list[str]
    ltv: float = Field(gt=0, lt=1)
    liquidation_threshold: float = Field(gt=0, lt=1)
    liquidation_bonus: float = Field(ge=0, lt=1)


class ReserveRisk(Strict):
    ltv: float = Field(ge=0, lt=1)
    liquidation_threshold: float = Field(ge=0, lt=1)
    liquidation_bonus: float = Field(ge=0, lt=1)


class LendingRisk(Strict):
    emode: EmodeSpec
    standard: dict[str, ReserveRisk] = {}
    close_factor: float = Field(0.5, gt=0, le=1)
    full_close_health_factor: float = 0.95


class LstSpec(Strict):
    token: str
    rate_field: str
    dex_cost_pair: str


class PerpSpec(Strict):
    maintenance_margin: float = Field(gt=0, lt=1)
    initial_margin: float = Field(gt=0, le=1)
    funding_interval_h: int = Field(gt=0, le=24)
    funding_hours_utc: list[Annotated[int, Field(ge=0, le=23)]] = Field(min_length=1)
    stale_after_h: float = Field(3.0, gt=0)


class PairSpec(Strict):
    """A DEX pair ``BASE/QUOTE``: ``price_field`` (quote units per base; none: the LST oracle
    rate) and ``cost_pair``, the row of the execution-cost table (spread + slippage by size).
    Without ``cost_pair`` the pair has no spread or slippage (a frictionless venue, e.g. for a
    comparison against a zero-cost reference); the venue's ``swap`` fee still applies."""

    price_field: str | None = None
    cost_pair: str | None = None


class VenueSpec(Strict):
    """A venue of ``venues/<name>.yaml``. ``model`` picks the simulated venue model."""

    name: str
    model: Literal["wallet", "aave_v3", "lst", "flash_loan", "bundler", "dex", "cex_perp"]
    description: str = ""
    chain: str | None = None
    atomic: bool = False
    instruments: list[InstrumentSpec] = []
    operations: dict[str, OperationSpec] = {}
    assets: dict[str, AssetPrice] | None = None
    risk: LendingRisk | None = None
    lst: LstSpec | None = None
    perp: PerpSpec | None = None
    pairs: dict[str, PairSpec] | None = None


# --------------------------------------------------------------------------- rules
class ParameterSpec(Strict):
    default: float
    description: str = ""


class RuleSpec(Strict):
    """A named guard: ``when`` is an expression over metrics and parameters."""

    when: str
    description: str = ""
    severity: Literal["info", "warning", "critical"] = "info"
    hysteresis: str | None = None


class RuleFile(Strict):
    """``rules/<group>.yaml``: parameters with defaults, and rules."""

    parameters: dict[str, ParameterSpec] = {}
    rules: dict[str, RuleSpec]


# --------------------------------------------------------------------------- machines
class EmergencyProtocolSpec(Strict):
    """The emergency action's protocol (seed 000): which problems to fix, in ``order``, and where
    to find the money, trying ``sources`` in order. Numbers are parameters or literals."""

    order: list[Literal["margin_critical", "ltv_critical", "imbalance"]] = ["margin_critical", "ltv_critical", "imbalance"]
    sources: list[Literal["wallet", "lending_withdrawal", "unstake", "reduce_position"]] = [
        "wallet", "lending_withdrawal", "unstake", "reduce_position"]
    margin_restore: Expr = "margin_restore"
    hf_floor: Expr = "hf_emergency_leave"


class ActionSpec(Strict):
    """What an action state does on entry: ``target`` plans toward the config's targets (with
    parameter ``overrides``: parameter -> parameter name or number); ``unwind`` plans to zero;
    ``sell_dust`` sells reward tokens into the share class; ``emergency`` runs ``protocol``."""

    kind: Literal["target", "unwind", "sell_dust", "emergency"]
    overrides: dict[str, Expr] = {}
    protocol: EmergencyProtocolSpec | None = None


class StateSpec(Strict):
    description: str = ""
    action: ActionSpec | None = None


class TransitionSpec(Strict):
    """``source`` is a state, a list of states, or ``"*"`` (every state other than ``dest``).
    The transition fires when every rule in ``when`` holds; transitions are tried in order.
    ``overrides`` (parameter -> parameter name or number) apply to the destination's action
    for this transition only, on top of the state's own overrides. With ``yield_check`` the plan
    is first put through the yield-impact analysis and skipped unless it says EXECUTE."""

    trigger: str
    source: Union[str, list[str]]
    dest: str
    when: list[str] = Field(min_length=1)
    overrides: dict[str, Expr] = {}
    yield_check: bool = False
    description: str = ""


class MachineSpec(Strict):
    name: str
    description: str = ""
    initial: str
    states: dict[str, StateSpec]
    transitions: list[TransitionSpec]


# --------------------------------------------------------------------------- strategy configs
class _Target(Strict):
    id: str


class LeveragedStakeTarget(_Target):
    """Stake the asset into an LST and loop it on a lending venue to ``target_ltv``, built and
    resized with one atomic flash-loan bundle. ``lst`` (weETH or wstETH) picks the staking
    venue (the venue whose ``lst.token`` it is) and the collateral ``<lending>:aToken:a<lst>``
    unless ``lst_venue`` / ``collateral`` are given."""

    template: Literal["leveraged_stake"]
    allocation: Expr
    lst: str = "weETH"
    lending_venue: str = "aave_v3"
    collateral: str | None = None
    debt: str
    lst_venue: str | None = None
    flash_venue: str
    bundler: str
    swap_venue: str
    target_ltv: Expr


class StakeTarget(_Target):
    """Hold ``allocation`` of equity staked as an LST in the wallet (unleveraged). Bought by
    staking ETH; sold back to ETH on ``swap_venue`` (the unstake queue is slower)."""

    template: Literal["stake"]
    allocation: Expr
    lst: str = "weETH"
    lst_venue: str | None = None
    swap_venue: str


class LendTarget(_Target):
    """Supply ``allocation`` of equity to a lending venue as ``supply`` (an aToken)."""

    template: Literal["lend"]
    allocation: Expr
    supply: str


class SpotTarget(_Target):
    """Hold ``allocation`` of equity as a spot token on a CEX (``instrument``:
    ``venue:BaseToken:SYMBOL``), bought with that venue's USDT at ``price_field``."""

    template: Literal["spot"]
    allocation: Expr
    instrument: str
    price_field: str
    fee_bps: Expr = 10.0
    cost_pair: str


class SignalSpec(Strict):
    """A signal file (CSV: timestamp, signal long/short/neutral, confidence, sd) and how to
    trade it (seed 001 ``ml_config``)."""

    file: str
    signal_threshold: Expr = 0.7
    max_position_size: Expr = 1.0
    take_profit_sd: Expr = 2.0
    stop_loss_sd: Expr = 2.0
    sd_floor_bps: Expr = 10.0
    sd_cap_bps: Expr = 1000.0


class SignalPerpTarget(_Target):
    """A directional perp position following ``signal``: long or short ``max_position_size`` x
    equity when confidence passes the threshold, flat otherwise, with take-profit and
    stop-loss orders from the signal's sd."""

    template: Literal["signal_perp"]
    instrument: str
    signal: SignalSpec


class HedgeLeg(Strict):
    instrument: str
    weight: Expr


class PerpHedgeTarget(_Target):
    """Short perps against the delta of the ``hedges`` targets, spread over ``legs`` by weight,
    margined with ``allocation`` of equity in the share class."""

    template: Literal["perp_hedge"]
    allocation: Expr
    hedges: list[str] = Field(min_length=1)
    hedge_ratio: Expr = 1.0
    legs: list[HedgeLeg] = Field(min_length=1)


class WalletReserveTarget(_Target):
    """Keep ``amount`` of a token in the wallet (gas money), bought with ``swap_venue``."""

    template: Literal["wallet_reserve"]
    instrument: str
    amount: Expr
    swap_venue: str


class TokenWeight(Strict):
    """One token of a ``token_weights`` basket: held as ``wallet:BaseToken:<token>`` with
    ``weight`` (a fraction of the basket's value; the weights of a basket sum to 1)."""

    token: str
    weight: Expr


class DriftAlertsSpec(Strict):
    """Alerts of a ``token_weights`` basket (seed 002 "Alert Conditions"), each with its own
    cooldown in minutes of simulated time: ``high_drift`` when the largest |drift| passes
    ``high_drift``; ``rebalance_failed`` when a rebalance fails at execution or a trade is not
    sent (slippage guard); ``unusual_gas`` when a rebalance pays a gas price above
    ``gas_multiple`` x the median gas price of the previous ``gas_baseline_h`` hours."""

    high_drift: Expr = "alert_high_drift"
    high_drift_cooldown_min: Expr = "alert_high_drift_cooldown_min"
    failed_cooldown_min: Expr = "alert_failed_cooldown_min"
    gas_multiple: Expr = "alert_gas_multiple"
    gas_cooldown_min: Expr = "alert_gas_cooldown_min"
    gas_baseline_h: Expr = "alert_gas_baseline_h"


class TokenWeightsTarget(_Target):
    """A wallet basket held at target weights (seed 002, the drift rebalancing engine).

    drift = (value - target value) / target value per token, valued at ``price_source``:
    ``ORACLE`` (the wallet's asset prices: CEX closes, USDT = 1) or ``ROUTER`` (the price of
    each token's pair on ``swap_venue``, e.g. the Uniswap WETH/USDT pool). A rebalance pairs
    oversized tokens (sells) with undersized ones (buys) for the exact amounts back to target;
    every trade is a swap against ``quote`` on ``swap_venue`` (ETH -> BTC is two swaps, ETH ->
    USDT -> BTC). A matched trade under ``min_trade_usd`` is skipped, one over
    ``max_trade_usd`` is cut to it; a trade whose output would be under the quoted price x
    (1 - ``slippage_tolerance``) is not sent (logged); a token whose price is older than
    ``max_price_age_h`` or whose router and oracle prices differ by more than
    ``max_price_divergence`` is unhealthy and not traded. ``calendar`` adds a calendar
    rebalance on the first tick of each UTC day, ISO week or month (metric ``calendar_due``)."""

    template: Literal["token_weights"]
    tokens: list[TokenWeight] = Field(min_length=2)
    swap_venue: str
    quote: str = "USDT"
    price_source: Literal["ORACLE", "ROUTER"] = "ORACLE"
    calendar: Literal["none", "daily", "weekly", "monthly"] = "none"
    min_trade_usd: Expr = "trade_min_usd"
    max_trade_usd: Expr = "trade_max_usd"
    slippage_tolerance: Expr = "slippage_tolerance"
    max_price_age_h: Expr = "price_max_age_h"
    max_price_divergence: Expr = "price_max_divergence"
    alerts: DriftAlertsSpec = DriftAlertsSpec()


TargetSpec = Annotated[
    Union[LeveragedStakeTarget, PerpHedgeTarget, WalletReserveTarget, StakeTarget, LendTarget, SpotTarget, SignalPerpTarget,
          TokenWeightsTarget],
    Field(discriminator="template"),
]


class PerformanceTarget(Strict):
    """What the strategy is expected to deliver, for side-by-side views (``source`` says who said so)."""

    apy: float | None = None
    max_drawdown: float | None = None
    source: str = ""


class DataChecks(Strict):
    """Limits of the market-data checks (:mod:`trimtab.data.quality`, which gives each default's
    reason): beyond them a value is a data fault, quarantined and never traded on. The defaults
    never fire on the bundled data and catch a x100 or zero price."""

    max_cross_venue_deviation: float = Field(_BANDS.max_cross_venue_deviation, gt=0, allow_inf_nan=False,
                                             description="|price / median of the asset's venues - 1| (fraction)")
    max_jump: float = Field(_BANDS.max_jump, gt=0, allow_inf_nan=False,
                            description="|price / last good price - 1| for a price no other venue confirms")
    max_funding_deviation: float = Field(_BANDS.max_funding_deviation, gt=0, allow_inf_nan=False,
                                         description="|rate - median of the other venues' rates|, per funding interval")
    max_index_growth_per_day: float = Field(_BANDS.max_index_growth_per_day, gt=0, allow_inf_nan=False,
                                            description="fastest growth of an Aave index per day (fraction)")


class StrategyConfig(Strict):
    """A strategy: which machine, rules and venues; parameters; target positions.

    ``capital`` (share class units) starts at ``capital_at`` (an instrument key; default the
    wallet's share-class token). ``flows`` names a capital-flows file (CSV: time, amount;
    positive deposits, negative withdrawals, ``all`` for a full withdrawal), relative to the
    config file."""

    name: str
    description: str = ""
    machine: str
    rules: list[str] = Field(min_length=1)
    venues: list[str] = Field(min_length=1)
    share_class: Literal["USDT", "ETH", "BTC"]
    asset: str
    capital: float = Field(gt=0)
    capital_at: str | None = None
    flows: str | None = None
    performance_target: PerformanceTarget | None = None
    parameters: dict[str, float] = {}
    targets: list[TargetSpec] = Field(min_length=1)
    data_checks: DataChecks = DataChecks()


# --------------------------------------------------------------------------- portfolio of strategies
class SleeveSpec(Strict):
    """One sleeve of a portfolio: a strategy config (path relative to the portfolio config)
    run with ``weight`` of the portfolio's capital, kept within ``[min_weight, max_weight]``
    and cut to ``min_weight`` while its drawdown is beyond ``max_drawdown`` (fractions)."""

    id: str
    config: str
    weight: float = Field(gt=0, le=1)
    min_weight: float = Field(0.0, ge=0, le=1)
    max_weight: float = Field(1.0, gt=0, le=1)
    max_drawdown: float | None = Field(None, gt=0, lt=1)


class AllocationSpec(Strict):
    """How the portfolio allocates among sleeves (seed 003).

    * ``threshold``: back to the configured weights when a sleeve's relative drift
      |weight - target| / target passes ``threshold``;
    * ``calendar``: back to the configured weights on the first tick of each ``period``;
    * ``adaptive``: each ``period``, targets proportional to weight x max(Sharpe over
      ``lookback_days``, 0) (performance weighted), then moved to when a drift passes ``threshold``;
    * ``risk_parity``: each ``period``, inverse-volatility (``risk_model: inverse_volatility``)
      or equal-risk-contribution (``equal_risk_contribution``) targets from the daily returns of
      the last ``lookback_days``, then moved to when a drift passes ``threshold``.

    Performance-driven targets need ``min_history_days`` of history; before that the configured
    weights hold."""

    method: Literal["threshold", "calendar", "adaptive", "risk_parity"]
    threshold: float = Field(0.10, gt=0)
    period: Literal["daily", "weekly", "monthly"] = "monthly"
    lookback_days: int = Field(30, ge=3)
    min_history_days: int = Field(14, ge=3)
    risk_model: Literal["inverse_volatility", "equal_risk_contribution"] = "inverse_volatility"


class PortfolioLimits(Strict):
    """Portfolio-level limits on moving capital: a reallocation moving less than ``min_move``
    (share class, in total) is not made, nor is a single withdrawal or deposit under twice the
    planner's minimum trade; a sleeve breaches its ``min_weight`` / ``max_weight`` once it is
    ``weight_tolerance`` (absolute weight) outside it; at most ``max_turnover`` of equity moves
    in one reallocation; pairs of sleeves whose
    daily-return correlation over the lookback passes ``max_correlation`` are flagged. (The
    portfolio drawdown limit is a rule parameter: ``max_portfolio_drawdown`` in rules/portfolio.yaml.)"""

    min_move: float = Field(1000.0, ge=0)
    weight_tolerance: float = Field(0.02, ge=0, lt=1)
    max_turnover: float = Field(1.0, gt=0, le=1)
    max_correlation: float = Field(0.95, gt=-1, le=1)


class PortfolioConfig(Strict):
    """A portfolio of strategies (``configs/portfolio_*.yaml`` with ``sleeves:``): each sleeve a
    strategy config with a target weight; the portfolio machine (``machine``, ``rules``) decides
    when to reallocate, ``allocation`` how. Capital moves by exiting before entering: sleeves
    above target are asked to withdraw, and what they pay out is deposited into the sleeves
    below target. ``capital`` is in ``share_class``, which every sleeve must share."""

    name: str
    description: str = ""
    machine: str = "portfolio"
    rules: list[str] = Field(default_factory=lambda: ["portfolio"], min_length=1)
    share_class: Literal["USDT", "ETH", "BTC"]
    capital: float = Field(gt=0)
    checkpoint_every_h: int = Field(168, ge=1)
    parameters: dict[str, float] = {}
    sleeves: list[SleeveSpec] = Field(min_length=1)
    allocation: AllocationSpec
    limits: PortfolioLimits = PortfolioLimits()
