"""Threshold findings: parameters against each other and against the venues' risk parameters.

For each target holding a lending loop (:meth:`trimtab.templates.base.Template.loop`:
``leveraged_stake``, ``lend_loop``), the effective target LTV of every action state that plans
toward targets (the state's and the entering transition's ``overrides`` applied), with the
lending venue's max LTV and liquidation threshold of the collateral, per asset for the loop's
eMode category (:func:`trimtab.templates.leveraged_stake.loop_risk`):

* ``target-ltv-above-max``: LTV above the venue's max LTV (the borrow would revert);
* ``entry-hf-at-emergency``: health factor LT / LTV at or below a ``health_factor <`` threshold
  of a transition into ``emergency``: the strategy would enter emergency right after entry;
* ``entry-hf-triggers-rule`` (warning): that health factor already satisfies a
  ``health_factor <`` guard of another transition from the state the action returns to;
* ``emergency-cannot-leave``: the emergency plan's health factor (or the hedge's target margin
  ratio) is not above the threshold of the guard that leaves emergency.

For each ``perp_hedge`` target, the margin ratio it targets, R = allocation / (hedge_ratio x
allocation of the hedged targets) (account equity / short notional, DESIGN.md):

* ``hedge-weights-sum``: leg weights not summing to 1 (the planner would silently rescale);
* ``margin-threshold-not-below-target``: a ``margin_ratio <`` threshold at or above R: the
  guard holds right after entry;
* ``margin-threshold-below-maintenance``: a ``margin_ratio <`` threshold at or below the venue's
  maintenance margin: the venue liquidates before the rule fires.

And over all targets: ``allocation-out-of-range`` (an allocation outside (0, 1]; 1 is a single
target holding all equity) and ``allocations-exceed-equity`` (allocations summing above 1).
"""
from __future__ import annotations

from ..templates.leveraged_stake import loop_risk
from ..templates.registry import template_for
from .findings import Context, Trans
from .intervals import fmt
from .rules import Threshold, threshold_loc, thresholds
from .structure import IN_FLIGHT

EPS = 1e-9


def check_thresholds(ctx: Context) -> None:
    """Append the threshold findings of ``ctx`` to ``ctx.findings``."""
    _allocations(ctx)
    for i, t in enumerate(ctx.config.targets):
        if template_for(t).loop(t) is not None:
            _leverage(ctx, i, t)
    _margins(ctx)


def value_of(ctx: Context, expr, params=None) -> float | None:
    """``expr`` (a number or an expression of parameters) evaluated with the config's parameters
    (or ``params``); None for an expression the loader already reported as broken."""
    try:
        return ctx.s.target_value(expr, params)
    except Exception:  # noqa: BLE001 - an expression the loader already reported
        return None


def _allocations(ctx: Context) -> None:
    total, parts = 0.0, []
    for i, t in enumerate(ctx.config.targets):
        alloc = getattr(t, "allocation", None)
        if alloc is None:
            continue
        v = value_of(ctx, alloc)
        if v is None:
            continue
        total += v
        parts.append(f"{t.id} {fmt(v)}")
        if not (0 < v <= 1 + EPS):
            ctx.add_at("allocation-out-of-range", ctx.value_loc(alloc, ("targets", i, "allocation")),
                       f"target {t.id!r} allocation {alloc if isinstance(alloc, str) else ''}{' = ' if isinstance(alloc, str) else ''}{fmt(v)} "
                       f"is outside (0, 1]: an allocation is a fraction of equity")
    if total > 1 + EPS:
        ctx.add("allocations-exceed-equity", ctx.cdoc, ("targets",),
                f"target allocations sum to {fmt(total)} ({', '.join(parts)}), more than the whole equity", key=True)


def lending_risk(ctx: Context, loop) -> tuple[float, float, str] | None:
    """(max LTV, liquidation threshold, which parameter set) of a lending loop's venue
    (a :class:`trimtab.templates.base.Loop`)."""
    coll = ctx.s.instruments.get(loop.collateral)
    debt = ctx.s.instruments.get(loop.debt)
    if not coll or not debt:
        return None
    lr = loop_risk(loop, ctx.s.venues, ctx.s.instruments)   # per asset, for the loop's eMode category
    if lr is None:
        return None
    return lr[1].ltv, lr[1].liquidation_threshold, lr[2]


