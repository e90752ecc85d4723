"""Static audit of a strategy: structure, rules, thresholds, venues and data.

``audit_config(path)`` loads a config (a config that does not load yields ``config`` findings,
one per issue) and runs every check; ``audit_strategy(strategy)`` audits a loaded one. Findings
are :class:`~trimtab.diagnostics.Diagnostic` records, the same type a config error carries: a
severity (``error`` or ``warning``), a code from :data:`~trimtab.audit.findings.CODES` and the
``file:line:col`` and YAML path they come from. They are turned into text only by the renderers
(:mod:`trimtab.cli.audit`: table, JSON, Markdown).

Checks live one area per module: :mod:`.structure`, :mod:`.rules`, :mod:`.thresholds`,
:mod:`.venues`, :mod:`.data`; the guard reasoning they share is :mod:`.intervals`, over the
metric ranges the registry declares or, for findings about one tick of this config, the ranges
the config can produce (:mod:`.scope`). The report type is :mod:`.report`; :mod:`.accept` sets
apart the warnings a config acknowledges (``audit.accept``); :mod:`.strategy` runs the checks on
a strategy, :mod:`.portfolio` on a portfolio of strategies.
"""
from __future__ import annotations

from pathlib import Path

from ..config.load import load_strategy
from ..errors import TrimtabError
from .findings import CODES
from .report import AuditReport, load_error_report, sort_findings
from .strategy import audit_strategy

__all__ = ["AuditReport", "CODES", "audit_config", "audit_strategy", "load_error_report", "sort_findings"]


def audit_config(path: str | Path, data=None, start=None, end=None, check_data: bool = True) -> AuditReport:
    """Load ``path`` and audit it; a config that does not load gives one ``config`` error per issue.
    A portfolio-of-strategies config (``sleeves:``) is audited by
    :func:`trimtab.audit.portfolio.audit_portfolio`."""
    # Imported here: a strategy run's audit gate (cli/preflight.py) needs neither.
    from ..portfolio.config import is_portfolio_file
    from .portfolio import audit_portfolio

    if is_portfolio_file(path):
        return audit_portfolio(path, data=data, start=start, end=end, check_data=check_data)
    try:
        strategy = load_strategy(path)
    except TrimtabError as e:
        return load_error_report(path, e)
    return audit_strategy(strategy, data=data, start=start, end=end, check_data=check_data)
