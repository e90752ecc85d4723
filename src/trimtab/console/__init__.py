"""The operator console (issue 17): ``trimtab serve`` -- a REST API and server-rendered pages
over the run directories of one folder, with a guarded kill switch for live runs.

The journals are the source of truth; the server keeps no state of its own but its token file.

* :mod:`.security` -- the token, the host rules, run ids resolved strictly inside the runs folder;
* :mod:`.runsindex` -- the runs of a folder: kind, config, state, window, equity, APY, liveness, health;
* :mod:`.journals` -- one run's journal read for the API (metrics, plans, fills, alerts), over the
  report's readers (:mod:`trimtab.reports.rundata`);
* :mod:`.api` -- the JSON routes (OpenAPI at ``/openapi.json``); :mod:`.pages` -- the HTML pages;
* :mod:`.live` -- server-sent events of a running run's new ticks;
* :mod:`.app` -- the FastAPI application over a runs folder (:func:`~.app.create_app`).
"""
from __future__ import annotations

from ..errors import TrimtabError


class ConsoleError(TrimtabError):
    """The console cannot start or serve a request (bad runs folder, bad host, token file); the
    message says what is wrong and the fix."""
