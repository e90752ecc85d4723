"""Pydantic models of trimtab's YAML: venues, rules, machines and strategy configs.

Every model forbids unknown fields (``extra="forbid"``) so a misspelt key is an error at its
``file:line:col`` rather than a silently ignored setting. These models check *shape*; the
cross-file references (state, rule, venue, instrument, parameter names) are checked in
:mod:`trimtab.config.load`, before any machine is built.

The target models live with their templates (:mod:`trimtab.templates`); ``targets`` is the
union of the registered ones (:data:`trimtab.templates.registry.TargetSpec`). A field typed
:data:`Expr` takes a number or an expression over parameters
(``1 - stake_allocation``), parsed by :mod:`trimtab.rules` and folded to a number when
the strategy is compiled.
"""
# No `from __future__ import annotations`: pydantic reads these at import (templates/base.py).

from typing import Annotated, Literal, Union

from pydantic import BeforeValidator, Field, WithJsonSchema

from ..data.bands import Bands as _Bands
from ..templates.base import Expr, Strict
from ..templates.registry import TargetSpec
from .lending import EmodeSpec, LendingRisk, ReserveRisk  # noqa: F401 - part of the venue models

_BANDS = _Bands()   # the data checks' defaults live with the checks' limits (trimtab.data.bands; no numpy)


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


class LstSpec(Strict):
    """A liquid staking token: ``token``, its exchange-rate field, the execution-cost row for
    swapping it out, and ``yield_field`` (its staking APR, fraction): the yield a withdrawal
    queue forgoes while queued (route choice, :mod:`trimtab.planner.routes`)."""

    token: str
    rate_field: str
    dex_cost_pair: str
    yield_field: str | None = None


class RiskTier(Strict):
    """One bracket of an exchange's risk-limit table: positions up to ``cap`` (USD notional, or
    base units for a ``quantity`` table) pay maintenance margin ``mmr`` x notional - ``cum`` (the
    exchange's "maintenance amount" / "maintenance margin deduction"; 0 where the exchange has
    none). ``max_leverage`` is informational (the exchange's cap for the bracket)."""

    cap: float = Field(gt=0)
    mmr: float = Field(gt=0, lt=1)
    cum: float = Field(0.0, ge=0)
    max_leverage: float | None = Field(None, gt=0)


class RiskLimitTable(Strict):
    """An instrument's published risk-limit brackets (trimtab.venues.margin), ascending caps.
    ``basis``: what ``cap`` measures (``notional`` USD, or ``quantity`` in base units, as OKX
    position tiers do). ``source``: where the figures come from and when they were read;
    ``proxy`` marks a table taken from another instrument or venue because the instrument's own
    could not be found (the source says which)."""

    basis: Literal["notional", "quantity"] = "notional"
    source: str = Field(min_length=1)
    proxy: bool = False
    tiers: list[RiskTier] = Field(min_length=1)


class CollateralTier(Strict):
    """Collateral value ratio of a margin asset for the quantity up to ``up_to`` units (None:
    unbounded); tiers apply progressively (trimtab.venues.margin.collateral_value)."""

    up_to: float | None = Field(None, gt=0)
    ratio: float = Field(ge=0, le=1)


class PerpSpec(Strict):
    """A CEX perp account (one cross-margin USDT account per venue). ``risk_limits``: per perp
    instrument key, its maintenance-margin brackets; ``collateral``: per non-USDT margin asset,
    its collateral value ratios (multi-asset margin), with ``collateral_source``;
    ``initial_margin``: the fraction of notional trimtab keeps as initial margin (1 / the
    leverage chosen), the floor of a withdrawal."""

    risk_limits: dict[str, RiskLimitTable] = {}
    collateral: dict[str, list[CollateralTier]] = {}
    collateral_source: str | None = None
    initial_margin: float = Field(gt=0, le=1)
    funding_interval_h: int = Field(gt=0, le=24)
    funding_hours_utc: list[Annotated[int, Field(ge=0, le=23)]] = Field(min_length=1)
    stale_after_h: float = Field(3.0, gt=0)


