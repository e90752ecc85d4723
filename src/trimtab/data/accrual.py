"""Aave v3 index accrual between samples, as the protocol computes it on-chain.

An Aave reserve's indices grow between updates at the rate in force at the last update
(``ReserveLogic.getNormalizedIncome`` / ``getNormalizedDebt`` -> ``ReserveLogic._updateIndexes``):

* liquidity index: ``index_a x calculateLinearInterest(liquidityRate_a, t - t_a)``,
  linear: ``1 + rate x dt / SECONDS_PER_YEAR``;
* variable-borrow index: ``index_a x calculateCompoundedInterest(variableBorrowRate_a, t - t_a)``,
  the protocol's 3-term binomial approximation of ``(1 + rate / SECONDS_PER_YEAR) ** dt``:
  ``1 + r dt + dt(dt-1) r^2 / 2 + dt(dt-1)(dt-2) r^3 / 6`` with ``r = rate / SECONDS_PER_YEAR``.

Source: aave-dao/aave-v3-origin ``src/contracts/protocol/libraries/math/MathUtils.sol``
(``SECONDS_PER_YEAR = 365 days``), worked examples in ``tests/protocol/libraries/math/MathUtils.t.sol``
(rate 1.0005 over half a year: linear 1.50025, compounded 1.646239361880034706419516).

The bundle samples each reserve daily (index and rates at 00:00 UTC). Accruing from the last
sample at its rates reads, at every hour, only what was known then -- unlike interpolating
toward the next day's sample, which used the next day's index (look-ahead). The two differ by
the intraday change of the rate; ``.venv/bin/python bench/aave_accrual.py`` measures it on the
bundled data: mean |relative difference| per hour 5e-8 (wstETH) to 1e-5 (USDT), largest 5.3e-4
(WETH / USDT borrow index on days the rate moved most); the accrued index then steps to the next
sample by at most the same 5.5e-4 (0.055%), on a debt index that is applied to the whole loop.
"""
from __future__ import annotations

import numpy as np

#: MathUtils.SECONDS_PER_YEAR (365 days, leap years ignored).
SECONDS_PER_YEAR = 365 * 24 * 3600

#: Index column -> (rate column in force, accrual kind), for the Aave reserve series.
ACCRUAL = {"liquidity_index": ("liquidity_rate", "linear"),
           "variable_borrow_index": ("variable_borrow_rate", "compounded")}


def linear_interest(rate, dt_s):
    """MathUtils.calculateLinearInterest: growth factor ``1 + rate x dt_s / SECONDS_PER_YEAR`` of
    an annual ``rate`` (fraction, not ray) over ``dt_s`` seconds (scalars or numpy arrays)."""
    return 1.0 + np.asarray(rate, dtype=np.float64) * np.asarray(dt_s, dtype=np.float64) / SECONDS_PER_YEAR


def compounded_interest(rate, dt_s):
    """MathUtils.calculateCompoundedInterest: growth factor of an annual ``rate`` (fraction)
    compounded per second over ``dt_s`` seconds, by the protocol's 3-term approximation
    (``expMinusTwo`` is 0 for ``dt_s`` <= 2, as in the contract); exactly 1 at ``dt_s`` = 0."""
    r = np.asarray(rate, dtype=np.float64) / SECONDS_PER_YEAR
    n = np.asarray(dt_s, dtype=np.float64)
    n1, n2 = np.maximum(n - 1, 0.0), np.where(n > 2, n - 2, 0.0)
    return 1.0 + r * n + n * n1 * r * r / 2.0 + n * n1 * n2 * r * r * r / 6.0


#: WadRayMath.RAY: the contract's fixed-point unit (27 decimals).
RAY = 10 ** 27


def compounded_interest_ray(rate_ray: int, dt_s: int) -> int:
    """MathUtils.calculateCompoundedInterest in the contract's integer ray arithmetic (rayMul
    rounds half up, divisions truncate): for checking :func:`compounded_interest` against the
    protocol's own test values. The float version differs from it only by that truncation
    (relative 2e-7 at a 100% rate over half a year, < 1e-12 at the bundled rates over a day)."""
    if dt_s == 0:
        return RAY
    ray_mul = lambda a, b: (a * b + RAY // 2) // RAY  # noqa: E731 - WadRayMath.rayMul
    e1, e2 = dt_s - 1, dt_s - 2 if dt_s > 2 else 0
    p2 = ray_mul(rate_ray, rate_ray) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    p3 = ray_mul(p2, rate_ray) // SECONDS_PER_YEAR
    return RAY + rate_ray * dt_s // SECONDS_PER_YEAR + dt_s * e1 * p2 // 2 + dt_s * e1 * e2 * p3 // 6


def linear_interest_ray(rate_ray: int, dt_s: int) -> int:
    """MathUtils.calculateLinearInterest in integer ray arithmetic."""
    return RAY + rate_ray * dt_s // SECONDS_PER_YEAR


def accrue(t_s: np.ndarray, index: np.ndarray, rate: np.ndarray, epoch: np.ndarray, kind: str) -> np.ndarray:
    """An index at ticks ``epoch`` (epoch s) from samples ``(t_s, index, rate)`` (epoch s sorted;
    index > 0; annual rate fractions): the last sample at or before each tick, accrued from its
    time at its rate (``kind`` ``linear`` or ``compounded``). NaN before the first sample; a
    sample with no rate holds its index. Shape of ``epoch``."""
    out = np.full(epoch.shape, np.nan)
    if t_s.size == 0:
        return out
    a = np.searchsorted(t_s, epoch, side="right") - 1
    ok = a >= 0
    ai = a[ok]
    dt = (epoch[ok] - t_s[ai]).astype(np.float64)
    r = np.nan_to_num(rate[ai], nan=0.0)
    f = linear_interest(r, dt) if kind == "linear" else compounded_interest(r, dt)
    out[ok] = index[ai] * f
    return out
