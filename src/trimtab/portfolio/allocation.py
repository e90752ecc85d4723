"""Sleeve statistics and target weights for a portfolio of strategies (seed 003).

Statistics come from each sleeve's NAV per unit (its engine's ``nav_series``: capital moved in
and out of a sleeve does not count as its return), sampled at 00:00 UTC like
:func:`trimtab.engine.results.performance`:

* daily returns r_t = NAV_t / NAV_{t-1} - 1; volatility = std of daily returns; Sharpe = mean /
  std x sqrt(365), risk-free 0; drawdown = 1 - NAV / running peak; correlation and covariance of
  daily returns (pairwise over the common days). Computed without pandas by
  :mod:`trimtab.portfolio.daily`, float for float what the pandas formulation gives.

Target weights by method (``allocation.method``), before limits:

* ``threshold`` / ``calendar``: the configured weights w;
* ``adaptive`` (performance weighted): t_i proportional to w_i x max(Sharpe_i, 0) over the
  lookback; all scores 0 -> w;
* ``risk_parity``, ``inverse_volatility``: t_i proportional to 1 / vol_i;
  ``equal_risk_contribution``: t with t_i (C t)_i equal for all i (C the covariance), solved by
  cyclical coordinate descent (Griveau-Billion, Richard, Roncalli 2013: each t_i is the positive
  root of C_ii t_i^2 + (sum_{j!=i} C_ij t_j) t_i - 1/n = 0), then normalised.

Limits (:func:`constrain`): sleeves cut for drawdown are fixed at their ``min_weight``; the
others are scaled to the remaining budget and clipped to ``[min_weight, max_weight]``, the
clipped ones fixed and the rest rescaled until nothing moves (water-filling).
"""
from __future__ import annotations

import math

import numpy as np

from ..engine.results import series_mean, series_std
from . import daily
from .daily import DailyTable

VOL_FLOOR = 1e-8  # daily-return std below this counts as this (a smooth lending sleeve)


def daily_navs(epoch, navs: dict[str, list[float]], upto: int, first: int = 0) -> DailyTable:
    """Sleeve NAV at 00:00 UTC of each day (the first known value of the day) over ticks
    ``first..upto`` (inclusive): one column per sleeve. ``epoch``: int epoch seconds per tick."""
    return daily.daily_first(epoch, navs, first, upto)


def daily_returns(epoch, navs: dict[str, list[float]], upto: int, lookback_days: int | None = None) -> DailyTable:
    """Daily returns of each sleeve up to tick ``upto`` (hourly ticks; ``epoch``: int epoch
    seconds per tick), the last ``lookback_days`` of them (all without a lookback)."""
    first = 0
    if lookback_days:
        # Only the ticks the lookback needs (whole days from the day before it).
        first = max(0, upto - (lookback_days + 2) * 24)
        while first > 0 and int(epoch[first]) % daily.DAY >= 3600:   # not in the 00:00 UTC hour
            first -= 1
    r = daily.pct_change(daily_navs(epoch, navs, upto, first))
    return r.tail(lookback_days) if lookback_days else r


def sleeve_stats(returns: DailyTable) -> dict[str, dict[str, float]]:
    """Per sleeve: ``vol`` (daily std), ``sharpe`` (annualised, 365), ``mean`` (daily), ``days``."""
    out = {}
    for k in returns.keys:
        r = returns.column(k)
        r = r[~np.isnan(r)]
        sd = series_std(r) if len(r) > 1 else 0.0
        m = series_mean(r) if len(r) else 0.0
        out[k] = {"vol": sd, "mean": m, "sharpe": m / sd * math.sqrt(365) if sd > 0 else 0.0, "days": int(len(r))}
    return out


def erc_weights(cov: np.ndarray, iters: int = 1000, tol: float = 1e-12) -> np.ndarray:
    """Equal-risk-contribution weights of covariance ``cov`` (n x n), summing to 1."""
    c = np.array(cov, dtype=float)
    n = len(c)
    d = np.maximum(np.diag(c), VOL_FLOOR ** 2)
    c[np.diag_indices(n)] = d
    x = 1.0 / np.sqrt(d)
    b = 1.0 / n
    for _ in range(iters):
        prev = x.copy()
        for i in range(n):
            s = float(c[i] @ x - c[i, i] * x[i])
            x[i] = (-s + math.sqrt(s * s + 4 * c[i, i] * b)) / (2 * c[i, i])
        if np.max(np.abs(x - prev)) <= tol * np.max(np.abs(x)):
            break
    return x / x.sum()


