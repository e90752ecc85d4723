"""Rebalancing above single strategies (issue 6).

* :mod:`trimtab.portfolio.drift`: the token drift engine's run -- the engine stepping a
  ``token_weights`` basket (machines/drift.yaml, rules/drift.yaml), plus the rebalance log and
  alerts with cooldowns in the run's journal (:class:`~trimtab.portfolio.drift.DriftTracker`);
* :mod:`trimtab.portfolio.config`: portfolio-of-strategies configs (``sleeves:``) and their
  machine and rules (machines/portfolio.yaml, rules/portfolio.yaml), cross-checked;
* :mod:`trimtab.portfolio.allocation`: per-sleeve statistics and target weights by method
  (threshold, calendar, adaptive, risk parity) under the limits;
* :mod:`trimtab.portfolio.runner`: sleeve engines in lockstep on the hourly clock, capital
  moved by exiting before entering, persisted state and reallocation history;
* :mod:`trimtab.portfolio.cli`: ``trimtab run`` dispatch for both kinds, and the summaries.
"""
