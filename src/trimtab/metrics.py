"""The metric registry: every metric a rule can read, declared once.

A metric is a plain float the engine publishes each tick and rule guards compare against
parameters (``health_factor < hf_emergency_enter``). Each one is declared here with its name,
description, unit, the range the audit's interval reasoning assumes (:class:`Domain`), what it
measures for the audit (``kind``) and the stage that computes it (:class:`Stage`). Per-venue and
per-token metrics are declared once as a :class:`Family` (``margin_ratio.<venue>``,
``drift.<TOKEN>``) and expanded for a config's members.

Readers, and only these: the config checks (:mod:`trimtab.config.load`,
:mod:`trimtab.portfolio.config`, :mod:`trimtab.ruletest`: unknown names with a did-you-mean),
the compute side (:mod:`trimtab.engine.monitors` for a strategy, which checks on its first tick
that it published exactly the declared names; the portfolio runner, :mod:`trimtab.portfolio`),
the audit (:mod:`trimtab.audit.intervals`: domains and kinds) and ``trimtab explain`` /
``trimtab metrics`` (what is shown). This module imports nothing from trimtab: it sits at the
bottom of the layering, beside ``keys`` and ``errors``, so config and audit read it freely.

To add a metric: declare it below (scope, stage, domain with the reason), compute it in the
stage named (a strategy metric in ``Monitors.run``), and the config checks, audit, explain and
the ``trimtab metrics`` table pick it up; ``tests/integration/test_metrics_registry.py`` fails
until the declaration and the computation agree (docs/metrics.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Mapping

INF = math.inf


@dataclass(frozen=True)
class Domain:
    """The values a metric can take, for the audit's interval reasoning: ``lo..hi``,
    ``lo_open``/``hi_open`` exclude an end, ``integer`` keeps whole numbers only. An infinite end
    may be closed: ``inf`` is then a value the metric takes (a health factor without debt).
    ``reason`` says why the range holds; the audit quotes it."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    reason: str = ""

    def text(self) -> str:
        """The range as a reader writes it: ``[0, inf]``, ``[0, inf)``, ``{0, 1}``, ``(-inf, inf)``."""
        if self.integer and self.hi - self.lo <= 2:
            return "{" + ", ".join(_num(float(x)) for x in range(int(self.lo), int(self.hi) + 1)) + "}"
        kind = " integers" if self.integer else ""
        return f"{'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}{kind}"


def _num(x: float) -> str:
    if x == INF:
        return "inf"
    if x == -INF:
        return "-inf"
    return f"{x:g}"


def _reals(reason: str) -> Domain:
    return Domain(-INF, INF, True, True, reason=reason)


def _nonneg(reason: str) -> Domain:
    return Domain(0.0, INF, hi_open=True, reason=reason)


def _nonneg_inf(reason: str) -> Domain:
    return Domain(0.0, INF, reason=reason)  # inf is attained


def _flag(reason: str = "0 or 1") -> Domain:
    return Domain(0.0, 1.0, integer=True, reason=reason)


def _side(reason: str = "-1, 0 or 1") -> Domain:
    return Domain(-1.0, 1.0, integer=True, reason=reason)


def _count(reason: str = "a count") -> Domain:
    return Domain(0.0, INF, hi_open=True, integer=True, reason=reason)


class Scope(str, Enum):
    """Whose machine reads the metric: a strategy's, or a portfolio of strategies'."""

    STRATEGY = "strategy"
    PORTFOLIO = "portfolio"


class Stage(str, Enum):
    """Where a metric is computed. Strategy stages run in this order in
    ``trimtab.engine.monitors.Monitors.run`` (the tight loop) from the book and the market view."""

    POSITION = "position"    # every position's value in the share class (Pricing.value)
    EXPOSURE = "exposure"    # asset delta of every position (Pricing.delta), hedge shares
    RISK = "risk"            # Aave health / LTV (SimVenues.aave_health), CEX margin (SimVenues.perp_account), data staleness
    PNL = "pnl"              # equity against the last rebalance, the rebalance clock
    PLAN = "plan"            # the executor: whether a plan is still running
    SIGNALS = "signals"      # the signal model in force (trimtab.data.signals)
    FLOWS = "flows"          # capital flows requested and not yet done (trimtab.engine.flows)
    BASKET = "basket"        # a token_weights basket's drift (trimtab.planner.drift.Basket.metrics)
    PORTFOLIO = "portfolio"  # a portfolio of strategies (the portfolio runner, trimtab.portfolio)


#: The audit's kinds: what a metric measures, for its notions of "risk response",
#: "rebalancing" (``drift``) and "cooldown" (``clock``). ``other`` when none applies.
KINDS = ("risk", "drift", "clock", "plan", "flow", "signal", "dust", "pnl", "data", "other")


