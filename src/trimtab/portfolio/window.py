"""Run windows for baskets and portfolios (:func:`strategy_window`, :func:`portfolio_window`).

:func:`trimtab.engine.window.resolve_window` knows the series each engine template needs; a
``token_weights`` basket also needs the price series of its tokens (oracle and router), so
:func:`strategy_window` narrows the engine's window to what those cover as well.
"""
from __future__ import annotations

from ..data.feed import DataError, MarketData
from ..engine.window import clamp_window, resolve_window
from ..data.market import series_of
from ..planner.drift import basket_of
from ..timeutil import UtcTime


def basket_series(strategy) -> set[str]:
    """Series a ``token_weights`` basket reads: each token's wallet price and its router pair."""
    t = basket_of(strategy)
    if t is None:
        return set()
    assets = strategy.venues["wallet"].assets or {}
    out: set[str] = set()
    for tw in t.tokens:
        a = assets.get(tw.token)
        if a is not None:
            out |= {series_of(f) for f in (a.usd_field, a.eth_rate_field) if f}
    for name, p in (strategy.venues[t.swap_venue].pairs or {}).items():
        if p.price_field and {x if x != "WETH" else "ETH" for x in name.split("/")} & {tw.token for tw in t.tokens}:
            out.add(series_of(p.price_field))
    return out


def strategy_window(strategy, data: MarketData, start=None, end=None) -> tuple[UtcTime, UtcTime]:
    """The engine's window for ``strategy`` (:func:`resolve_window`), narrowed by default to
    what a basket's token series cover, and checked against them when given.

    Raises:
        DataError: a series is not in the data, or the window is outside what it covers.
    """
    extra = sorted(basket_series(strategy))
    have = set(data.series_names())
    missing = [s for s in extra if s not in have]
    if missing:
        raise DataError(f"{strategy.name} needs series the bundled data does not have: {', '.join(missing)}")
    if not extra:
        return resolve_window(strategy, data, start, end)
    a = max(data.coverage(s)[0] for s in extra).ceil("h")
    b = min(data.coverage(s)[1] for s in extra).floor("h")
    d0, d1 = resolve_window(strategy, data)
    d0, d1 = max(d0, a), min(d1, b)
    return clamp_window(f"{strategy.name}'s data", d0, d1, start, end)


def portfolio_window(portfolio, data: MarketData, start=None, end=None) -> tuple[UtcTime, UtcTime]:
    """The common window of every sleeve's data for ``portfolio`` (a loaded
    :class:`trimtab.portfolio.config.Portfolio`), or the given one, checked against each.

    Raises:
        DataError: the sleeves have no common window, or the given one is outside one of them.
    """
    wins = [strategy_window(s, data) for _, s in portfolio.sleeves]
    a, b = max(w[0] for w in wins), min(w[1] for w in wins)
    if a >= b:
        raise DataError(f"{portfolio.name}: the sleeves' data windows do not overlap")
    return clamp_window(f"{portfolio.name}'s sleeves' data (together)", a, b, start, end)
