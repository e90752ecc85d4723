"""``trimtab audit`` of a portfolio-of-strategies config.

Findings, in the same form as a strategy's (:class:`trimtab.diagnostics.Diagnostic`):

* ``config`` errors: the portfolio config, its machine, rules or a sleeve's config does not load
  (every issue of :func:`trimtab.portfolio.config.load_portfolio`);
* the portfolio machine's structure and rules (the strategy audit's structure and rule checks
  over machines/portfolio.yaml and rules/portfolio.yaml: unreachable states, states that cannot
  be left, guards that never hold, shadowed transitions, hysteresis, ...);
* every sleeve's own audit (its findings are reported at its own files; the warnings a sleeve's
  config acknowledges stay accepted);
* the portfolio config's own ``audit.accept`` (:mod:`trimtab.audit.accept`), over all of these;
* ``data-missing`` when the sleeves' data windows have no common window.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from ..data.feed import load_market_data
from ..diagnostics import Diagnostic
from ..errors import TrimtabError
from ..portfolio.config import load_portfolio
from ..portfolio.window import portfolio_window
from .findings import Context
from .accept import apply_accepts
from .report import AuditReport, load_error_report, sort_accepted, sort_findings
from .rules import check_rules
from .strategy import audit_strategy
from .structure import check_structure


def audit_portfolio(path: str | Path, data=None, start=None, end=None, check_data: bool = True) -> AuditReport:
    """Audit the portfolio config at ``path``; returns an :class:`~trimtab.audit.report.AuditReport`."""
    try:
        p = load_portfolio(path)
    except TrimtabError as e:
        return load_error_report(path, e)
    findings = []
    shim = SimpleNamespace(config=SimpleNamespace(parameters=p.config.parameters, targets=[]), machine=p.machine,
                           machine_file=p.machine_file, rules=p.rules, params=p.params, docs={"config": p.docs["config"]},
                           name=p.name, config_file=p.config_file)
    ctx = Context(shim)
    check_structure(ctx)
    check_rules(ctx)
    # A portfolio has no liquidation to pre-empt: its machine needs no emergency state.
    findings += [f for f in ctx.findings if f.code != "no-emergency-state"]
    window = None
    accepted = []  # each sleeve's acknowledged warnings (its own audit.accept), then the portfolio's
    if check_data:
        if data is None:
            data = load_market_data()
        for spec, s in p.sleeves:
            r = audit_strategy(s, data=data, start=start, end=end, check_data=True)
            findings += r.findings
            accepted += r.accepted
        try:
            w = portfolio_window(p, data, start, end)
            window = (f"{w[0]:%Y-%m-%dT%H:%MZ}", f"{w[1]:%Y-%m-%dT%H:%MZ}")
        except TrimtabError as e:
            doc = p.docs["config"]
            line, col = doc.locate(("sleeves",))
            findings.append(Diagnostic(doc.file, line, col, ("sleeves",), " ".join(str(e).split()), "data-missing"))
    else:
        for spec, s in p.sleeves:
            r = audit_strategy(s, check_data=False)
            findings += r.findings
            accepted += r.accepted
    kept, own = apply_accepts(findings, list(p.config.audit.accept), p.docs["config"], p.root,
                              data_judged=window is not None and start is None and end is None)
    return AuditReport(p.config_file, sort_findings(kept), window, sort_accepted(accepted + own))