def ltv_variants(ctx: Context, idx: int, loop) -> list[dict]:
    """The target LTV of target ``idx``'s lending ``loop`` in force in each action state that
    plans toward targets, per entering transition: dicts of state, transition, value, the
    parameter it comes from, and location."""
    out: dict[tuple, dict] = {}
    for state, st in ctx.machine.states.items():
        if st.action is None or st.action.kind not in ("target", "emergency"):
            continue
        entering = [tr for tr in ctx.transitions if tr.dest == state and tr.index in ctx.feasible_transitions] or [None]
        for tr in entering:
            ov = {**st.action.overrides, **(tr.overrides if tr else {})}
            p = dict(ctx.params)
            for k, v in ov.items():
                p[k] = ctx.params[v] if isinstance(v, str) else float(v)
            value = value_of(ctx, loop.target_ltv, p)
            if value is None:
                continue
            name = loop.target_ltv.strip() if isinstance(loop.target_ltv, str) else None
            loc = None
            if name and name in ov:
                src = ov[name]
                if isinstance(src, str):
                    name = src
                else:
                    where = ("transitions", tr.index, "overrides", name) if tr and name in tr.overrides else ("states", state, "action", "overrides", name)
                    loc, name = (ctx.mdoc, where, False), None
            if loc is None:
                loc = ctx.value_loc(name, ("targets", idx, "target_ltv")) if name else (ctx.cdoc, ("targets", idx, "target_ltv"), False)
            key = (value, name, loc[1])
            v = out.setdefault(key, {"value": value, "param": name, "loc": loc, "states": [], "via": []})
            if state not in v["states"]:
                v["states"].append(state)
            if tr:
                v["via"].append(tr)
    return list(out.values())


def _label(v: dict) -> str:
    return f"{v['param']} = {fmt(v['value'])}" if v["param"] else f"target LTV {fmt(v['value'])}"


def _completion_dests(ctx: Context, state: str) -> set[str]:
    return {t.dest for t in ctx.outgoing(state)
            if t.dest != state and t.index in ctx.feasible_transitions and not ctx.can_hold(ctx.guard(t), env=IN_FLIGHT)}


def _hf_thresholds(ctx: Context, ts: list[Trans], direction: str) -> list[tuple[Trans, Threshold]]:
    out = []
    for tr in ts:
        for r in tr.when:
            for th in thresholds(ctx, r):
                if th.metric == "health_factor" and th.direction == direction:
                    out.append((tr, th))
    return out


def _holds(value: float, th: Threshold) -> bool:
    return {"<": value < th.value, "<=": value <= th.value, ">": value > th.value, ">=": value >= th.value}[th.op]


def _leverage(ctx: Context, i: int, t) -> None:
    loop = template_for(t).loop(t)
    risk = lending_risk(ctx, loop)
    if risk is None:
        return
    max_ltv, lt, which = risk
    em = ctx.emergency
    em_enter = [tr for tr in ctx.transitions if tr.dest == em and any(s != em for s in tr.sources)] if em else []
    em_leave = [tr for tr in ctx.transitions if em in tr.sources and tr.dest != em] if em else []
    for v in ltv_variants(ctx, i, loop):
        ltv = v["value"]
        states = ", ".join(v["states"])
        if ltv > max_ltv + EPS:
            ctx.add_at("target-ltv-above-max", v["loc"],
                       f"{_label(v)} (target {t.id!r}, state {states}) is above the {which} max LTV {fmt(max_ltv)}: the borrow would revert")
        if ltv <= 0:
            continue
        hf = lt / ltv
        implied = f"{_label(v)} with the {which} liquidation threshold {fmt(lt)} implies health factor {hf:.4f}"
        if em and v["states"] != [em]:
            hits = [(tr, th) for tr, th in _hf_thresholds(ctx, em_enter, "<") if hf <= th.value + EPS]
            if hits:
                tr, th = hits[0]
                ctx.add_at("entry-hf-at-emergency", v["loc"],
                           f"{implied} after {states}, at or below the emergency threshold {th.text()} (rule {th.rule}, "
                           f"transition {tr.trigger}): the strategy would enter emergency right after entry")
            else:
                for s in v["states"]:
                    dests = _completion_dests(ctx, s)
                    others = [tr for d in dests for tr in ctx.outgoing(d) if tr.dest != em and tr.index in ctx.feasible_transitions]
                    trig = [(tr, th) for tr, th in _hf_thresholds(ctx, others, "<") if _holds(hf, th)]
                    if trig:
                        tr, th = trig[0]
                        ctx.add_at("entry-hf-triggers-rule", v["loc"],
                                   f"{implied} after {s}, which already satisfies {th.text()} (rule {th.rule}): "
                                   f"{tr.trigger!r} would fire right after {s} completes")
                        break
        if em and em in v["states"]:
            for tr, th in _hf_thresholds(ctx, em_leave, ">"):
                if not _holds(hf, th):
                    ctx.add_at("emergency-cannot-leave", v["loc"],
                               f"{implied} after the emergency plan, not above the leave threshold {th.text()} "
                               f"(rule {th.rule}, transition {tr.trigger}): emergency could never be left by deleveraging")
                    break


