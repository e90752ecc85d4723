"""Static audit of a strategy: structure, rules, thresholds, venues and data.

``audit_config(path)`` loads a config (a config that does not load yields ``config`` findings,
one per issue) and runs every check; ``audit_strategy(strategy)`` audits a loaded one. Findings
(:class:`~trimtab.audit.findings.Finding`) carry a severity (``error`` or ``warning``), a
code from :data:`~trimtab.audit.findings.CODES` and the ``file:line:col`` they come from.

Checks live one area per module: :mod:`.structure`, :mod:`.rules`, :mod:`.thresholds`,
:mod:`.venues`, :mod:`.data`; the guard reasoning they share is :mod:`.intervals`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config.load import Strategy, load_strategy
from ..errors import ConfigError, TrimtabError
from .findings import CODES, Context, Finding

__all__ = ["AuditReport", "CODES", "Finding", "audit_config", "audit_strategy"]

_ORDER = {"error": 0, "warning": 1}


@dataclass
class AuditReport:
    """Findings of one config, sorted errors first then by file position; ``window`` is the
    data window checked (None if data was not checked)."""

    config: str
    findings: list[Finding] = field(default_factory=list)
    window: tuple[str, str] | None = None

    @property
    def errors(self) -> list[Finding]:
        """Findings of severity ``error``."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """Findings of severity ``warning``."""
        return [f for f in self.findings if f.severity == "warning"]

    def to_dict(self) -> dict:
        """JSON-ready: config, window, error and warning counts, findings (dicts of Finding's fields)."""
        return {"config": self.config, "window": list(self.window) if self.window else None,
                "errors": len(self.errors), "warnings": len(self.warnings),
                "findings": [f.to_dict() for f in self.findings]}


def _sorted(findings: list[Finding]) -> list[Finding]:
    unique = list(dict.fromkeys(findings))
    return sorted(unique, key=lambda f: (_ORDER.get(f.severity, 2), f.file, f.line, f.col, f.code, f.message))


def audit_strategy(strategy: Strategy, data=None, start=None, end=None, check_data: bool = True) -> AuditReport:
    """Run every check on a loaded strategy.

    Args:
        data: a :class:`~trimtab.data.feed.MarketData` with the strategy's series (loaded from the
            bundle when None and ``check_data``).
        start, end: the window the data must cover (default: the engine's default window).
        check_data: False skips the data findings and the trade-size checks of non-USD share
            classes (no market data is read).
    """
    from .data import bundle_series, check_data as _check_data, needed_series, share_price_usd
    from .rules import check_rules
    from .structure import check_structure
    from .thresholds import check_thresholds
    from .venues import check_venues

    ctx = Context(strategy)
    check_structure(ctx)
    check_rules(ctx)
    check_thresholds(ctx)
    window = None
    if check_data:
        if data is None:
            from ..data.feed import load_market_data

            must, optional = needed_series(ctx)
            wanted = sorted((must | optional) & bundle_series())
            data = load_market_data(series=wanted) if wanted else None
        if data is not None:
            window = _check_data(ctx, data, start, end)
    price = share_price_usd(ctx, data, window[0] if window else None)
    check_venues(ctx, strategy.config.capital * price if price is not None else None)
    w = (f"{window[0]:%Y-%m-%dT%H:%MZ}", f"{window[1]:%Y-%m-%dT%H:%MZ}") if window else None
    return AuditReport(strategy.config_file, _sorted(ctx.findings), w)


def load_error_report(path, e: TrimtabError) -> AuditReport:
    """The report of a config that does not load: every ConfigError issue, or the one error."""
    if isinstance(e, ConfigError):
        return AuditReport(str(path), _sorted([Finding(i.file, i.line, i.col, "config", i.path, i.message, "error") for i in e.issues]))
    return AuditReport(str(path), [Finding(str(path), 1, 1, "config", "<root>", " ".join(str(e).split()), "error")])


def audit_config(path: str | Path, data=None, start=None, end=None, check_data: bool = True) -> AuditReport:
    """Load ``path`` and audit it; a config that does not load gives one ``config`` error per issue.
    A portfolio-of-strategies config (``sleeves:``) is audited by
    :func:`trimtab.portfolio.audit.audit_portfolio`."""
    from ..portfolio.config import is_portfolio_file

    if is_portfolio_file(path):
        from ..portfolio.audit import audit_portfolio

        return audit_portfolio(path, data=data, start=start, end=end, check_data=check_data)
    try:
        strategy = load_strategy(path)
    except TrimtabError as e:
        return load_error_report(path, e)
    return audit_strategy(strategy, data=data, start=start, end=end, check_data=check_data)
