"""Value domains and data references of a loaded strategy, checked before anything runs.

:mod:`trimtab.config.models` checks each value's type and simple bounds (``allow_inf_nan`` is
off, so NaN and infinity are refused everywhere a number is expected). This module checks what
needs more than one field or file, each problem at the ``file:line:col`` of the value to fix:

* parameters (rule-file defaults and config values) against the domain their name declares
  (:data:`PARAMETER_DOMAINS`): a cooldown or an amount is never negative, an LTV is in (0, 1),
  an allocation or a weight in [0, 1];
* target values after parameters are folded in: finite; allocations in [0, 1]; a leveraged
  stake's target LTV in (0, the lending venue's max LTV) (the collateral's LTV for the target's
  eMode category: the category's for its members, else its own); its eMode category known and
  able to borrow the debt; hedge leg weights >= 0 and summing to 1;
* venue risk parameters: an eMode or reserve LTV never above its liquidation threshold, a
  perp's initial margin never below its maintenance margin;
* every data field a venue or target names (``price_field``, ``mark_field``, ``funding_field``,
  ``usd_field``, ``eth_rate_field``, ``rate_field``; ``reserve``) is a series of the catalog
  (:mod:`trimtab.data.catalog`) or of the data bundle's manifest, with a column it has; every
  ``cost_pair`` a row of the execution-cost table; every asset an asset the wallet prices;
* what a run reads of a venue is there (:func:`check_venue_complete`), so ``validate`` refuses
  what a run would fail on: a perp's ``mark_field``, ``funding_field`` and ``cost_pair`` (the
  simulated venue prices, funds and trades every perp of a configured venue), an Aave v3 position's
  ``reserve``, a CEX's ``perp:`` block and its ``Margin:USDT`` and ``Transit:USDT`` accounts.

Sources: Aave v3 requires LTV <= liquidation threshold for every reserve and eMode category
(``ValidationLogic``/``PoolConfigurator``: "INVALID_RESERVE_PARAMS"); an exchange's initial
margin is at least its maintenance margin by definition.
"""
from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from ..data import catalog
from ..data.location import data_dir   # TRIMTAB_DATA or the bundled data/ (no numpy, no pyarrow)
from ..templates.leveraged_stake import loop_risk
from ..templates.registry import template_for
from .models import StrategyConfig, VenueSpec
from .wording import suggest
from .yamldoc import YamlDoc

Add = Callable[[YamlDoc, tuple, str], None]

#: Parameter domains by name: (regex on the parameter name, low, high, low inclusive, high
#: inclusive, what the name says). The first match applies; names that match none are free.
PARAMETER_DOMAINS: tuple[tuple[str, float, float, bool, bool, str], ...] = (
    (r"(^|_)ltv$", 0.0, 1.0, False, False, "an LTV is a fraction in (0, 1)"),
    (r"cooldown", 0.0, math.inf, True, True, "a cooldown cannot be negative"),
    (r"(^|_)(allocation|weight)(_|$)", 0.0, 1.0, True, True, "an allocation or weight is a fraction in [0, 1]"),
    (r"drawdown|tolerance|divergence|fraction", 0.0, 1.0, True, True, "a fraction in [0, 1]"),
    (r"^hf_", 0.0, math.inf, True, True, "a health factor is never negative"),
    (r"_(h|min|days|usd|eth|bps)$", 0.0, math.inf, True, True, "a duration or amount cannot be negative"),
    (r"^margin_|_threshold$|drift", 0.0, math.inf, True, True, "cannot be negative"),
    (r"_multiple$", 0.0, math.inf, False, True, "a multiple is positive"),
)


def _interval(lo: float, hi: float, lo_in: bool, hi_in: bool) -> str:
    return f"{'[' if lo_in else '('}{lo:g}, {'inf)' if math.isinf(hi) else f'{hi:g}' + (']' if hi_in else ')')}"


def parameter_domain_error(name: str, value: float) -> str | None:
    """The message for ``value`` outside the domain ``name`` declares, or None when it fits."""
    if not math.isfinite(value):
        return f"parameter {name!r} is {value}; expected a finite number"
    for pattern, lo, hi, lo_in, hi_in, what in PARAMETER_DOMAINS:
        if re.search(pattern, name):
            ok = (value >= lo if lo_in else value > lo) and (value <= hi if hi_in else value < hi)
            if not ok:
                return f"parameter {name!r} = {value:g} is outside {_interval(lo, hi, lo_in, hi_in)}: {what}"
            return None
    return None


