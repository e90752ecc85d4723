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

Expr = Union[float, str]


class Strict(BaseModel):
    """Base: unknown fields are errors; models are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
    fee_bps: float = Field(0.0, ge=0)
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
    funding_interval_h: int = Field(gt=0)
    funding_hours_utc: list[int]
    stale_after_h: float = Field(3.0, gt=0)


class PairSpec(Strict):
    price_field: str | None = None
    cost_pair: str


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


TargetSpec = Annotated[
    Union[LeveragedStakeTarget, PerpHedgeTarget, WalletReserveTarget, StakeTarget, LendTarget, SpotTarget, SignalPerpTarget],
    Field(discriminator="template"),
]


class PerformanceTarget(Strict):
    """What the strategy is expected to deliver, for side-by-side views (``source`` says who said so)."""

    apy: float | None = None
    max_drawdown: float | None = None
    source: str = ""


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