def margin_target(ctx: Context, h) -> tuple[float, str] | None:
    """(margin ratio the hedge targets, how it was computed), or None if it hedges nothing."""
    alloc = value_of(ctx, h.allocation)
    ratio = value_of(ctx, h.hedge_ratio)
    if alloc is None or ratio is None:
        return None
    by_id = {t.id: t for t in ctx.config.targets}
    wallet = ctx.s.venues.get("wallet")
    assets = (wallet.assets or {}) if wallet else {}

    def delta_asset(key: str) -> str | None:
        asset = ctx.s.instruments[key][1].asset if key in ctx.s.instruments else None
        return assets[asset].delta_asset if asset in assets else None

    hedged = 0.0
    for hid in h.hedges:
        t = by_id.get(hid)
        if t is not None:
            hedged += template_for(t).hedged_fraction(t, lambda e: value_of(ctx, e), delta_asset, ctx.config.asset)
    notional = ratio * hedged
    if notional <= 0:
        return None
    return alloc / notional, f"margin allocation {fmt(alloc)} / (hedge_ratio {fmt(ratio)} x hedged allocation {fmt(hedged)})"


def _margins(ctx: Context) -> None:
    hedges = [(i, t) for i, t in enumerate(ctx.config.targets) if template_for(t).hedge_legs(t)]
    if not hedges:
        return
    targets = []
    maint: dict[str, float] = {}
    for i, h in hedges:
        legs = template_for(h).hedge_legs(h)
        weights = [value_of(ctx, leg.weight) for leg in legs]
        if all(w is not None for w in weights) and abs(sum(weights) - 1) > 1e-6:
            listing = ", ".join(f"{leg.instrument} {fmt(w)}" for leg, w in zip(legs, weights))
            ctx.add("hedge-weights-sum", ctx.cdoc, ("targets", i, "legs"),
                    f"hedge {h.id!r} leg weights sum to {fmt(sum(weights))}, not 1 ({listing}); the planner would rescale them silently", key=True)
        mt = margin_target(ctx, h)
        if mt:
            targets.append((h, *mt))
        for leg in legs:
            inst = ctx.s.instruments.get(leg.instrument)
            perp = ctx.s.venues[inst[0]].perp if inst else None
            if perp and leg.instrument in perp.risk_limits:
                # the first bracket's rate: the exchange's floor, a statement about every position size
                first = perp.risk_limits[leg.instrument].tiers[0].mmr
                maint[inst[0]] = max(maint.get(inst[0], 0.0), first)
    seen = set()
    em = ctx.emergency
    for tr in ctx.transitions:
        for r in tr.when:
            for th in thresholds(ctx, r):
                if not (th.metric == "margin_ratio_min" or th.metric.startswith("margin_ratio.")):
                    continue
                key = (th.rule, th.metric, th.op, th.value)
                if th.direction == "<" and key not in seen:
                    seen.add(key)
                    for h, R, how in targets:
                        if th.value >= R - EPS:
                            ctx.add_at("margin-threshold-not-below-target", threshold_loc(ctx, th),
                                       f"{th.text()} (rule {th.rule}) is not below the margin ratio hedge {h.id!r} targets, "
                                       f"{fmt(R)} = {how}: {tr.trigger!r} would fire right after entry")
                            break
                    venue = th.metric.split(".", 1)[1] if th.metric.startswith("margin_ratio.") else None
                    mm = maint.get(venue) if venue else max(maint.values(), default=None)
                    if mm is not None and th.value <= mm + EPS:
                        ctx.add_at("margin-threshold-below-maintenance", threshold_loc(ctx, th),
                                   f"{th.text()} (rule {th.rule}) is at or below the maintenance margin {fmt(mm)}"
                                   f"{' of ' + venue if venue else ' of the strictest hedge venue'}: the venue liquidates before the rule fires")
                if th.direction == ">" and em and em in tr.sources and tr.dest != em and key not in seen:
                    seen.add(key)
                    for h, R, how in targets:
                        if R <= th.value + EPS:
                            ctx.add_at("emergency-cannot-leave", threshold_loc(ctx, th),
                                       f"{th.text()} (rule {th.rule}, transition {tr.trigger}) is not below the margin ratio the "
                                       f"emergency plan restores, {fmt(R)} = {how}: emergency could never be left")
                            break
