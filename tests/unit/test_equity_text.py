"""equity.csv's text made in Arrow (:func:`trimtab.engine.results._csv_float_arrays`,
:func:`trimtab.engine.results._arrow_rows`) is what ``repr`` and ``time.strftime`` give, byte for
byte, on awkward floats: NaN (any payload, either sign), +-inf, +-0.0, the notation boundaries of
repr (1e-4, 1e16) and Arrow (1e-6, 1e10) and their neighbours, subnormals, integral values large
and small (sparse: repr'd; dense: ".0" appended in bulk), random bit patterns; and
:func:`trimtab.engine.results.write_equity_csv` on both sides of its Arrow threshold and of its
blocks against a plain Python writer of the same file."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from trimtab.engine.results import (_ARROW_MIN, _BLOCK, _arrow_rows, _csv_float_arrays, _repr_rows, equity_columns,
                                    write_equity_csv)

_EDGES = np.array([1e-4, 1e-5, 1e-6, 1e-7, 1e-10, 1e10, 1e10 - 1, 1e10 + 0.5, 1e15, 1e16, 1e17, 1e22, 1e300, 0.5, 1.0,
                   3.0, 2.0 ** 53, 2.0 ** 63, 9999999999.0, 9999999999.5, 123456789.0, 0.0, -0.0, math.inf, -math.inf,
                   math.nan, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 0.3, 2.0 / 3.0])


def _field(x: float) -> str:
    """to_csv's text of one float: repr, empty for NaN."""
    return "" if x != x else repr(x)


def _awkward_columns(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Columns of n floats, each awkward in its own way."""
    with np.errstate(over="ignore"):   # past the largest float: inf, wanted too
        edges = np.concatenate([_EDGES, -_EDGES, np.nextafter(_EDGES, math.inf), np.nextafter(_EDGES, -math.inf)])
    bits = rng.integers(0, 2 ** 64, n, dtype=np.uint64).view(np.float64)   # NaN payloads, every exponent, both signs
    flags = rng.choice([0.0, 1.0, -0.0, math.inf], n)                   # dense integral: ".0" in bulk
    sparse = rng.random(n) * 100.0
    few = min(n, max(1, n // 40))
    sparse[rng.choice(n, size=few, replace=False)] = rng.choice(edges, few)
    mixed = np.where(rng.random(n) < 0.5, rng.integers(-10 ** 12, 10 ** 12, n).astype(np.float64),
                     rng.random(n) * 10.0 ** rng.integers(-12, 18, n))
    return [rng.choice(edges, n), bits, flags, sparse, mixed, np.full(n, math.nan), rng.normal(size=n)]


@pytest.mark.parametrize("n", [1, 15, 16, 17, 100, _BLOCK])   # the bulk ".0" threshold is 1 integral in 16
def test_csv_float_arrays_are_repr_with_nan_null(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        cols = _awkward_columns(rng, n)
        got = [a.to_pylist() for a in _csv_float_arrays(cols)]
        assert got == [[None if x != x else repr(x) for x in c.tolist()] for c in cols]


def test_csv_float_arrays_of_every_edge_in_one_column():
    with np.errstate(over="ignore"):
        col = np.concatenate([_EDGES, -_EDGES, np.nextafter(_EDGES, math.inf), np.nextafter(_EDGES, -math.inf)])
    for dense in (col, np.concatenate([col, np.zeros(16 * col.size)])):   # integral values sparse, then dense
        (got,) = _csv_float_arrays([dense])
        assert got.to_pylist() == [None if x != x else repr(x) for x in dense.tolist()]


def _python_rows(epoch, cols) -> bytes:
    """Each line "\\n" + time + fields, by strftime and repr alone."""
    cols = [np.asarray(c, dtype=np.float64).tolist() for c in cols]
    return "".join("\n" + ",".join([time.strftime("%Y-%m-%d %H:%M:%S+00:00", time.gmtime(e)), *map(_field, row)])
                   for e, *row in zip(epoch, *cols)).encode()


def test_arrow_rows_are_repr_rows():
    rng = np.random.default_rng(11)
    for n in (1, 7, 300):
        cols = _awkward_columns(rng, n)
        epoch = rng.integers(-2 * 10 ** 9, 4 * 10 ** 9, n).tolist()   # before 1970 too, unordered
        want = _python_rows(epoch, cols)
        assert bytes(_arrow_rows(epoch, cols)) == want
        assert _repr_rows(epoch, cols) == want


@pytest.mark.parametrize("n", [0, _ARROW_MIN - 1, _ARROW_MIN, _BLOCK, _BLOCK + 1, 2 * _BLOCK + 7])
def test_write_equity_csv_is_a_python_writer(tmp_path, n):
    rng = np.random.default_rng(n)
    venues = ["binance", "okx"]
    names = equity_columns(venues)
    wide = _awkward_columns(rng, n)
    columns = {k: wide[i % len(wide)] for i, k in enumerate(names)}
    columns[names[0]] = np.repeat(wide[1], 2)[::2]                 # a strided view
    epoch = (1_700_000_000 + 3600 * np.arange(n)).tolist()
    equity, nav = wide[3].tolist(), wide[0]                          # a list and an array
    path = tmp_path / "equity.csv"
    write_equity_csv(path, epoch, equity, nav, tmp_path / "no-journal.sqlite", venues, columns=columns)
    header = ",".join(["time", "equity", "nav", *names]).encode()
    assert path.read_bytes() == header + _python_rows(epoch, [equity, nav, *(columns[k] for k in names)]) + b"\n"