class PairSpec(Strict):
    """A DEX pair ``BASE/QUOTE``: ``price_field`` (quote units per base; none: the LST oracle
    rate) and ``cost_pair``, the row of the execution-cost table (spread + slippage by size).
    Without ``cost_pair`` the pair has no spread or slippage (a frictionless venue, e.g. for a
    comparison against a zero-cost reference). ``fee_bps`` is the fee tier of the pool the pair
    trades in (Uniswap v3: 1, 5, 30 or 100 bps; default the venue's ``swap.fee_bps``) and ``pool``
    names that pool and what prices it; the live block's ``fee_tiers`` must agree
    (:func:`trimtab.config.domains.fee_tier_mismatches`)."""

    price_field: str | None = None
    cost_pair: str | None = None
    fee_bps: float | None = Field(None, ge=0, lt=10000)
    pool: str | None = None


#: ccxt ``options`` values a venue's ``live:`` block may set (names and flags).
CcxtOptions = dict[str, Union[str, bool]]


class LiveMarketDataSpec(Strict):
    """One public market-data client of a venue (``feeds/live.yaml`` names it by ``ccxt_id``):
    ``market`` is the ccxt market type it loads (``linear``, ``swap``, ``spot``); ``ccxt_options``
    are merged over ``{"defaultType": ...}`` (Bybit linear: ``defaultSubType: linear``)."""

    ccxt_id: str
    market: Literal["linear", "swap", "spot"]
    ccxt_options: CcxtOptions = {}


class LiveSpotSpec(Strict):
    """The venue's spot market through a second ccxt client: ``quote`` the asset spot trades
    against; ``client_id_param`` the order field carrying our id and ``client_id_lookup_param``
    the query field finding it (none: the adapter package looks it up itself);
    ``needs_transfer``: spot trades from another wallet than perps (Binance Spot vs USD-M);
    ``duplicate_codes``: venue error codes meaning "client id already used"."""

    ccxt_id: str
    quote: str = "USDT"
    client_id_param: str
    client_id_lookup_param: str | None = None
    needs_transfer: bool = False
    ccxt_options: CcxtOptions = {}
    duplicate_codes: list[str] = []


class LiveStopsSpec(Strict):
    """Resting take-profit / stop-loss orders: the ccxt unified trigger params, the field
    carrying our client id, and extra params of a lookup or cancel (Binance: ``trigger``).
    A venue without this block has no resting stops (signal perps there are refused)."""

    client_id_param: str
    take_profit_param: str = "takeProfitPrice"
    stop_loss_param: str = "stopLossPrice"
    lookup_params: CcxtOptions = {}


class LiveTransfersSpec(Strict):
    """How USDT moves between the chain and the venue (ccxt unified transfer API): ``network``
    (ccxt network code), the accounts deposits land in and perps trade from, the withdrawal's
    client-id field and the history filter finding it (none: match address and amount), the
    internal transfer's client-id field (``transfer_id_uuid``: it must be a UUID derived from
    our id) and ``transfer_resend_safe``: the venue deduplicates that id, so a transfer whose
    outcome is unknown may be sent again."""

    network: str
    funding_account: str
    trading_account: str
    withdraw_id_param: str
    withdraw_lookup_param: str | None = None
    transfer_id_param: str | None = None
    transfer_id_uuid: bool = False
    transfer_resend_safe: bool = False


class LiveExchangeSpec(Strict):
    """A ``cex_perp`` venue's ``live:`` block: the facts its live adapter needs.

    ``adapter`` names the package ``trimtab.live.adapters.<adapter>`` holding the venue's code;
    ``ccxt_id``, ``market_types`` (``options.fetchMarkets.types``) and ``ccxt_options`` build
    the ccxt client; ``quotes`` are the quote currencies a perp symbol may end in, checked in
    order; ``client_id_param``/``client_id_lookup_param`` carry and find our client order id;
    ``wallet_field`` is the raw balance field without unrealised PnL; ``duplicate_codes`` are
    the venue error codes for a reused client id; ``passphrase``: the API key has one
    (``TRIMTAB_<VENUE>_PASSPHRASE``). Sources are cited beside each fact in the venue file.
    """

    kind: Literal["exchange"]
    adapter: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    ccxt_id: str
    market_types: list[str] = Field(min_length=1)
    ccxt_options: CcxtOptions = {}
    quotes: list[str] = Field(["USDT", "USDC"], min_length=1)
    client_id_param: str
    client_id_lookup_param: str | None = None
    wallet_field: str
    duplicate_codes: list[str] = []
    passphrase: bool = False
    spot: LiveSpotSpec | None = None
    stops: LiveStopsSpec | None = None
    transfers: LiveTransfersSpec | None = None
    market_data: list[LiveMarketDataSpec] = []


