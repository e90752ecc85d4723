"""One way to read a user's time: any date/time string or Timestamp, naive meaning UTC."""
from __future__ import annotations

import pandas as pd


def utc(ts) -> pd.Timestamp | None:
    """``ts`` as a tz-aware UTC Timestamp (None stays None). Naive times are taken as UTC.

    Raises:
        ValueError: an unparsable time.
    """
    if ts is None:
        return None
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
