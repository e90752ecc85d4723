"""The data checks' limits (:class:`Bands`), in a module of their own without numpy.

The checks themselves are :mod:`trimtab.data.quality` (numpy); a strategy config's
``data_checks`` block (:class:`trimtab.config.models.DataChecks`) takes its defaults from here,
so loading or validating a config does not import numpy.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Bands"]


@dataclass(frozen=True)
class Bands:
    """How far a value may stray before it is a data fault (fractions unless stated).

    Attributes:
        max_cross_venue_deviation: |price / median of the asset's venues - 1|. 0.25: twice the
            largest deviation in the bundled data (12%), far below a x100 or x0.01 error.
        max_jump: |price / last good price - 1| for a price no other venue confirms. 0.5:
            more than twice the largest one-observation move in the data (21%, daily ETH
            oracle on 2024-08-05).
        max_funding_deviation: |rate - median of the other venues' rates| per funding
            interval (absolute). 0.005: about 5x the largest difference in the data (0.11%).
        max_index_growth_per_day: fastest an Aave index may grow, per day. 0.01 (1% a day,
            3700% a year): 16x the fastest growth in the data (0.06%).
    """

    max_cross_venue_deviation: float = 0.25
    max_jump: float = 0.5
    max_funding_deviation: float = 0.005
    max_index_growth_per_day: float = 0.01

    @classmethod
    def of(cls, obj) -> Bands:
        """Bands from any object with these attributes (the config's ``data_checks``), or defaults for None."""
        if obj is None or isinstance(obj, Bands):
            return obj or cls()
        return cls(**{k: float(getattr(obj, k)) for k in cls.__dataclass_fields__ if getattr(obj, k, None) is not None})