class LiveContractSpec(Strict):
    """One contract a chain adapter calls: ``address`` (checksummed or not), ``abi`` (the name
    of an ABI fragment in :data:`trimtab.live.adapters.contracts.ABIS`) and ``method`` (the
    function called, when the role has one)."""

    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    abi: str
    method: str | None = None


class LiveChainSpec(Strict):
    """An on-chain venue's ``live:`` block (``kind: chain``): the facts its chain adapter needs.

    ``adapter`` names the package ``trimtab.live.adapters.<adapter>`` holding the venue's code;
    ``operations`` are the plan operations it builds transactions for outside bundles;
    ``positions`` the position types (``aToken``, ``BaseToken``...) reconciliation reads from
    the chain; ``contracts`` the contracts it calls, by role (``pool``, ``stake``, ``wrap``);
    ``tokens`` the ERC-20 symbols it works with, by role (``share``, ``wrapped``);
    ``bundle_connectors`` the Instadapp connectors a flash-loan bundle casts for it, by role;
    ``call_args`` fixed integer arguments of its calls (Aave ``interest_rate_mode``,
    ``referral_code``; a stake's ``share_rounding_wei``); ``fee_tiers`` a DEX's pool fee tier
    (hundredths of a bip) per ERC-20 pair ``A/B`` (either order). Sources are cited beside each
    fact in the venue file.
    """

    kind: Literal["chain"]
    adapter: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    operations: list[str] = []
    positions: list[str] = []
    contracts: dict[str, LiveContractSpec] = {}
    tokens: dict[str, str] = {}
    bundle_connectors: dict[str, str] = {}
    call_args: dict[str, int] = {}
    fee_tiers: dict[str, int] = {}


#: A venue's ``live:`` block, by ``kind``: an exchange (ccxt) or an on-chain venue (web3).
LiveSpec = Annotated[Union[LiveExchangeSpec, LiveChainSpec], Field(discriminator="kind")]


class SpotMarketSpec(Strict):
    """A CEX spot market the planner may route a conversion through (``spot_markets`` of a
    ``cex_perp`` venue, by base asset, quoted in USDT): ``price_field`` the spot price series
    (USDT per unit), ``cost_pair`` the execution-cost table row for its spread + slippage. The
    taker fee is the venue's ``spot_trade`` operation ``fee_bps`` (trimtab.planner.routes)."""

    price_field: str
    cost_pair: str


class VenueSpec(Strict):
    """A venue of ``venues/<name>.yaml``. ``model`` picks the simulated venue model; ``live``
    holds the facts of its live adapter (:data:`LiveSpec`: :class:`LiveExchangeSpec` for
    exchanges, :class:`LiveChainSpec` for on-chain venues)."""

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
    spot_markets: dict[str, SpotMarketSpec] | None = None
    live: LiveSpec | None = None


# --------------------------------------------------------------------------- rules
class ParameterSpec(Strict):
    """One entry of a rules file's ``parameters:``: ``default`` (a finite number, in ``unit``),
    ``description`` (what it governs) and ``unit``, in the words the metrics use
    (:mod:`trimtab.metrics`) so a threshold reads in the unit of the metric it is compared with:
    ``fraction`` (a ratio as a fraction, 0.05 = 5%: LTVs, drifts, drawdowns, margin ratios),
    ``ratio`` (an Aave health factor), ``hours``, ``minutes``, ``days``, ``USD``,
    ``asset units``, ``count``, ``flag`` (0 or 1) and ``multiple`` (x times a baseline).
    ``unit`` is optional for user files (``trimtab params`` then guesses from the name's suffix);
    every shipped rules file declares it (tests/unit/test_rules_parameters.py)."""

    default: float
    description: str = ""
    unit: str = Field("", description="Unit of the default, as the metrics name units: fraction (0.05 = 5%), ratio "
                                      "(health factor), hours, minutes, days, USD, asset units, count, flag (0/1), multiple.")


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