# ----------------------------------------------------------------------------- data references
@lru_cache(maxsize=4)
def _manifest(data_dir: str) -> dict[str, list[str]]:
    try:
        series = json.loads((Path(data_dir) / "manifest.json").read_text())["series"]
        return {name: list(s.get("columns", [])) for name, s in series.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


@lru_cache(maxsize=4)
def _cost_pairs(data_dir: str) -> frozenset[str] | None:
    try:
        table = json.loads((Path(data_dir) / "static.json").read_text())["execution_costs_bps"]
        return frozenset(k for k in table if k != "sources")
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no table to check against (the data check of the audit reports it)


#: Real markets a shipped venue lists that the bundle has no data for (the source files do not
#: cover them): a strategy trading one sees that leg stay empty and its summary says so
#: (configs/btc_basis.yaml). Known names, so not a typo.
KNOWN_UNBUNDLED: dict[str, list[str]] = {"perp.okx.BTCUSDT": ["open", "high", "low", "close", "volume"]}


def known_series() -> dict[str, list[str]]:
    """Series name -> columns: the catalog's, plus any the data bundle's manifest adds, plus
    :data:`KNOWN_UNBUNDLED`."""
    return {name: list(columns) for name, columns in _known(str(data_dir())).items()}


@lru_cache(maxsize=4)
def _known(data_dir: str) -> dict[str, list[str]]:
    # Built once per data directory (the manifest is read once too, by _manifest): a config
    # checks dozens of fields. Callers must not mutate it; known_series() hands out a copy.
    out = dict(KNOWN_UNBUNDLED)
    out.update(_manifest(data_dir))
    for s in catalog.CATALOG:
        out[s.name] = list(s.columns)
    return out


def field_error(value: str, series_only: bool = False) -> str | None:
    """Why ``value`` (``<series>.<column>``, or a bare series name with ``series_only``) names no
    known data, with a did-you-mean hint; None when it does."""
    known = _known(str(data_dir()))
    if series_only:
        if value in known:
            return None
        return f"unknown series {value!r}{suggest(value, sorted(known))}"
    series, _, column = value.rpartition(".")
    if series in known and column in known[series]:
        return None
    if series in known:
        return (f"series {series!r} has no column {column!r}{suggest(column, known[series])}; "
                f"columns: {', '.join(known[series])}")
    fields = [f"{s}.{c}" for s, cols in known.items() for c in cols]
    return f"unknown data field {value!r}{suggest(value, fields)}: not a series of the catalog or the data bundle"


def check_margin_tables(v: VenueSpec, vdoc: YamlDoc, add: Add) -> None:
    """A CEX's risk-limit brackets and collateral tiers: one table per perp instrument, caps
    strictly ascending, maintenance rates not falling; collateral only for its margin assets."""
    p = v.perp
    perps = {i.key for i in v.instruments if i.key.split(":")[1:2] == ["Perp"]}
    margin_assets = {i.asset for i in v.instruments if i.key.split(":")[1:2] == ["Margin"]}
    for key in sorted(perps - set(p.risk_limits)):
        add(vdoc, ("perp", "risk_limits"), f"perp instrument {key!r} has no risk-limit table; add one under perp.risk_limits "
                                           "with the exchange's brackets (source, tiers)", key=True)
    for key, table in p.risk_limits.items():
        if key not in perps:
            add(vdoc, ("perp", "risk_limits", key), f"{key!r} is not a perp instrument of this venue"
                                                     f"{suggest(key, sorted(perps))}; tables key a Perp instrument", key=True)
        for n, (a, b) in enumerate(zip(table.tiers, table.tiers[1:]), start=1):
            if b.cap <= a.cap:
                add(vdoc, ("perp", "risk_limits", key, "tiers", n, "cap"), f"bracket cap {b.cap:g} is not above the previous "
                                                                           f"cap {a.cap:g}; list brackets in ascending order")
            if b.mmr < a.mmr:
                add(vdoc, ("perp", "risk_limits", key, "tiers", n, "mmr"), f"maintenance rate {b.mmr:g} is below the previous "
                                                                           f"bracket's {a.mmr:g}; rates rise with the position")
    for a, tiers in p.collateral.items():
        if a not in margin_assets:
            add(vdoc, ("perp", "collateral", a), f"{a!r} is not a margin asset of this venue (Margin instruments: "
                                                 f"{', '.join(sorted(margin_assets)) or 'none'})", key=True)
        caps = [t.up_to for t in tiers]
        if any(c is None for c in caps[:-1]) or any(y <= x for x, y in zip(caps, caps[1:]) if x is not None and y is not None):
            add(vdoc, ("perp", "collateral", a), f"collateral tiers of {a} must have ascending 'up_to' with only the last unbounded")


def fee_tier_mismatches(v: VenueSpec) -> list[tuple[str, str]]:
    """(pair, message) for each DEX pair whose simulated pool fee (``pairs.<pair>.fee_bps``, else
    ``swap.fee_bps``) disagrees with the live block's ``fee_tiers`` (hundredths of a bip; ETH and
    WETH are one token; either order). Empty when they agree or either side is absent."""
    tiers = getattr(v.live, "fee_tiers", None) or {}
    canon = {frozenset(x.replace("WETH", "ETH") for x in k.split("/")): t for k, t in tiers.items()}
    default = v.operations["swap"].fee_bps if "swap" in v.operations else 0.0
    out = []
    for name, p in (v.pairs or {}).items():
        tier = canon.get(frozenset(x.replace("WETH", "ETH") for x in name.split("/")))
        fee = p.fee_bps if p.fee_bps is not None else default
        if tier is not None and abs(tier / 100 - fee) > 1e-9:
            out.append((name, f"{v.name} pair {name}: fee_bps {fee:g} but live fee_tiers {tier} (= {tier / 100:g} bps)"))
    return out


#: What a run reads of each instrument, by position type: (field, why the run needs it).
_REQUIRED_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "Perp": (("mark_field", "the data field of its mark price (e.g. perp.<venue>.<SYMBOL>.close)"),
             ("funding_field", "the data field of its funding rate (e.g. funding.<venue>.<SYMBOL>.rate)"),
             ("cost_pair", "its spread + slippage by trade size")),
    "aToken": (("reserve", "the lending reserve series of its index and rates (e.g. aave.USDT)"),),
    "debtToken": (("reserve", "the lending reserve series of its index and rates (e.g. aave.USDT)"),),
}


