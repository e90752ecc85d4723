"""Rebalancing above single strategies (issue 6).

* :mod:`trimtab.portfolio.drift`: the token drift engine's run -- the engine stepping a
  ``token_weights`` basket (machines/drift.yaml, rules/drift.yaml), plus the rebalance log and
  alerts with cooldowns in the run's journal (:class:`~trimtab.portfolio.drift.DriftTracker`);
* :mod:`trimtab.portfolio.config`: portfolio-of-strategies configs (``sleeves:``) and their
  machine and rules (machines/portfolio.yaml, rules/portfolio.yaml), cross-checked;
* :mod:`trimtab.portfolio.allocation`: per-sleeve statistics and target weights by method
  (threshold, calendar, adaptive, risk parity) under the limits;
* :mod:`trimtab.portfolio.runner`: sleeve engines in lockstep on the hourly clock, started,
  checkpointed, resumed and finished; :mod:`trimtab.portfolio.realloc`: the reallocation
  protocol (capital moved by exiting before entering); :mod:`trimtab.portfolio.store`: the
  run's own SQLite journal; :mod:`trimtab.portfolio.summary`: the finished run's summary.

``trimtab run`` dispatch for both kinds, and their readable summaries, are in
:mod:`trimtab.cli.portfolio` (the command line sits above this package).
"""