def method_targets(method: str, base: dict[str, float], returns: DailyTable | None, risk_model: str,
                   min_days: int) -> tuple[dict[str, float], dict]:
    """Raw target weights (summing to 1) by ``method`` and what they were computed from.

    ``returns``: daily returns over the lookback (None or fewer than ``min_days`` rows: the
    configured weights ``base``)."""
    if method in ("threshold", "calendar") or returns is None or len(returns.dropna()) < min_days:
        why = "configured weights" if method in ("threshold", "calendar") else f"under {min_days} days of history: configured weights"
        return dict(base), {"basis": why}
    r = returns.dropna()
    stats = sleeve_stats(r)
    keys = list(base)
    if method == "adaptive":
        score = {k: base[k] * max(stats[k]["sharpe"], 0.0) for k in keys}
        tot = sum(score.values())
        if tot <= 0:
            return dict(base), {"basis": "no sleeve has a positive Sharpe: configured weights", "stats": stats}
        return {k: score[k] / tot for k in keys}, {"basis": "weight x max(Sharpe, 0)", "stats": stats}
    if risk_model == "inverse_volatility":
        inv = {k: 1.0 / max(stats[k]["vol"], VOL_FLOOR) for k in keys}
        tot = sum(inv.values())
        return {k: inv[k] / tot for k in keys}, {"basis": "1 / volatility", "stats": stats}
    cov = daily.cov(r.select(keys))
    w = erc_weights(cov)
    rc = w * (cov @ w)
    return {k: float(w[i]) for i, k in enumerate(keys)}, {"basis": "equal risk contribution", "stats": stats,
                                                          "risk_contributions": {k: float(rc[i] / rc.sum()) for i, k in enumerate(keys)}}


def constrain(raw: dict[str, float], lo: dict[str, float], hi: dict[str, float], fixed: dict[str, float] | None = None) -> dict[str, float]:
    """Weights summing to 1 within ``[lo, hi]`` per sleeve, proportional to ``raw`` as far as the
    limits allow: w_i = clip(lam x raw_i, lo_i, hi_i) with lam found by bisection so that the
    weights sum to 1 (``fixed`` sleeves keep their given weight). Limits that cannot sum to 1
    (sum of minimums above 1, or of maximums below 1) give the clipped weights normalised --
    except that weight the others cannot hold goes to the ``fixed`` sleeves first, up to their
    own maximum (a sleeve cut for drawdown holds what the other sleeves' limits leave)."""
    fixed = dict(fixed or {})
    lo2 = {k: fixed.get(k, lo[k]) for k in raw}
    hi2 = {k: fixed.get(k, hi[k]) for k in raw}
    r = {k: max(raw[k], 0.0) if k not in fixed else 0.0 for k in raw}

    def at(lam: float) -> dict[str, float]:
        return {k: min(max(lam * r[k], lo2[k]), hi2[k]) for k in raw}

    if sum(hi2.values()) <= 1.0 and fixed:
        # The others at their maximum leave weight over: the fixed sleeves take it, up to their own maximum.
        w = {k: (hi2[k] if k not in fixed else fixed[k]) for k in raw}
        room = {k: hi[k] - fixed[k] for k in fixed if hi[k] > fixed[k]}
        slack = 1.0 - sum(w.values())
        if room and slack > 0:
            f = min(1.0, slack / sum(room.values()))
            for k, v in room.items():
                w[k] += v * f
        s = sum(w.values())
        return {k: v / s for k, v in w.items()} if s > 0 else w
    if sum(lo2.values()) >= 1.0 or sum(hi2.values()) <= 1.0:
        w = at(1.0 / max(sum(r.values()), 1e-300))
        s = sum(w.values())
        return {k: v / s for k, v in w.items()} if s > 0 else w
    a, b = 0.0, 1.0
    while sum(at(b).values()) < 1.0 and b < 1e300:
        b *= 2.0
    for _ in range(200):
        m = (a + b) / 2
        if sum(at(m).values()) < 1.0:
            a = m
        else:
            b = m
    w = at(b)
    s = sum(w.values())
    return {k: v / s for k, v in w.items()}


def correlation(returns: DailyTable) -> dict[str, dict[str, float | None]]:
    """Correlation matrix of daily returns as nested dicts (None where undefined)."""
    c = daily.corr(returns)
    keys = returns.keys
    return {a: {b: (None if math.isnan(c[i, j]) else float(c[i, j])) for j, b in enumerate(keys)} for i, a in enumerate(keys)}