def check_venue_complete(v: VenueSpec, vdoc: YamlDoc, add: Add, costs: frozenset[str] | None) -> None:
    """What the simulated venues read of a configured venue, present: every field of
    :data:`_REQUIRED_FIELDS` on its instruments (each reported at the instrument, with the fix),
    and for a ``cex_perp`` venue its ``perp:`` block and the ``<venue>:Margin:USDT`` (account)
    and ``<venue>:Transit:USDT`` (deposits in flight) instruments. Without these a run stops
    mid-way ("no execution cost for pair None", a missing key), after ``validate`` said ok."""
    rows = ", ".join(sorted(costs)) if costs else "the rows of data/static.json execution_costs_bps"
    for j, inst in enumerate(v.instruments):
        ptype = inst.key.split(":")[1] if inst.key.count(":") == 2 else ""
        for fname, what in _REQUIRED_FIELDS.get(ptype, ()):
            if getattr(inst, fname) or (fname == "reserve" and v.model != "aave_v3"):  # a flash loan's debt has no reserve
                continue
            if fname == "cost_pair":
                fix = (f"add `cost_pair: <one of {rows}>` to it, or add a row for it to data/static.json "
                       "execution_costs_bps")
            else:
                fix = f"add `{fname}: <series>.<column>` to it" if fname != "reserve" else "add `reserve: <series>` to it"
            add(vdoc, ("instruments", j), f"{ptype} instrument {inst.key!r} has no {fname}: a run needs {what}; {fix}")
    if v.model != "cex_perp":
        return
    if v.perp is None:
        add(vdoc, ("model",), f"a cex_perp venue needs a `perp:` block (initial_margin, funding_interval_h, funding_hours_utc, "
                              f"risk_limits): the simulated exchange margins and funds its perps with it")
    keys = {inst.key for inst in v.instruments}
    for kind, what in (("Margin", "its USDT margin account"), ("Transit", "USDT deposits in flight")):
        key = f"{v.name}:{kind}:USDT"
        if key not in keys:
            add(vdoc, ("instruments",), f"a cex_perp venue needs the instrument {key!r} ({what}); add "
                                        f"`- {{key: \"{key}\", asset: USDT}}` to instruments", key=True)


