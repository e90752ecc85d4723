"""The research loop above single backtests (issue 15, items 2 and 3).

* :mod:`.grid` -- ``--grid NAME=SPEC`` / ``--random N`` parsing and variant ids;
* :mod:`.rows` -- the per-variant row of ``sweep.parquet`` (the column contract) and the metric directions;
* :mod:`.variant` -- the worker side: one variant's backtest, as ``trimtab run --set`` runs it;
* :mod:`.cluster` -- the Dask client (a local cluster, or ``--scheduler ADDRESS``) and running tasks on it;
* :mod:`.sweep` -- running every variant, ``sweep.json``, ``sweep.parquet``, resume;
* :mod:`.folds` -- ``--walk-forward IS:OOS`` parsed, the in-sample / out-of-sample windows;
* :mod:`.walkforward` -- in-sample / out-of-sample folds, the choice per fold, the stitched equity.

Each variant is one backtest through the same path as ``trimtab run CONFIG --set ...``
(:func:`trimtab.config.load.load_strategy` with the overrides, the audit, then
:func:`trimtab.engine.backtest.run_backtest`), so a variant's result equals that run's.
"""
from __future__ import annotations

from ..errors import TrimtabError

__all__ = ["ResearchError"]


class ResearchError(TrimtabError):
    """A sweep or walk-forward cannot run as asked: a bad ``--grid`` / ``--walk-forward`` spec, a
    resume whose grid or config differ from ``sweep.json``, a sweep directory that cannot be used.

    ``flag`` names the command-line flag at fault (``"--grid"``), or None; the message says what
    is wrong and how to fix it."""

    def __init__(self, message: str, flag: str | None = None):
        super().__init__(message)
        self.flag = flag

    def __reduce__(self):  # crosses process boundaries (Dask) with its flag
        return (type(self), (str(self), self.flag))