class CostsSpec(Strict):
    """Execution-cost assumptions of a run: ``multiplier`` scales every trade's spread +
    slippage (the execution-cost table), not fee tiers, exchange fees or gas; ``trimtab run
    --costs low|base|high`` overrides it with 0.5 / 1 / 2 (why: :mod:`trimtab.venues.costs`)."""

    multiplier: float = Field(1.0, gt=0, le=100)


#: The keys a config parameter written as a mapping may have (:func:`config_parameter_value`).
CONFIG_PARAMETER_KEYS = ("value", "unit", "description")


def config_parameter_value(v):
    """A config ``parameters:`` entry as its value: a number as written, or the ``value`` of
    ``{value: 0.05, unit: ETH, description: "..."}`` (a parameter only the config declares says
    what it is; ``trimtab params`` shows it). The number is then validated as any setting.

    Raises:
        ValueError: a mapping without ``value``, with another key, or with a ``unit`` or
            ``description`` that is not text.
    """
    if not isinstance(v, dict):
        return v
    extra = [str(k) for k in v if k not in CONFIG_PARAMETER_KEYS]
    if extra:
        raise ValueError(f"unknown key {extra[0]!r} in a parameter; write a number, or "
                         f"{{value: <number>, unit: <unit>, description: <text>}}")
    if "value" not in v:
        raise ValueError("a parameter written as a mapping needs `value` (with `unit` and `description`)")
    for k in ("unit", "description"):
        if k in v and not isinstance(v[k], str):
            raise ValueError(f"`{k}` of a parameter must be text")
    return v["value"]


#: A config parameter: a number, or ``{value, unit, description}`` (:func:`config_parameter_value`).
ConfigParameter = Annotated[float, BeforeValidator(config_parameter_value), WithJsonSchema({
    "anyOf": [{"type": "number"}, {"type": "object", "additionalProperties": False, "required": ["value"], "properties": {
        "value": {"type": "number", "description": "The parameter's value (its default; `--set` overrides it)."},
        "unit": {"type": "string", "description": "Unit of the value, as the metrics name units: fraction (0.05 = 5%), "
                                                  "ratio, hours, minutes, days, USD, ETH, asset units, count, flag, multiple."},
        "description": {"type": "string", "description": "What the parameter governs (shown by `trimtab params`)."}}}],
    "description": "A number, or {value, unit, description} for a parameter only this config declares."})]


class AuditSpec(Strict):
    """What ``trimtab audit`` is told about this config. ``accept``: warnings that are true but
    intended, each ``"CODE@FILE:PATH: reason"`` -- the finding's code, the file it is reported in
    (relative to the project root) and its YAML path as the audit prints it, then why it is
    intended (:mod:`trimtab.config.acknowledge`). The audit shows a matched warning as
    ``accepted`` with the reason and counts it apart; an entry that matches no finding is itself
    a warning (``stale-accept``). Errors cannot be accepted."""

    # A Python factory, not the builtin `list`: pydantic inspects the factory's signature, and a
    # builtin's is parsed from its text signature with the tokenize module (~1.7 ms of every
    # process, the only such parse of a run). Same default, same schema.
    accept: list[str] = Field(default_factory=lambda: [], description=(
        "Acknowledged audit warnings, each 'CODE@FILE:PATH: reason', e.g. "
        "'data-gaps@venues/okx.yaml:instruments[0].mark_field: OKX is not traded while its data is stale'."))


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
    parameters: dict[str, ConfigParameter] = {}
    targets: list[TargetSpec] = Field(min_length=1)
    data_checks: DataChecks = DataChecks()
    costs: CostsSpec = CostsSpec()
    audit: AuditSpec = AuditSpec()


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
    audit: AuditSpec = AuditSpec()