def check_venue(v: VenueSpec, vdoc: YamlDoc, add: Add, wallet_assets: set[str] | None) -> None:
    """Risk parameters, data fields, cost pairs and assets of one venue file, and what a run
    reads of it (:func:`check_venue_complete`)."""
    costs = _cost_pairs(str(data_dir()))
    check_venue_complete(v, vdoc, add, costs)

    def fld(path: tuple, value: str | None, series_only: bool = False) -> None:
        if value:
            err = field_error(value, series_only)
            if err:
                add(vdoc, path, err)

    def cost(path: tuple, value: str | None) -> None:
        if value and costs is not None and value not in costs:
            add(vdoc, path, f"unknown cost pair {value!r}{suggest(value, sorted(costs))}; rows of the execution-cost table: "
                            f"{', '.join(sorted(costs))}")

    def asset(path: tuple, value: str) -> None:
        if wallet_assets and value not in wallet_assets:
            add(vdoc, path, f"unknown asset {value!r}{suggest(value, sorted(wallet_assets))}: venues/wallet.yaml does not price it; "
                            f"priced assets: {', '.join(sorted(wallet_assets))}")

    # an exchange adapter (ccxt) serves cex_perp venues only, a chain adapter (web3) every other model
    if v.live is not None and (v.live.kind == "exchange") != (v.model == "cex_perp"):
        what = "an exchange adapter" if v.live.kind == "exchange" else "a chain adapter"
        need = "'cex_perp'" if v.live.kind == "exchange" else "an on-chain model (not 'cex_perp')"
        add(vdoc, ("live",), f"a 'live:' block of kind {v.live.kind!r} configures {what}; this venue's model is {v.model!r}, "
                             f"not {need}", key=True)
    for j, inst in enumerate(v.instruments):
        base = ("instruments", j)
        fld(base + ("reserve",), inst.reserve, series_only=True)
        fld(base + ("mark_field",), inst.mark_field)
        fld(base + ("funding_field",), inst.funding_field)
        cost(base + ("cost_pair",), inst.cost_pair)
        asset(base + ("asset",), inst.asset)
    for name, a in (v.assets or {}).items():
        fld(("assets", name, "usd_field"), a.usd_field)
        fld(("assets", name, "eth_rate_field"), a.eth_rate_field)
        if a.usd is None and not a.usd_field and not a.eth_rate_field:
            add(vdoc, ("assets", name), f"asset {name!r} has no price: give one of usd, usd_field or eth_rate_field")
        if a.usd is not None and a.usd <= 0:
            add(vdoc, ("assets", name, "usd"), f"asset {name!r} price {a.usd:g} USD must be positive")
    for name, p in (v.pairs or {}).items():
        fld(("pairs", name, "price_field"), p.price_field)
        cost(("pairs", name, "cost_pair"), p.cost_pair)
    for name, m in (v.spot_markets or {}).items():
        fld(("spot_markets", name, "price_field"), m.price_field)
        cost(("spot_markets", name, "cost_pair"), m.cost_pair)
    for name, msg in fee_tier_mismatches(v):
        where = ("pairs", name, "fee_bps") if v.pairs[name].fee_bps is not None else ("pairs", name)
        add(vdoc, where, msg + "; the simulated pool and the pool traded live must be the same: change one of them")
    if v.lst is not None:
        fld(("lst", "rate_field"), v.lst.rate_field)
        fld(("lst", "yield_field"), v.lst.yield_field)
        cost(("lst", "dex_cost_pair"), v.lst.dex_cost_pair)
    if v.risk is not None:
        for cat, e in v.risk.emode.items():
            if e.ltv > e.liquidation_threshold:
                add(vdoc, ("risk", "emode", cat, "ltv"), f"eMode LTV {e.ltv:g} is above its liquidation threshold {e.liquidation_threshold:g}: "
                                                         "a position at max LTV would be liquidatable; the LTV must be at most the threshold")
            for j, a in enumerate(e.assets):
                asset(("risk", "emode", cat, "assets", j), a)
            for j, a in enumerate(e.borrowable or ()):
                asset(("risk", "emode", cat, "borrowable", j), a)
        for name, r in v.risk.standard.items():
            if r.ltv > r.liquidation_threshold:
                add(vdoc, ("risk", "standard", name, "ltv"), f"{name} LTV {r.ltv:g} is above its liquidation threshold "
                                                             f"{r.liquidation_threshold:g}; the LTV must be at most the threshold")
    if v.perp is not None:
        p = v.perp
        check_margin_tables(v, vdoc, add)
        first = min((t.tiers[0].mmr for t in p.risk_limits.values()), default=0.0)
        if p.initial_margin < first:
            add(vdoc, ("perp", "initial_margin"), f"initial margin {p.initial_margin:g} is below the first-bracket maintenance margin "
                                                  f"rate {first:g}; a new position would open liquidatable")
        if 24 % p.funding_interval_h:
            add(vdoc, ("perp", "funding_interval_h"), f"funding interval {p.funding_interval_h}h does not divide a day; expected "
                                                      "1, 2, 3, 4, 6, 8, 12 or 24")
        hours = p.funding_hours_utc
        if len(set(hours)) != len(hours):
            add(vdoc, ("perp", "funding_hours_utc"), "funding hours are listed twice")


