"""Per-tick market view over the hourly feed, for the hot loop.

Columns are copied once from :class:`trimtab.data.feed.MarketData` into Python lists, so a
read in the loop is a list index rather than a pandas or numpy call (DESIGN.md: pandas
belongs to loading; the loop works on plain floats). ``view.i`` is the current tick; the view
only ever reads index ``i`` or earlier, which is what keeps decisions free of look-ahead.
"""
from __future__ import annotations

import math

from ..data.feed import DataError, MarketData


def series_of(field: str) -> str:
    """``perp.binance.ETHUSDT.close`` -> ``perp.binance.ETHUSDT``."""
    return field.rsplit(".", 1)[0]


class MarketView:
    """Reads fields at the current tick ``i``.

    Args:
        data: the aligned market data (hourly clock).
        fields: every field the strategy may read; loaded eagerly.

    Raises:
        DataError: a field or series the data does not have.
    """

    def __init__(self, data: MarketData, fields: set[str]):
        self.data = data
        self.times = list(data.index)
        self.epoch = [int(x) for x in data.epoch]
        self.n = len(self.times)
        self.cols: dict[str, list[float]] = {}
        self.ages: dict[str, list[float]] = {}
        self.absent: set[str] = set()
        self._fresh: dict[tuple[str, float], list[bool]] = {}
        self.i = 0
        self.add_fields(fields)

    def add_fields(self, fields: set[str]) -> None:
        """Load more fields (idempotent). A field whose series the bundle lacks (a venue
        catalog lists an instrument with no data, e.g. an OKX BTC perp) is remembered as
        absent: reading it raises DataError, it never reads as a value."""
        have = set(self.data.series_names())
        for f in sorted(set(fields) - set(self.cols) - self.absent):
            s = series_of(f)
            if s not in have:
                self.absent.add(f)
                continue
            self.cols[f] = self.data.field(f).tolist()
            if s not in self.ages:
                self.ages[s] = self.data.age_hours(s).tolist()

    def extend(self, ticks: MarketData) -> int:
        """Append the hourly ticks of ``ticks`` (a live feed's newest hour(s)) to the view.

        ``ticks`` must hold the same series as the view's data and start one hour after the
        view's last tick. Every loaded column and age, the clock (``times``, and ``epoch``,
        which stays the same list object: RewardAccrual and the executor hold it) and the
        cached freshness flags grow by ``len(ticks.index)``; nothing already read changes.
        The values come from :meth:`MarketData.field` / :meth:`MarketData.age_hours`, so a
        live tick is put on the clock by exactly the loader's rules (as-of, event, ages).

        Returns:
            the index of the first appended tick.

        Raises:
            DataError: the ticks do not continue the clock hour by hour.
        """
        first = self.n
        new = [int(x) for x in ticks.epoch]
        if new and self.epoch and new[0] != self.epoch[-1] + 3600:
            raise DataError(f"ticks starting {ticks.index[0]} do not continue the clock after {self.times[-1]}")
        self.times.extend(ticks.index)
        self.epoch.extend(new)
        self.n += len(new)
        for f, col in self.cols.items():
            col.extend(ticks.field(f).tolist())
        for s, col in self.ages.items():
            col.extend(ticks.age_hours(s).tolist())
        for (f, max_age), flags in self._fresh.items():
            if f in self.cols:
                ages = self.ages[series_of(f)]
                flags.extend(not math.isnan(v) and a <= max_age for v, a in zip(self.cols[f][first:], ages[first:]))
            else:
                flags.extend([False] * len(new))
        return first

    @property
    def time(self):
        return self.times[self.i]

    def get(self, field: str, i: int | None = None) -> float:
        """Value of ``field`` at tick ``i`` (default: the current tick); NaN if no data yet.

        Raises:
            DataError: the bundle has no such series.
        """
        try:
            return self.cols[field][self.i if i is None else i]
        except KeyError:
            raise DataError(f"{field}: no such series in the bundled data") from None

    def age(self, field_or_series: str, i: int | None = None) -> float:
        """Hours since the series behind ``field_or_series`` last had an observation (inf if absent)."""
        s = field_or_series if field_or_series in self.ages else series_of(field_or_series)
        if s not in self.ages:
            return math.inf
        return self.ages[s][self.i if i is None else i]

    def fresh(self, field: str, max_age_h: float, i: int | None = None) -> bool:
        """True when the field has a value no older than ``max_age_h`` hours."""
        flags = self._fresh.get((field, max_age_h))
        if flags is None:
            flags = self._fresh[(field, max_age_h)] = self._fresh_flags(field, max_age_h)
        return flags[self.i if i is None else i]

    def _fresh_flags(self, field: str, max_age_h: float) -> list[bool]:
        # Computed once per (field, max age) for the whole window: the loop asks every tick.
        if field not in self.cols:
            return [False] * self.n
        ages = self.ages[series_of(field)]
        return [not math.isnan(v) and a <= max_age_h for v, a in zip(self.cols[field], ages)]

    def require(self, field: str, i: int | None = None) -> float:
        """Value of ``field``; raises DataError rather than returning NaN."""
        v = self.get(field, i)
        if math.isnan(v):
            t = self.times[self.i if i is None else i]
            raise DataError(f"{field} has no data at {t:%Y-%m-%d %H:%M}Z; cannot value or trade on it")
        return v
