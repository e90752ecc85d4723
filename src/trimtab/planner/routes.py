"""Route choice for a conversion: list the routes the strategy's venues offer, price each, and
pick the cheapest that meets the plan's deadline.

A *route* turns ``amount`` of ``sell`` into ``buy``. Candidates, all from the venue YAML:

* ``dex``: every DEX venue of the strategy with a pool for the pair. Cost = the pool's fee tier +
  the execution-cost table's spread/slippage interpolated at the trade's size (both bps of the
  notional, :meth:`SimVenues.swap_cost_bps`) + the swap's gas; no delay.
* ``mint`` (ETH -> an LST): the LST venue's ``stake`` at the oracle exchange rate; cost = gas.
* ``withdrawal_queue`` (an LST -> ETH): the LST venue's ``unstake`` (EtherFi ~7 days, Lido
  1-5 days: ``unstake.latency_s``); cost = gas + the staking yield forgone while queued
  (notional x the LST's yield x delay / 1 year: the queued amount is fixed when requested).
  Never inside an atomic bundle (a flash loan must be repaid in the same transaction).
* ``cex_spot`` (an asset <-> USDT): the spot market of a ``cex_perp`` venue that lists it in
  ``spot_markets`` (a spot price series in the data) and has a ``spot_trade`` operation. Cost =
  the venue's spot taker fee (``spot_trade.fee_bps``) + the execution-cost table's spread/slippage
  for the market's ``cost_pair`` interpolated at the trade's size; no gas, no delay -- when the
  funds already sit on that venue (``funds_on``). Otherwise (funds in the wallet) it is priced
  with the transfer legs it would need (the wallet's ERC-20 transfer gas to deposit, the venue's
  ``withdraw.fee`` to bring the proceeds back, ``deposit.latency_s + withdraw.latency_s`` of
  delay) and journaled as considered but not executable: the plan's wallet swap step cannot
  become a deposit + spot trade + withdrawal.

``choose``: the cheapest route whose delay fits the deadline (ties: the faster, then the
name). The deadline is the plan's: an emergency plan must complete now (0 s), a routine plan may
wait ``route_deadline_h`` hours (strategy parameter, default :data:`ROUTINE_DEADLINE_H`). Every
candidate, with its cost and why it was or was not taken, goes into the instruction's
``params["routes"]``, so the journaled plan JSON shows what was considered.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..errors import ExecutionError, TrimtabError
from ..venues.costs import pair_label

#: Default wait a routine (non-emergency) plan accepts for a cheaper route, hours. One day: a
#: routine rebalance is not urgent, but a multi-day queue would leave the plan open for days.
ROUTINE_DEADLINE_H = 24.0
YEAR_S = 365 * 86400


@dataclass(frozen=True)
class RouteQuote:
    """One priced route. Money in USD; bps of ``amount_usd``; ``delay_s`` until ``buy`` arrives."""

    kind: str          # dex | mint | withdrawal_queue | cex_spot
    venue: str
    operation: str     # swap | stake | unstake
    label: str
    amount_usd: float
    fee_bps: float = 0.0
    slippage_bps: float = 0.0
    gas_usd: float = 0.0
    lost_yield_usd: float = 0.0
    delay_s: float = 0.0
    transfer_usd: float = 0.0   # fixed fees of the transfer legs a route needs (a CEX withdrawal fee)
    executable: bool = True     # False: priced for comparison, but this plan cannot take it (``note`` says why)
    note: str = ""

    @property
    def cost_usd(self) -> float:
        """fee + slippage + gas + yield forgone + transfer fees, USD."""
        return self.amount_usd * (self.fee_bps + self.slippage_bps) / 1e4 + self.gas_usd + self.lost_yield_usd + self.transfer_usd

    def to_dict(self) -> dict:
        """The fields in order (floats rounded to 6 decimals) plus ``cost_usd``, for the plan JSON.
        Every field is a scalar, so reading them directly gives what ``asdict`` (a deep copy) gave."""
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in
                ((k, getattr(self, k)) for k in _QUOTE_FIELDS)} | {"cost_usd": round(self.cost_usd, 6)}


_QUOTE_FIELDS = tuple(f.name for f in fields(RouteQuote))


def deadline_s(action_kind: str, params: dict[str, float]) -> float:
    """Seconds a plan of ``action_kind`` may wait for its conversions: 0 for an emergency."""
    return 0.0 if action_kind == "emergency" else params.get("route_deadline_h", ROUTINE_DEADLINE_H) * 3600.0


def candidates(sim, sell: str, buy: str, amount: float, atomic: bool = False, funds_on: str | None = None) -> list[RouteQuote]:
    """Every route of the strategy's venues turning ``amount`` (units of ``sell``) into ``buy``,
    priced at this tick. ``atomic``: the conversion runs inside a bundle (no queue).
    ``funds_on``: the CEX venue whose account holds ``sell`` (None: the wallet); only that
    venue's ``cex_spot`` route is executable, and then no wallet route is."""
    px = sim.px
    usd = amount * px.asset_usd(sell)
    eth = px.eth_usd()
    out: list[RouteQuote] = []
    for name, v in sim.venues.items():
        if v.model == "dex" and "swap" in v.operations:
            pair = _pair(v, sell, buy)
            if pair is None:
                continue
            try:
                fee = sim.pool_fee_bps(name, pair)
                slip = sim.swap_cost_bps(name, sell, buy, usd) - fee
            except ExecutionError:
                continue
            out.append(RouteQuote("dex", name, "swap", pair_label(name, pair, fee), usd, fee, slip,
                                  sim.gas_eth(v.operations["swap"].gas_op) * eth))
        elif v.model == "lst" and v.lst is not None:
            tok = v.lst.token
            if _c(sell) == "ETH" and buy == tok and "stake" in v.operations:
                out.append(RouteQuote("mint", name, "stake", f"{name} mint {tok}", usd,
                                      gas_usd=sim.gas_eth(v.operations["stake"].gas_op) * eth))
            elif sell == tok and _c(buy) == "ETH" and "unstake" in v.operations and not atomic:
                op = v.operations["unstake"]
                apr = lst_yield(sim, name)
                out.append(RouteQuote("withdrawal_queue", name, "unstake", f"{name} withdrawal queue {tok}->ETH", usd,
                                      gas_usd=sim.gas_eth(op.gas_op) * eth, lost_yield_usd=usd * apr * op.latency_s / YEAR_S,
                                      delay_s=op.latency_s))
    if funds_on is not None:  # the wallet's routes cannot spend funds held on an exchange
        out = [RouteQuote(**{**asdict(q), "executable": False, "note": f"funds on {funds_on}"}) for q in out]
    if not atomic:
        out += cex_spot(sim, sell, buy, amount, funds_on)
    return out