@dataclass(frozen=True)
class Metric:
    """One metric: ``name`` as rules write it, ``unit`` (``fraction`` means a ratio as a
    fraction, 0.05 = 5%), ``domain`` (the audit's range), ``kind`` (one of :data:`KINDS`),
    ``stage`` that computes it and ``scope`` whose rules read it. ``inactive`` is the value
    published when the stage has nothing to measure (a strategy without a basket publishes
    ``max_drift`` = 0). ``explain``: ``trimtab explain`` shows it in its metrics line."""

    name: str
    description: str
    unit: str
    domain: Domain
    kind: str
    stage: Stage
    scope: Scope = Scope.STRATEGY
    inactive: float = 0.0
    explain: bool = False


@dataclass(frozen=True)
class Family:
    """Metrics published once per member: ``<prefix><member>``, e.g. ``margin_ratio.`` + a perp
    venue. ``member`` names what the members are (``venue``: the config's ``cex_perp`` venues;
    ``token``: a token_weights basket's tokens). ``open_members``: config checks accept the
    prefix with any member, not only the configured ones (the contract rules had before the
    registry for per-venue margin ratios). Other fields as in :class:`Metric`."""

    prefix: str
    member: str
    description: str
    unit: str
    domain: Domain
    kind: str
    stage: Stage
    scope: Scope = Scope.STRATEGY
    open_members: bool = False
    explain: bool = False

    @property
    def name(self) -> str:
        """The pattern as documentation writes it: ``margin_ratio.<venue>``."""
        return f"{self.prefix}<{self.member}>"

    def member_of(self, name: str) -> str | None:
        """The member a metric name refers to (``okx`` for ``margin_ratio.okx``), else None."""
        return (name[len(self.prefix):] or None) if name.startswith(self.prefix) else None


_S, _P = Scope.STRATEGY, Scope.PORTFOLIO
_MR_DOMAIN = Domain(-INF, INF, reason="account equity / notional: negative after losses beyond margin; inf without a position")

