"""Pydantic models of an Aave v3 market's risk parameters (venue YAML ``risk``): eMode
categories, per-reserve parameters and the liquidation constants, with the per-asset lookups
the protocol does (a venue model of :mod:`trimtab.config.models`)."""
# No `from __future__ import annotations`: pydantic reads these at import (templates/base.py).

from pydantic import Field

from ..templates.base import Strict


class EmodeSpec(Strict):
    """One Aave v3 eMode category. ``assets``: its collateral members (they use the category's
    ``ltv`` / ``liquidation_threshold`` / ``liquidation_bonus`` instead of their own);
    ``borrowable``: the assets a user in the category may borrow (v3.2+ ``borrowableBitmap``;
    omitted: the same as ``assets``, as every member was both before v3.2). ``id``: the
    on-chain category id (``Pool.setUserEMode``). Source: aave-v3-origin
    ``DataTypes.EModeCategory``, ``GenericLogic.calculateUserAccountData``."""

    id: int | None = Field(None, ge=1, le=255)
    label: str | None = None
    assets: list[str]
    borrowable: list[str] | None = None
    ltv: float = Field(gt=0, lt=1)
    liquidation_threshold: float = Field(gt=0, lt=1)
    liquidation_bonus: float = Field(ge=0, lt=1)

    def can_borrow(self, asset: str) -> bool:
        """Whether a user in this category may borrow ``asset`` (ValidationLogic.validateBorrow)."""
        return asset in (self.borrowable if self.borrowable is not None else self.assets)


class ReserveRisk(Strict):
    ltv: float = Field(ge=0, lt=1)
    liquidation_threshold: float = Field(ge=0, lt=1)
    liquidation_bonus: float = Field(ge=0, lt=1)


class LendingRisk(Strict):
    """An Aave v3 market's risk parameters. ``emode``: its eMode categories by name (a strategy
    target picks one with ``emode:``); ``standard``: each reserve's own LTV / LT / bonus.
    Liquidation constants of ``LiquidationLogic`` (aave-v3-origin v3.3): ``close_factor``
    (DEFAULT_LIQUIDATION_CLOSE_FACTOR 0.5) while HF > ``full_close_health_factor``
    (CLOSE_FACTOR_HF_THRESHOLD 0.95) and the liquidated reserve's debt and collateral are both
    at least ``max_close_factor_threshold_usd`` (MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD, 2000 USD);
    a partial liquidation must leave ``min_leftover_usd`` (MIN_LEFTOVER_BASE, 1000 USD) of debt
    and collateral."""

    emode: dict[str, EmodeSpec] = {}
    standard: dict[str, ReserveRisk] = {}
    close_factor: float = Field(0.5, gt=0, le=1)
    full_close_health_factor: float = 0.95
    max_close_factor_threshold_usd: float = Field(2000.0, ge=0)
    min_leftover_usd: float = Field(1000.0, ge=0)

    def params(self, asset: str, category: str | None) -> ReserveRisk | None:
        """(LTV, LT, bonus) of ``asset`` for a user in eMode ``category`` (None: no eMode): the
        category's when the asset is one of its collateral members, else the reserve's own
        (GenericLogic.calculateUserAccountData; LiquidationLogic.executeLiquidationCall for the
        bonus). None when the venue lists neither."""
        e = self.emode.get(category) if category else None
        if e is not None and asset in e.assets:
            return ReserveRisk(ltv=e.ltv, liquidation_threshold=e.liquidation_threshold, liquidation_bonus=e.liquidation_bonus)
        return self.standard.get(asset)

    def category_for(self, choice: str | None, collateral: str, debt: str) -> str | None:
        """The eMode category a target's ``emode:`` choice means: a category name as given;
        ``none``: no eMode; ``auto`` / omitted: the one category holding ``collateral`` and
        able to borrow ``debt`` (None when there is none)."""
        if choice and choice not in ("auto", "none"):
            return choice
        if choice == "none":
            return None
        fits = [n for n, e in self.emode.items() if collateral in e.assets and e.can_borrow(debt)]
        return fits[0] if len(fits) == 1 else None
