"""``audit_strategy``: every check on a loaded strategy (structure, rules, thresholds, venues, data)."""
from __future__ import annotations

from ..config.load import Strategy
from ..data.feed import load_market_data
from .accept import apply_accepts
from .data import bundle_series, check_data as _check_data, needed_series, share_price_usd
from .findings import Context
from .report import AuditReport, sort_accepted, sort_findings
from .rules import check_rules
from .structure import check_structure
from .thresholds import check_thresholds
from .venues import check_venues


def audit_strategy(strategy: Strategy, data=None, start=None, end=None, check_data: bool = True) -> AuditReport:
    """Run every check on a loaded strategy.

    Args:
        data: a :class:`~trimtab.data.feed.MarketData` with the strategy's series (loaded from the
            bundle when None and ``check_data``).
        start, end: the window the data must cover (default: the engine's default window).
        check_data: False skips the data findings and the trade-size checks of non-USD share
            classes (no market data is read).
    """
    ctx = Context(strategy)
    check_structure(ctx)
    check_rules(ctx)
    check_thresholds(ctx)
    window = None
    if check_data:
        if data is None:
            must, optional = needed_series(ctx)
            wanted = sorted((must | optional) & bundle_series())
            data = load_market_data(series=wanted) if wanted else None
        if data is not None:
            window = _check_data(ctx, data, start, end)
    price = share_price_usd(ctx, data, window[0] if window else None)
    check_venues(ctx, strategy.config.capital * price if price is not None else None)
    w = (f"{window[0]:%Y-%m-%dT%H:%MZ}", f"{window[1]:%Y-%m-%dT%H:%MZ}") if window else None
    # Acknowledged warnings (audit.accept); a data entry is judged only over the default window.
    kept, accepted = apply_accepts(ctx.findings, strategy.config.audit.accept, ctx.cdoc, strategy.root,
                                   data_judged=window is not None and start is None and end is None)
    return AuditReport(strategy.config_file, sort_findings(kept), w, sort_accepted(accepted))