#: Every metric, in the order ``trimtab metrics`` lists them and ``trimtab explain`` shows them.
REGISTRY: tuple[Metric | Family, ...] = (
    # ------------------------------------------------------------ strategy: risk monitor
    Metric("health_factor", "Aave health factor: sum(collateral x price x liquidation threshold) / sum(debt x price); inf without debt",
           "ratio", _nonneg_inf("collateral x LT / debt >= 0; inf without debt"), "risk", Stage.RISK, inactive=INF, explain=True),
    Metric("ltv", "Aave loan-to-value: debt value / collateral value", "fraction",
           _nonneg("debt / collateral >= 0 (above 1 only when under water)"), "risk", Stage.RISK, explain=True),
    Metric("margin_ratio_min", "Smallest CEX margin ratio (account equity / position notional) over venues with a position; inf if none",
           "fraction", _MR_DOMAIN, "risk", Stage.RISK, inactive=INF, explain=True),
    Family("margin_ratio.", "venue", "CEX margin ratio of one perp venue (account equity / position notional); inf without a position",
           "fraction", _MR_DOMAIN, "risk", Stage.RISK, open_members=True, explain=True),
    # Per position, not per venue: a venue can hold an ETH and a BTC perp, each with its own price.
    Family("liquidation_price.", "perp", "Mark price (USD) at which the venue would liquidate one perp position "
           "(<venue>.<symbol>, e.g. liquidation_price.binance.ETHUSDT): Binance's cross-margin formula over the "
           "risk-limit brackets (trimtab.venues.margin.liquidation_price); 0 without a position or when no price liquidates it",
           "USD", _nonneg("a price > 0; 0 without a position or when no positive price liquidates it"), "risk", Stage.RISK,
           explain=True),
    # ------------------------------------------------------------ strategy: exposure monitor
    Metric("delta_drift", "net_delta / hedged delta (0 when nothing is hedged)", "fraction",
           _reals("net delta / hedged delta, signed"), "drift", Stage.EXPOSURE, explain=True),
    Metric("net_delta", "Net exposure to the strategy's asset, in asset units", "asset units",
           _reals("signed asset units"), "drift", Stage.EXPOSURE, explain=True),
    # ------------------------------------------------------------ strategy: position and pnl monitors
    Metric("equity", "Equity in the share class", "share class",
           _reals("share-class value of every position"), "pnl", Stage.POSITION, explain=True),
    Metric("equity_deviation", "|equity - equity at last rebalance| / equity at last rebalance", "fraction",
           _nonneg("|equity - baseline| / baseline >= 0"), "drift", Stage.PNL, explain=True),
    Metric("hedge_allocation_drift", "Largest |venue share of the hedge - its target share| over hedge legs", "fraction",
           Domain(0.0, 1.0, reason="|share - target share| of shares in [0, 1]"), "drift", Stage.EXPOSURE, explain=True),
    Metric("idle_fraction", "Share-class tokens idle in the wallet / equity", "fraction",
           _nonneg("idle wallet tokens / equity >= 0 (above 1 when other positions are negative)"), "flow", Stage.POSITION, explain=True),
    Metric("hours_since_rebalance", "Hours since the last plan was submitted (inf before the first)", "hours",
           _nonneg_inf("hours >= 0; inf before the first plan"), "clock", Stage.PNL, inactive=INF, explain=True),
    Metric("plan_in_flight", "1 while a plan has steps still to run, else 0", "flag", _flag(), "plan", Stage.PLAN, explain=True),
    Metric("stale_venues", "Number of configured venues whose market data is stale at this tick", "count",
           _count(), "data", Stage.RISK),
    Metric("venue_imbalance", "CEX accounts' share of equity minus their target share (perp_hedge allocation); + means excess CEX margin. "
           "With several perp_hedge targets: the signed venue_imbalance.<hedge_target> of largest magnitude",
           "fraction", Domain(-INF, INF, reason="a share of equity minus a target share; unbounded while equity is small"),
           "other", Stage.EXPOSURE),
    Family("venue_imbalance.", "hedge_target", "One perp_hedge target's CEX accounts' share of equity minus its allocation; "
           "0 while its legs hold no position", "fraction",
           Domain(-INF, INF, reason="a share of equity minus a target share; unbounded while equity is small"), "other", Stage.EXPOSURE),
    # ------------------------------------------------------------ strategy: signals, dust, flows
    Metric("signal_side", "Side (-1/0/1) the signal in force asks for, confidence over threshold; the current side while the venue cannot trade. "
           "With several signal_perp targets: that of the first target (config order) whose wanted side differs from its held side, "
           "else the first target's, so signal_side != position_side exactly when some target wants a trade",
           "side", _side(), "signal", Stage.SIGNALS),
    Metric("position_side", "Side (-1/0/1) of the signal-driven perp position; with several signal_perp targets, of the same target "
           "as signal_side", "side", _side(), "signal", Stage.SIGNALS),
    Family("signal_side.", "signal_target", "Side (-1/0/1) one signal_perp target's signal asks for (its held side while its venue "
           "cannot trade)", "side", _side(), "signal", Stage.SIGNALS),
    Family("position_side.", "signal_target", "Side (-1/0/1) of one signal_perp target's perp position", "side", _side(), "signal",
           Stage.SIGNALS),
    Metric("dust_fraction", "Value of reward tokens (EIGEN, ETHFI) in the wallet / equity", "fraction",
           _nonneg("reward-token value / equity >= 0"), "dust", Stage.POSITION),
    Metric("pending_deposit", "Deposited capital not yet deployed, share class", "share class",
           _nonneg("share-class amount >= 0"), "flow", Stage.FLOWS),
    Metric("withdrawal_fraction", "Requested withdrawals not yet paid / equity", "fraction",
           _nonneg("pending withdrawals / equity >= 0"), "flow", Stage.FLOWS),
    Metric("withdraw_all", "1 when a full withdrawal was requested, else 0", "flag", _flag(), "flow", Stage.FLOWS),
    # ------------------------------------------------------------ strategy: token_weights basket
    Metric("max_drift", "Largest |drift| over the healthy tokens of a token_weights basket, drift = (value - target value) / target value; "
           "0 without a basket", "fraction", _nonneg("largest |drift| >= 0"), "drift", Stage.BASKET),
    Metric("unhealthy_tokens", "Number of basket tokens whose price is missing, stale or diverged from the other source (they are not traded)",
           "count", _count(), "data", Stage.BASKET),
    Metric("calendar_due", "1 on the first tick of the basket's calendar period (UTC day, ISO week or month) and on the run's first tick, else 0",
           "flag", _flag(), "clock", Stage.BASKET),
    Family("drift.", "token", "Signed drift of one basket token: (value - target value) / target value", "fraction",
           Domain(-1.0, INF, hi_open=True, reason="(value - target) / target >= -1"), "drift", Stage.BASKET),
    # ------------------------------------------------------------ portfolio of strategies
    Metric("equity", "Portfolio equity: the sleeves' equity plus the portfolio's own cash, share class", "share class",
           _reals("share-class value of every position"), "pnl", Stage.PORTFOLIO, _P),
    Metric("cash", "Capital paid out by sleeves and not yet deposited into others, share class", "share class",
           _nonneg("portfolio cash >= 0"), "flow", Stage.PORTFOLIO, _P),
    Metric("portfolio_drawdown", "1 - NAV / peak NAV of the portfolio (no external flows: NAV = equity / capital)", "fraction",
           Domain(0.0, 1.0, reason="1 - NAV / peak NAV, in [0, 1]"), "risk", Stage.PORTFOLIO, _P),
    Metric("max_sleeve_drift", "Largest |weight - target| / target over the sleeves (weights of portfolio equity)", "fraction",
           _nonneg_inf("largest |weight - target| / target >= 0; inf for a sleeve held against a zero target"), "drift", Stage.PORTFOLIO, _P),
    Metric("reallocation_due", "1 when the allocation method asks to move capital (threshold: a drift past `threshold`; calendar: first tick of "
           "a period; adaptive / risk parity: a drift past `threshold` from the targets recomputed each period) and some "
           "move would reach `min_move`, else 0", "flag", _flag(), "other", Stage.PORTFOLIO, _P),
    Metric("period_start", "1 on the first tick of a new allocation period (UTC day, ISO week or month), else 0", "flag",
           _flag(), "clock", Stage.PORTFOLIO, _P),
    Metric("hours_since_reallocation", "Hours since the last reallocation started (inf before the first)", "hours",
           _nonneg_inf("hours >= 0; inf before the first reallocation"), "clock", Stage.PORTFOLIO, _P),
    Metric("plan_in_flight", "1 while a reallocation is withdrawing or depositing, else 0", "flag", _flag(), "plan", Stage.PORTFOLIO, _P),
    Metric("sleeve_limit_breaches", "Sleeves more than `weight_tolerance` above max_weight or below min_weight, or beyond max_drawdown and "
           "not yet cut to min_weight (each by at least `min_move`)", "count", _count(), "other", Stage.PORTFOLIO, _P),
    Metric("withdrawals_pending", "Withdrawals requested from sleeves and not yet paid, share class", "share class",
           _nonneg("share-class amount >= 0"), "flow", Stage.PORTFOLIO, _P),
    Metric("max_correlation", "Largest pairwise correlation of the sleeves' daily returns over the lookback (at the last period start)",
           "correlation", Domain(-1.0, 1.0, reason="a correlation"), "other", Stage.PORTFOLIO, _P),
)


