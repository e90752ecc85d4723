"""The data checks' fast median (issue 14, load time) is numpy's nanmedian bit for bit.

``quality._nanmedian0`` replaces ``np.nanmedian(stack, axis=0)`` in the cross-venue and funding
checks; a quarantine decision or the reference a reason quotes must not move by one ulp, so it is
compared with numpy itself on hostile stacks: NaN columns, +-inf, +-0.0, ties, 1e308 (overflow in
the middle sum), one to eight venues.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from trimtab.data.quality import _nanmedian0

_SPECIAL = np.array([np.inf, -np.inf, 0.0, -0.0, 1e308, -1e308, 5e-324])


def _same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per element: identical float64 bits, or both NaN (numpy's NaN payload is not specified)."""
    return (a.view(np.int64) == b.view(np.int64)) | (np.isnan(a) & np.isnan(b))


@pytest.mark.parametrize("seed", range(4))
def test_nanmedian0_is_numpy_nanmedian_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    for trial in range(150):
        k, n = int(rng.integers(1, 9)), int(rng.integers(1, 200))
        a = rng.normal(size=(k, n)) * 10.0 ** int(rng.integers(-8, 300))
        if trial % 3 == 0:
            a = np.round(a)                                   # ties, and zeros of both signs
        a[rng.random((k, n)) < rng.random()] = np.nan
        special = rng.random((k, n)) < 0.15
        a[special] = rng.choice(_SPECIAL, size=int(special.sum()))
        # inf + -inf and 1e308 + 1e308 in the middle sum are part of the test; assess runs
        # both under np.errstate(all="ignore") too
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)   # numpy warns on all-NaN columns
            want = np.nanmedian(a, axis=0)
            got = _nanmedian0(a)
        assert got.shape == want.shape
        bad = ~_same_bits(got, want)
        assert not bad.any(), (a[:, bad][:, 0], got[bad][0], want[bad][0])


def test_nanmedian0_leaves_its_input_alone():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(5, 50))
    a[rng.random(a.shape) < 0.3] = np.nan
    before = a.copy()
    _nanmedian0(a)
    assert _same_bits(a.ravel(), before.ravel()).all()