# ----------------------------------------------------------------------------- values
def check_parameters(defaults: list[tuple[str, float, YamlDoc]], config: StrategyConfig, doc: YamlDoc, add: Add) -> None:
    """Rule-file defaults (``defaults``: name, value, rule file) and config parameters against
    :data:`PARAMETER_DOMAINS`."""
    # Non-finite values were refused by the models already (allow_inf_nan=False).
    for name, value, rdoc in defaults:
        if name in config.parameters or not math.isfinite(value):
            continue  # the config's value is the one in force (checked below)
        err = parameter_domain_error(name, value)
        if err:
            add(rdoc, ("parameters", name, "default"), err)
    for name, value in config.parameters.items():
        err = parameter_domain_error(name, value) if math.isfinite(value) else None
        if err:
            add(doc, ("parameters", name), err)


def check_targets(config: StrategyConfig, doc: YamlDoc, targets: list, params: dict[str, float], venues: dict[str, VenueSpec],
                  instruments: dict, value_of: Callable[[Any], float | None], locate: Callable[[Any, tuple], tuple[YamlDoc, tuple]],
                  add: Add) -> None:
    """Domains of the targets' values with the strategy's parameters folded in.

    ``value_of(expr)`` evaluates a number-or-expression (None when it does not evaluate: the
    expression was reported already); ``locate(expr, path)`` is the (document, path) to report a
    value at: the parameter it names (where the config or a rule file sets it) or the target field.
    """
    def val(t_index: int, field: tuple, expr: Any, label: str) -> float | None:
        v = value_of(expr)
        if v is None:
            return None
        if not math.isfinite(v):
            d, p = locate(expr, ("targets", t_index) + field)
            add(d, p, f"{label} is {v}; expected a finite number")
            return None
        return v

    def named(expr: Any, v: float) -> str:
        return f"{expr} = {v:g}" if isinstance(expr, str) else f"{v:g}"

    for i, t in enumerate(targets):
        where = f"target {t.id!r}"
        alloc = getattr(t, "allocation", None)
        if alloc is not None:
            v = val(i, ("allocation",), alloc, f"{where} allocation")
            if v is not None and not 0 <= v <= 1:
                d, p = locate(alloc, ("targets", i, "allocation"))
                add(d, p, f"{where} allocation {named(alloc, v)} is outside [0, 1]: an allocation is a fraction of equity")
        template_for(t).check_values(t, _Values(i, doc, venues, instruments, val, named, locate, add))
    _check_one_emode_per_account(targets, doc, venues, instruments, add)


def _check_one_emode_per_account(targets: list, doc: YamlDoc, venues: dict, instruments: dict, add: Add) -> None:
    """Aave sets eMode per account (``Pool.setUserEMode``): loops on one venue must agree."""
    seen: dict[str, tuple[str | None, str]] = {}
    for i, t in enumerate(targets):
        loop = template_for(t).loop(t)
        lr = loop_risk(loop, venues, instruments) if loop is not None else None
        if lr is None:
            continue
        venue = instruments[loop.collateral][0]
        if venue in seen and seen[venue][0] != lr[0]:
            add(doc, ("targets", i, "emode"), f"target {t.id!r} uses eMode {lr[0] or 'none'!s} on {venue} but target "
                                              f"{seen[venue][1]!r} uses {seen[venue][0] or 'none'!s}: Aave has one eMode "
                                              "category per account; give both the same `emode`")
        seen.setdefault(venue, (lr[0], t.id))


class _Values:
    """What a template's ``check_values`` reads and reports through
    (:class:`trimtab.templates.base.ValueContext`), for target ``index``; fields are relative
    to the target."""

    def __init__(self, index: int, doc: YamlDoc, venues: dict, instruments: dict, val, named, locate, add: Add):
        self.index, self.doc, self.venues, self.instruments = index, doc, venues, instruments
        self._val, self._locate, self._add = val, locate, add
        self.named = named

    def value(self, field: tuple, expr: Any, label: str) -> float | None:
        return self._val(self.index, field, expr, label)

    def add_value(self, expr: Any, field: tuple, message: str) -> None:
        self._add(*self._locate(expr, ("targets", self.index) + field), message)

    def add(self, field: tuple, message: str) -> None:
        self._add(self.doc, ("targets", self.index) + field, message)

    @staticmethod
    def field_error(value: str) -> str | None:
        return field_error(value)

    @staticmethod
    def cost_pairs() -> frozenset[str] | None:
        return _cost_pairs(str(data_dir()))

    @staticmethod
    def suggest(name: str, choices: list[str]) -> str:
        return suggest(name, choices)