def metrics(scope: Scope) -> dict[str, Metric]:
    """The single-valued metrics of ``scope``, by name, in registry order."""
    return {m.name: m for m in REGISTRY if isinstance(m, Metric) and m.scope is scope}


def families(scope: Scope) -> tuple[Family, ...]:
    """The per-member families of ``scope``, in registry order."""
    return tuple(f for f in REGISTRY if isinstance(f, Family) and f.scope is scope)


def expand(scope: Scope, members: Mapping[str, Iterable[str]]) -> list[str]:
    """Every metric name ``scope`` publishes for a config: the single-valued names, then each
    family's ``<prefix><member>`` for the members given under its ``member`` key
    (``{"venue": ["binance", "okx"], "token": []}``; a missing key means no members)."""
    out = list(metrics(scope))
    for f in families(scope):
        out += [f"{f.prefix}{x}" for x in members.get(f.member, ())]
    return out


def lookup(name: str, scope: Scope | None = None) -> Metric | Family | None:
    """The declaration a metric name refers to (a family for ``margin_ratio.okx``), or None.
    Without ``scope``, the first match in registry order: a name both scopes declare
    (``equity``, ``plan_in_flight``) has one domain and kind in both (tested)."""
    m = _BY_NAME.get((scope, name)) if scope is not None else _ANY.get(name)
    if m is not None:
        return m
    for f in REGISTRY:
        if isinstance(f, Family) and (scope is None or f.scope is scope) and f.member_of(name) is not None:
            return f
    return None


def accepts(name: str, scope: Scope) -> bool:
    """Whether config checks accept ``name`` without knowing the config's members: a
    single-valued metric of ``scope`` or a member of one of its open families."""
    if (scope, name) in _BY_NAME:
        return True
    return any(f.open_members and f.member_of(name) is not None for f in families(scope))


def defaults(scope: Scope, stage: Stage) -> dict[str, float]:
    """``{name: inactive value}`` of the single-valued metrics ``stage`` computes: what is
    published when the stage has nothing to measure."""
    return {m.name: m.inactive for m in metrics(scope).values() if m.stage is stage}


_BY_NAME: dict[tuple[Scope, str], Metric] = {(m.scope, m.name): m for m in REGISTRY if isinstance(m, Metric)}
_ANY: dict[str, Metric] = {}
for _m in REGISTRY:
    if isinstance(_m, Metric):
        _ANY.setdefault(_m.name, _m)
