"""Charts and self-contained HTML reports of runs and sweeps (issue 15, item 4).

* :mod:`.rundata` -- a run directory read back and checked (:class:`~.rundata.LoadedRun`);
* :mod:`.thresholds` -- the lines a risk chart is drawn against (rule thresholds, liquidation levels);
* :mod:`.charts` -- pure figure builders ``fig_*(run) -> plotly Figure | None`` over a LoadedRun;
* :mod:`.run_report` -- the report of one run (strategy, drift basket or portfolio);
* :mod:`.sweepdata` / :mod:`.sweep_report` -- a sweep directory read back, and its report;
* :mod:`.html` -- one page: plotly's JavaScript embedded once, the figures, the tables.

Layer ``reports`` (tests/unit/test_layering.py): may import anything of trimtab but the CLI.
"""
from __future__ import annotations

from ..errors import TrimtabError

__all__ = ["ReportError"]


class ReportError(TrimtabError):
    """A run or sweep directory that cannot be reported: not found, or a file in it missing or
    corrupt. The message names the file (and column or key) and says how to fix it."""
