"""The data checks' faster cross-venue judgement (issue 14, engine construction) gives the
verdicts and references of the direct formulation bit for bit.

* ``_nanmedian0``, for 1 to 13 venues, is numpy's nanmedian bit for bit on hostile values.
* :func:`trimtab.data.quality._cross_venue` (the median only where its row's range allows a
  fault) against ``np.nanmedian`` and the check written out, on hostile stacks.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from trimtab.data.quality import _cross_venue, _nanmedian0

_SPECIAL = np.array([np.inf, -np.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, -1.0])


def _same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.view(np.int64) == b.view(np.int64)) | (np.isnan(a) & np.isnan(b))


def test_nanmedian0_is_numpy_nanmedian_for_any_number_of_venues():
    rng = np.random.default_rng(11)
    for _ in range(120):
        k, n = int(rng.integers(1, 14)), int(rng.integers(1, 120))
        a = np.round(rng.normal(size=(k, n)) * 3.0)
        a[rng.random((k, n)) < 0.3] = np.nan
        special = rng.random((k, n)) < 0.1
        a[special] = rng.choice(_SPECIAL, size=int(special.sum()))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            want = np.nanmedian(a, axis=0)
            got = _nanmedian0(a)
        assert _same_bits(got, want).all()


@pytest.mark.parametrize("seed", range(3))
def test_cross_venue_is_the_check_written_out(seed):
    rng = np.random.default_rng(seed)
    for trial in range(120):
        k, n = int(rng.integers(1, 8)), int(rng.integers(1, 300))
        x = 3000.0 * np.exp(rng.normal(scale=0.05, size=n))
        spike = rng.random(n) < 0.05
        x[spike] *= rng.choice([100.0, 0.01, 1.3, 0.7], size=int(spike.sum()))
        vals = [np.where(rng.random(n) < 0.9, x, np.nan)]
        for _ in range(k - 1):
            v = 3000.0 * np.exp(rng.normal(scale=0.05, size=n))
            v[rng.random(n) < 0.2] = np.nan
            odd = rng.random(n) < 0.03
            v[odd] = rng.choice(_SPECIAL, size=int(odd.sum()))   # data a peer's checks would refuse
            vals.append(v)
        if trial % 4 == 0:
            x[rng.random(n) < 0.05] = rng.choice(_SPECIAL)         # the row's own value, hostile
        cnt = sum((v == v).astype(int) for v in vals)
        test = (rng.random(n) < 0.95) & (cnt >= 3)
        dev = float(rng.choice([0.25, 0.05, 0.0, 2.0]))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(np.array(vals), axis=0)
            want = test & (np.abs(x / med - 1.0) > dev)
        bad, ref = _cross_venue(x, vals, test, dev)
        assert np.array_equal(bad, want)
        assert _same_bits(ref[bad], med[bad]).all()