def cex_spot(sim, sell: str, buy: str, amount: float, funds_on: str | None = None) -> list[RouteQuote]:
    """The ``cex_spot`` quotes for ``amount`` of ``sell`` -> ``buy`` (one side USDT, the other a
    ``spot_markets`` asset): fee = ``spot_trade.fee_bps``, slippage = the market's ``cost_pair``
    row at the trade's USD size (:meth:`SimVenues.exec_cost_bps`, so the config's cost multiplier
    applies), as :meth:`SimVenues.spot_trade` fills it. Executable only on ``funds_on``; elsewhere
    priced with the deposit gas, withdrawal fee and both latencies (see the module doc). A market
    whose price is missing or stale (3 h, as the ``spot`` template) is left out."""
    out: list[RouteQuote] = []
    pair = {_c(sell), _c(buy)}
    if "USDT" not in pair or len(pair) != 2:
        return out
    (asset,) = pair - {"USDT"}
    usd = amount * sim.px.asset_usd(sell)
    for name, v in sim.venues.items():
        m = (v.spot_markets or {}).get(asset)
        if v.model != "cex_perp" or m is None or "spot_trade" not in v.operations:
            continue
        try:
            if not sim.view.fresh(m.price_field, 3.0):
                continue
            slip = sim.exec_cost_bps(m.cost_pair, usd)
        except TrimtabError:  # a field this run's view does not carry, a pair the table lacks
            continue
        fee = v.operations["spot_trade"].fee_bps
        label = f"{name} {asset}USDT spot"
        if funds_on == name:
            out.append(RouteQuote("cex_spot", name, "spot_trade", label, usd, fee, slip))
            continue
        gas = sim.gas_eth(sim.venues["wallet"].operations["transfer"].gas_op) * sim.px.eth_usd() \
            if "wallet" in sim.venues and "transfer" in sim.venues["wallet"].operations else 0.0
        dep, wd = v.operations.get("deposit"), v.operations.get("withdraw")
        out.append(RouteQuote("cex_spot", name, "spot_trade", label, usd, fee, slip, gas_usd=gas,
                              transfer_usd=wd.fee if wd else 0.0,
                              delay_s=(dep.latency_s if dep else 0.0) + (wd.latency_s if wd else 0.0),
                              executable=False, note=f"funds in {funds_on or 'the wallet'}, not on {name}"))
    return out


def choose(quotes: list[RouteQuote], deadline: float) -> tuple[RouteQuote, list[dict]]:
    """(the cheapest route with ``delay_s <= deadline``, every quote as a dict with ``chosen`` and
    ``why``). Only ``executable`` quotes are chosen. Raises ExecutionError when none fits (naming
    the fastest route's delay)."""
    fits = sorted((q for q in quotes if q.delay_s <= deadline and q.executable), key=lambda q: (q.cost_usd, q.delay_s, q.label))
    if not fits:
        fastest = min((q.delay_s for q in quotes), default=math.inf)
        raise ExecutionError(f"no route fits the deadline of {deadline:.0f}s (fastest: {fastest:.0f}s; routes: "
                             f"{', '.join(q.label for q in quotes) or 'none'})")
    best = fits[0]
    considered = []
    for q in sorted(quotes, key=lambda q: (q.cost_usd, q.label)):
        why = "cheapest within the deadline" if q is best else f"not executable here: {q.note}" if not q.executable else (
            f"delay {q.delay_s / 3600:.1f} h is over the deadline {deadline / 3600:.1f} h" if q.delay_s > deadline
            else f"costs {q.cost_usd - best.cost_usd:.2f} USD more")
        considered.append(q.to_dict() | {"chosen": q is best, "why": why})
    return best, considered


def lst_yield(sim, venue: str) -> float:
    """The LST's staking yield (APR, fraction) at this tick from the LST venue's ``yield_field``
    (``staking.<token>.apr``), 0 when it names none or the data has no value yet (then the
    queue's forgone yield is not counted)."""
    f = sim.venues[venue].lst.yield_field
    if not f:
        return 0.0
    try:
        v = sim.view.get(f)
    except TrimtabError:  # a field the view does not carry (DataError)
        return 0.0
    return float(v) if v is not None and math.isfinite(v) else 0.0


def _c(asset: str) -> str:
    return "ETH" if asset in ("ETH", "WETH") else asset


def _pair(venue, sell: str, buy: str) -> str | None:
    for name in venue.pairs or {}:
        if set(name.split("/")) == {_c(sell), _c(buy)}:
            return name
    return None
