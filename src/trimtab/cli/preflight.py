"""What ``trimtab run`` checks before it starts a run, and what it adds to the summary after.

* :func:`check_run_flags` -- every flag value and combination that cannot be right, refused as
  a ``typer.BadParameter`` naming the flag (exit 2), before anything is loaded: nothing is
  silently dropped (``--speed`` without ``--replay``) or clamped (``--capital inf``).
* :func:`audit_gate` -- the audit (:mod:`trimtab.audit`) of the config on the market data the
  run has loaded anyway: any error finding refuses the run (exit 1) with every finding printed as
  ``file:line:col: error: [code] path: message``; ``--allow-audit-errors`` runs anyway and the
  findings go into the summary (:func:`amend_summary`). Warnings never refuse.
* :func:`amend_summary` -- the audit findings a run was allowed to start with, and the
  withdrawals it could not pay (a withdrawal larger than the equity is paid up to the equity;
  the rest is reported on stderr and in the summary, never capped silently).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import typer

from ..diagnostics import format_line
from ..engine.flows import FlowError, check_window, parse_flow

EXIT_AUDIT = 1


def _bad(message: str, flag: str) -> typer.BadParameter:
    return typer.BadParameter(message, param_hint=f"'{flag}'")


def check_run_flags(*, capital, speed, live: bool, replay: bool, resume: bool, execute: bool, run_id, flow: list[str],
                    out: Path) -> list:
    """Refuse flag values and combinations ``trimtab run`` cannot honour; return the parsed ``--flow`` list.

    Raises:
        typer.BadParameter: naming the flag (exit 2, one line).
    """
    if capital is not None and not (math.isfinite(capital) and capital > 0):
        raise _bad(f"must be a positive finite amount, got {capital}", "--capital")
    if speed is not None:
        if not (math.isfinite(speed) and speed > 0):
            raise _bad(f"must be a positive finite number of market hours per wall hour, got {speed}", "--speed")
        if not replay:
            raise _bad("sets the pace of a replay; add --live --replay", "--speed")
    if replay and not live:
        raise _bad("replays the bundled history through the live loop; add --live", "--replay")
    if execute and not live:
        raise _bad("sends a live run's plans to the venues; add --live", "--execute")
    if execute and replay:
        raise _bad("real orders need live prices; --execute runs with --live only, not --replay", "--execute")
    if resume and not run_id:
        raise _bad("continues an existing run; name it with --run-id", "--resume")
    if live and (flow or capital is not None):
        raise _bad("--flow and --capital apply to backtests; a live run takes capital flows from the config", "--live")
    check_out_dir(out, "--out")
    try:
        return [parse_flow(f) for f in flow]
    except FlowError as e:
        raise _bad(str(e).removeprefix("--flow: "), "--flow") from None


def check_out_dir(out: Path | None, flag: str = "--out") -> None:
    """Refuse an output directory that is an existing file (raises ``typer.BadParameter``)."""
    if out is not None and out.exists() and not out.is_dir():
        raise _bad(f"{out} is a file, not a directory to write into", flag)


def check_flows_window(flows: list, start, end) -> None:
    """Refuse a ``--flow`` outside the run's window (raises ``typer.BadParameter``)."""
    try:
        check_window(flows, start, end)
    except FlowError as e:
        raise _bad(str(e).removeprefix("--flow: "), "--flow") from None


def audit_gate(config: Path, *, strategy=None, data=None, start=None, end=None, check_data: bool = True,
               allow: bool = False) -> list:
    """Audit ``config`` (or the loaded ``strategy``) before a run.

    Args:
        data: the market data the run loaded (reused; nothing is read twice).
        check_data: False for a run on the live market feed (the bundle's coverage says nothing about it).
        allow: ``--allow-audit-errors``: print the error findings and go on.

    Returns:
        The error findings (empty when there is none) to record with :func:`amend_summary`.

    Raises:
        typer.Exit(1): an error finding and not ``allow``; every finding is printed on stderr first.
    """
    from ..audit import audit_config, audit_strategy

    if strategy is not None:
        report = audit_strategy(strategy, data=data, start=start, end=end, check_data=check_data)
    else:
        report = audit_config(config, data=data, start=start, end=end, check_data=check_data)
    errors = report.errors
    if not errors:
        return []
    for f in errors:
        sys.stderr.write(format_line(f, code=True) + "\n")
    n = len(errors)
    what = f"{config}: {n} audit error{'s' if n != 1 else ''}"
    if not allow:
        sys.stderr.write(f"{what}; nothing was run (trimtab audit {config} lists every finding; "
                         f"--allow-audit-errors runs anyway, for research)\n")
        raise typer.Exit(EXIT_AUDIT)
    sys.stderr.write(f"{what}; running anyway (--allow-audit-errors); the findings are in the summary\n")
    return errors


def amend_summary(summary: dict, run_dir, audit_errors: list) -> None:
    """:func:`trimtab.summary.amend_after_run`, then a warning on stderr about an unpaid withdrawal."""
    from ..summary import amend_after_run

    unpaid = amend_after_run(summary, run_dir, audit_errors)
    if unpaid:
        sys.stderr.write(f"warning: {unpaid:,.2f} of the withdrawals asked for (--flow or the config's flows) was not paid: "
                         f"a withdrawal is paid out of the equity there is, at most all of it "
                         f"(the summary's flows list every request and payout)\n")
