"""Cross-venue transfers: which asset to move, what it costs, whether it is safe (seed 000).

The route table (``venues/routes/transfers.yaml``) names, per pair of venue kinds, the asset to move and
the operations on the way. :func:`transfer_cost` prices a route at this tick:

* gas: each on-chain operation's gas units (data/static.json ``gas_units``) x the real gas price;
* exchange withdrawal fee: the CEX's ``withdraw.fee`` (venues/<cex>.yaml);
* conversion: the pair's DEX pool fee tier + the execution-cost table's spread (interpolated in
  size) for each swap on the way;
* yield lost in transit: amount x the source's current yield (APR) x transit time, transit time
  being the sum of the route's latencies (CEX deposit confirmation, CEX withdrawal).

:func:`check_transfer` applies the safety limits: minimum and maximum size, the source's health
factor (Aave) or margin ratio (CEX) after the transfer above its threshold, and the target's
capacity (the CEX position limit of the data's risk parameters).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config.yamldoc import load_yaml

GAS_BY_STEP = {
    "withdraw_collateral": ("aave_v3", "withdraw"),
    "supply": ("aave_v3", "supply"),
    "swap_lst_to_eth": ("uniswap_v3", "swap"),
    "swap_eth_to_usdt": ("uniswap_v3", "swap"),
    "swap_usdt_to_eth": ("uniswap_v3", "swap"),
    "stake": ("etherfi", "stake"),
    "transfer": ("wallet", "transfer"),
}
SWAP_PAIRS = {"swap_lst_to_eth": "ETH_weETH", "swap_eth_to_usdt": "ETH_USDT", "swap_usdt_to_eth": "ETH_USDT"}
SWAP_TOKENS = {"swap_lst_to_eth": ("weETH", "ETH"), "swap_eth_to_usdt": ("ETH", "USDT"), "swap_usdt_to_eth": ("USDT", "ETH")}


class RouteError(ValueError):
    """No route between two venue kinds, or an unsafe transfer; the message says which."""


@dataclass(frozen=True)
class Route:
    source: str  # venue kind (model): lst, aave_v3, cex_perp, wallet
    target: str
    asset: str
    via: tuple[str, ...]
    why: str


@dataclass
class TransferCost:
    """A priced route, in USD. ``total_usd`` = gas + withdrawal fee + conversion + lost yield."""

    route: Route
    amount_usd: float
    gas_usd: float = 0.0
    withdrawal_fee_usd: float = 0.0
    conversion_usd: float = 0.0
    lost_yield_usd: float = 0.0
    latency_s: float = 0.0
    steps: list[str] = field(default_factory=list)

    @property
    def total_usd(self) -> float:
        return self.gas_usd + self.withdrawal_fee_usd + self.conversion_usd + self.lost_yield_usd

    @property
    def cost_bps(self) -> float:
        return self.total_usd / self.amount_usd * 1e4 if self.amount_usd > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(total_usd=self.total_usd, cost_bps=self.cost_bps)
        return d


def load_routes(root: Path) -> dict[tuple[str, str], Route]:
    """The route table of ``<root>/venues/routes/transfers.yaml``, keyed by (source kind, target kind)."""
    doc = load_yaml(root / "venues" / "routes" / "transfers.yaml")
    out = {}
    for r in doc.data["routes"]:
        out[(r["from"], r["to"])] = Route(r["from"], r["to"], r["asset"], tuple(r["via"]), r.get("why", ""))
    return out


def route_for(routes: dict, source_kind: str, target_kind: str) -> Route:
    """The route between two venue kinds. Raises RouteError naming the pairs that exist."""
    try:
        return routes[(source_kind, target_kind)]
    except KeyError:
        have = ", ".join(f"{a}->{b}" for a, b in sorted(routes))
        raise RouteError(f"no transfer route from {source_kind} to {target_kind} (routes: {have})") from None


def transfer_cost(route: Route, amount_usd: float, sim, source_yield_apr: float = 0.0, cex: str | None = None) -> TransferCost:
    """Price ``route`` for ``amount_usd`` at the current tick of ``sim`` (a SimVenues).

    ``cex`` names the exchange for cex_deposit / cex_withdraw steps (latency, fee).
    """
    px = sim.px
    eth = px.eth_usd()
    c = TransferCost(route, amount_usd)
    for step in route.via:
        if step in GAS_BY_STEP:
            venue, op = GAS_BY_STEP[step]
            if venue in sim.venues and op in sim.venues[venue].operations:
                g = sim.gas_eth(sim.venues[venue].operations[op].gas_op) * eth
                c.gas_usd += g
                c.steps.append(f"{step}: gas {g:.2f} USD")
        if step in SWAP_PAIRS:
            if "uniswap_v3" in sim.venues:  # the pair's pool fee tier + interpolated slippage
                bps = sim.swap_cost_bps("uniswap_v3", *SWAP_TOKENS[step], amount_usd)
            else:
                bps = sim.exec_cost_bps(SWAP_PAIRS[step], amount_usd)
            c.conversion_usd += amount_usd * bps / 1e4
            c.steps.append(f"{step}: {bps:.1f} bps")
        if step == "cex_withdraw" and cex:
            op = sim.venues[cex].operations["withdraw"]
            c.withdrawal_fee_usd += op.fee * px.asset_usd("USDT")
            c.latency_s += op.latency_s
            c.steps.append(f"cex_withdraw on {cex}: fee {op.fee} USDT, {op.latency_s:.0f}s")
        if step == "cex_deposit" and cex:
            op = sim.venues[cex].operations["deposit"]
            c.latency_s += op.latency_s
            c.steps.append(f"cex_deposit to {cex}: {op.latency_s:.0f}s to confirm")
    c.lost_yield_usd = amount_usd * source_yield_apr * c.latency_s / (365 * 86400)
    return c


def check_transfer(cost: TransferCost, params: dict[str, float], source_after: float | None = None,
                   source_floor: float | None = None, target_capacity_usd: float | None = None) -> list[str]:
    """Safety problems of a transfer (empty when safe): size outside [min_transfer_usd,
    max_transfer_usd], the source's health factor / margin ratio after the transfer below its
    floor, more than the target can take."""
    problems = []
    lo, hi = params.get("min_transfer_usd", 0.0), params.get("max_transfer_usd", float("inf"))
    if cost.amount_usd < lo:
        problems.append(f"{cost.amount_usd:,.2f} USD is under the minimum transfer {lo:,.2f}")
    if cost.amount_usd > hi:
        problems.append(f"{cost.amount_usd:,.2f} USD is over the maximum transfer {hi:,.2f}")
    if source_after is not None and source_floor is not None and source_after < source_floor:
        problems.append(f"the source would fall to {source_after:.4f}, under its floor {source_floor:.4f}")
    if target_capacity_usd is not None and cost.amount_usd > target_capacity_usd:
        problems.append(f"the target can take {target_capacity_usd:,.2f} USD, less than {cost.amount_usd:,.2f}")
    return problems
