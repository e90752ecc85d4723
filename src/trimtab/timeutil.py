"""One way to read a user's time: any date/time string, datetime or Timestamp, naive meaning UTC.

Without pandas: a ``trimtab run`` never imports it (~0.4 s and ~75 MB), so times on the run path
are :class:`UtcTime`, a tz-aware UTC :class:`datetime.datetime` that also answers the few
``pandas.Timestamp`` members callers use (``value``, ``floor("h")``, ``ceil("h")``,
``tz_convert("UTC")``). It formats (``f"{t:%Y-%m-%d %H:%M}"``, ``str``, ``isoformat``) and
compares (with datetimes and Timestamps) exactly as the Timestamp it replaces.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from numbers import Integral

#: Seconds in an hour.
_HOUR = 3600


class UtcTime(datetime):
    """A tz-aware UTC datetime, whole microseconds (what :func:`utc` returns).

    Arithmetic with a ``timedelta`` and ``replace`` keep the type (Python >= 3.8)."""

    @classmethod
    def of_epoch(cls, seconds: int) -> UtcTime:
        """The time ``seconds`` (int, epoch seconds) after 1970-01-01T00:00Z."""
        return _EPOCH + timedelta(seconds=int(seconds))

    @property
    def value(self) -> int:
        """Nanoseconds since the epoch, as ``pandas.Timestamp.value``."""
        return (self - _EPOCH) // _US * 1000

    @property
    def epoch(self) -> int:
        """Whole seconds since the epoch (floored, as ``value // 10**9``)."""
        return (self - _EPOCH) // _S

    def floor(self, freq: str) -> UtcTime:
        """The hour at or before this time (``freq`` must be ``"h"``, as pandas spells an hour).

        Raises:
            ValueError: another frequency."""
        _hourly(freq)
        return UtcTime.of_epoch(self.epoch // _HOUR * _HOUR)

    def ceil(self, freq: str) -> UtcTime:
        """The hour at or after this time (``freq`` must be ``"h"``). Raises ValueError otherwise."""
        _hourly(freq)
        f = self.floor(freq)
        return f if f == self else f + timedelta(hours=1)

    def tz_convert(self, tz) -> UtcTime:
        """This time; only ``"UTC"`` is known (every run-path time is UTC).

        Raises:
            ValueError: another time zone."""
        if str(tz) != "UTC":
            raise ValueError(f"UtcTime only converts to UTC, not {tz!r}")
        return self


_EPOCH = UtcTime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
_S = timedelta(seconds=1)


class NotATime(ValueError):
    """A value that reads as no time at all (empty, ``NaT``, ``nan``)."""


def _hourly(freq: str) -> None:
    if freq not in ("h", "H"):
        raise ValueError(f"UtcTime rounds to the hour only ('h'), not {freq!r}")


def _of(d: datetime) -> UtcTime:
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    elif d.utcoffset() != timedelta(0) or d.tzinfo is not timezone.utc:
        d = d.astimezone(timezone.utc)
    return UtcTime(d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, tzinfo=timezone.utc)


def utc(ts) -> UtcTime | None:
    """``ts`` as a tz-aware UTC :class:`UtcTime` (None stays None). Naive times are taken as UTC.

    Reads ISO 8601 text (``2024-06-01``, ``2024-06-01T03:00Z``, ``2024-06-01 03:00+02:00``),
    datetimes (a ``pandas.Timestamp`` is one) and integers (nanoseconds since the epoch, as
    ``pandas.Timestamp(int)``; floored to the microsecond) without pandas; any other text or
    value is read by ``pandas.Timestamp`` (imported then), as before, so every time it read
    still reads the same.

    Raises:
        ValueError: an unparsable time (:class:`NotATime` for one that reads as no time, NaT).
    """
    if ts is None:
        return None
    if isinstance(ts, UtcTime):
        return ts
    if isinstance(ts, datetime):
        if ts != ts:  # pandas.NaT is a datetime that equals nothing
            raise NotATime(f"not a time: {ts!r}")
        return _of(ts)
    if isinstance(ts, Integral) and not isinstance(ts, bool):
        return _EPOCH + timedelta(microseconds=int(ts) // 1000)
    if isinstance(ts, str):
        try:
            return _of(datetime.fromisoformat(ts.strip()))
        except ValueError:
            pass  # not ISO 8601: pandas reads more spellings
    import pandas as pd  # only for a spelling the standard library does not read

    t = pd.Timestamp(ts)
    if t is pd.NaT:
        raise NotATime(f"not a time: {ts!r}")
    return _of(t.to_pydatetime())
