"""What one position template implements (:class:`Template`), and the pydantic base of its model.

A template is the Python behind one ``template:`` name of a config's ``targets`` (DESIGN.md
"Extension points are registries"): its config model and what the engine's stages ask of it.
Each stage calls the template through this Protocol (:func:`trimtab.templates.registry.template_for`)
and never names a concrete template. Template modules sit just above ``keys``/``rules`` and
below ``config`` (config loads their models), so their behaviour takes its collaborators
(pricing, simulated venues, the book, plan builders) as arguments: the ``*Context`` protocols
below say what each stage passes.

Units: amounts in asset units of the instrument's asset; ``usd``/``*_usd`` in USD; ratios
(LTV, weights, allocations) are fractions. Expressions (:data:`Expr`) are numbers or
expressions over parameters, evaluated with ``strategy.target_value(expr, params)``.
"""
# No `from __future__ import annotations` in the pydantic model modules (this one, the template
# modules, config/models.py, config/lending.py, data/catalog.py): pydantic reads every field's
# annotation when a class is made, and a string annotation costs a compile and an eval each
# (~4 ms of every process over ~50 models); evaluated at import they cost next to nothing.
# Same types, so the same validation, errors and JSON Schemas.

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator, Protocol, Union

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

Expr = Union[float, str]

#: The units a template field may declare: the metrics' words (:mod:`trimtab.metrics`), the
#: parameters' (:class:`trimtab.config.models.ParameterSpec`), ``bps`` (basis points, 1e-4) and
#: ``-`` for a field that has no unit (a name, an id, a choice, a file, a nested block).
FIELD_UNITS = frozenset({"fraction", "ratio", "multiple", "hours", "minutes", "days", "USD", "asset units", "count",
                         "flag", "bps", "-"})


def spec(description: str, unit: str, default: Any = PydanticUndefined, **kwargs: Any) -> Any:
    """A template model field that says what it is: ``description`` (what it governs) and ``unit``
    (one of :data:`FIELD_UNITS`), carried by the JSON schema (``description``, ``unit``; the unit
    also closes the description, which is what editors show) and by ``trimtab params``.
    ``default`` omitted: the field is required; ``kwargs`` go to :func:`pydantic.Field`.

    Raises:
        ValueError: ``unit`` is not one of :data:`FIELD_UNITS` (a typo in a template module).
    """
    if unit not in FIELD_UNITS:
        raise ValueError(f"unit {unit!r} is not one of {sorted(FIELD_UNITS)}")
    shown = description if unit == "-" else f"{description} Unit: {unit}."
    return Field(default, description=description, json_schema_extra={"unit": unit, "description": shown}, **kwargs)


def field_unit(info: FieldInfo) -> str:
    """The unit a field declared with :func:`spec`, or ``""`` for one declared without."""
    extra = info.json_schema_extra
    return str(extra.get("unit", "")) if isinstance(extra, dict) else ""


class Strict(BaseModel):
    """Base of every YAML model: unknown fields are errors; models are immutable once loaded.
    Numbers are strict: ``.nan``/``.inf`` are never a setting, and ``true`` or ``"100"`` is not
    a number (pydantic's lax mode would read them as 1.0 and 100.0).

    Validators are built on first use (``defer_build``), not at import: a model validated only
    inside another (a venue's instruments, a config's targets) is then compiled once, into its
    parent's validator, instead of also on its own (~65 ms of every process's start, ~50
    models); validation, errors and JSON Schemas are the same."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True, defer_build=True)


class TargetModel(Strict):
    """Base of a template's config model: every target has an ``id`` (unique in its config)
    and a ``template`` literal, the discriminator of the config's ``targets`` union. Every field
    of a template model is declared with :func:`spec` (description and unit; checked by
    tests/unit/test_templates.py)."""

    id: str = spec("The target's name, unique in the config: `hedges:` lists and `--set targets.<id>.<field>` use it.", "-")


@dataclass(frozen=True)
class Loop:
    """A lending loop a target holds: ``collateral`` (aToken key) against ``debt`` (debtToken
    key) at ``target_ltv`` (an expression; LTV = debt value / collateral value, a fraction)."""

    collateral: str
    debt: str
    target_ltv: Expr
    emode: str | None = None   # the target's eMode choice (a category, "none", or None: auto)


@dataclass(frozen=True)
class TradeLeg:
    """A position the audit sizes at the configured capital: target index, YAML path,
    instrument key, venue operation, full notional (USD) and the notional a drift threshold is
    a fraction of (USD; None when no drift rule applies)."""

    index: int
    path: tuple
    instrument: str
    operation: str
    notional_usd: float
    drift_base_usd: float | None


# --------------------------------------------------------------------------- what each stage passes
class RefContext(Protocol):
    """Reference checks while a config loads (trimtab.config.load). Paths are tuples into the
    config document; every ``check_*`` reports at that path and returns nothing."""

    venues: dict          # venue name -> VenueSpec
    instruments: dict     # instrument key -> (venue name, InstrumentSpec)
    params: dict[str, float]
    target_ids: list[str]
    config_dir: Any       # pathlib.Path of the config file's folder

    def add(self, path: tuple, message: str) -> None: ...
    def has(self, path: tuple) -> bool: ...
    def check_expr(self, path: tuple, value: Expr) -> None: ...
    def check_inst(self, path: tuple, key: str, types: tuple[str, ...]) -> None: ...
    def check_venue(self, path: tuple, name: str, models: tuple[str, ...]) -> None: ...
    def lst_venue_of(self, path: tuple, token: str, given: str | None) -> str | None: ...
    def is_target(self, target_id: str) -> bool: ...
    def number(self, expr: Expr) -> float | None: ...
    def suggest(self, name: str, choices: list[str]) -> str: ...


class ValueContext(Protocol):
    """Value-domain checks with parameters folded in (trimtab.config.domains). ``field`` paths
    are relative to the target (``("legs", 0, "weight")``)."""

    venues: dict
    instruments: dict

    def value(self, field: tuple, expr: Expr, label: str) -> float | None: ...
    def named(self, expr: Expr, value: float) -> str: ...
    def add_value(self, expr: Expr, field: tuple, message: str) -> None: ...
    def add(self, field: tuple, message: str) -> None: ...
    def field_error(self, field_name: str) -> str | None: ...
    def suggest(self, name: str, choices: list[str]) -> str: ...
    def cost_pairs(self) -> set[str] | None: ...


class TargetContext(Protocol):
    """Target sizing (trimtab.planner.targets): writes into ``out`` (a ``Targets``: positions
    in asset units, CEX ``margin`` in USDT, ``deltas`` in asset units by target id, ``frozen``
    keys). ``usd`` is the equity to allocate, ``eth`` the ETH price (USD)."""

    strategy: Any
    params: dict[str, float]
    px: Any
    sim: Any
    book: Any
    out: Any
    usd: float
    eth: float
    unwind: bool
    signals: Any

    def value(self, expr: Expr) -> float: ...
    def basket(self, target: Any) -> Any: ...


class MoveContext(Protocol):
    """Plan compilation (trimtab.planner.compile): a template appends its releases and deploys
    and books what they bring to or take from the wallet and CEX accounts. Costs are in the
    share class; ``eth`` and ``sc`` are the USD prices of ETH and the share class."""

    strategy: Any
    px: Any
    sim: Any
    book: Any
    tg: Any
    params: dict[str, float]
    eth: float
    sc: float
    min_trade_usd: float
    release: list
    deploy: list
    wallet_in: dict
    wallet_out: dict
    venue_in: dict
    venue_out: dict
    venue_release: dict
    wallet_release: dict
    gas_eth: float
    entry_bundle: Any

    def next_id(self) -> str: ...
    def gas_of(self, venue: str, op: str) -> float: ...
    def swap_cost(self, venue: str | None, sell: str, buy: str, amount: float) -> float: ...
    def route(self, sell: str, buy: str, amount: float, atomic: bool = False,
              kinds: tuple[str, ...] = ("dex",), funds_on: str | None = None) -> tuple[str, list[dict]]: ...  # (venue, routes considered)
    def instruction(self, *args, **kwargs) -> Any: ...
    def step(self, *args, **kwargs) -> Any: ...


# --------------------------------------------------------------------------- the protocol
class Template(Protocol):
    """One position template. ``name`` is its ``template:`` tag; ``model`` its config model."""

    name: ClassVar[str]
    model: ClassVar[type[TargetModel]]
    #: 0: sized from equity; 1: sized from the deltas phase-0 targets leave (a hedge).
    phase: ClassVar[int]
    #: Operations its plans emit, by the target field naming the venue (``@field``: the venue
    #: of the instrument key in that field; ``@legs``: every hedge leg). Read by the audit.
    operations: ClassVar[list[tuple[str, tuple[str, ...]]]]
    #: True when it holds CEX accounts (its deposits pay the wallet's ``transfer`` gas).
    cex: ClassVar[bool]
    #: True when it owns every wallet token and plans its own trades (a drift basket).
    owns_wallet: ClassVar[bool]

    def check(self, t: TargetModel, base: tuple, ctx: RefContext) -> TargetModel:
        """Report bad references of ``t`` (at ``base + field``); returns ``t`` with defaults
        that depend on the venues resolved (e.g. the staking venue of an LST)."""
    def metric_keys(self, t: TargetModel) -> dict[str, list[str]]:
        """Keys of the per-key metrics it publishes, by key kind (``{"token": ["ETH", ...]}``
        for ``drift.<token>``; see trimtab.metrics)."""
    def check_values(self, t: TargetModel, ctx: ValueContext) -> None:
        """Report values out of their domain once parameters are folded in."""
    def required_series(self, t: TargetModel, strategy: Any, series_of: Callable[[str], str]) -> tuple[set[str], set[str]]:
        """(series it cannot run without, perp series it can run around while stale)."""
    def reserved_usd(self, t: TargetModel, strategy: Any, params: dict[str, float], px: Any) -> float:
        """USD set aside before allocations share the equity (a fixed wallet reserve)."""
    def targets(self, t: TargetModel, ctx: TargetContext) -> None:
        """Write this target's positions, margins and delta for ``ctx.usd`` into ``ctx.out``."""
    def current(self, t: TargetModel, out: Any, px: Any, sim: Any, book: Any) -> None:
        """Targets that keep the book as it stands: add what ``out`` must carry beyond the
        book's nonzero positions (zero keys to plan against, CEX account equity)."""
    def moves(self, t: TargetModel, ctx: MoveContext) -> None:
        """Append the plan steps that move the book to ``ctx.tg`` for this target."""
    def reserve_key(self, t: TargetModel) -> str | None:
        """The wallet instrument it holds as a fixed reserve (gas money), or None."""
    def emergency_source(self, t: TargetModel) -> str | None:
        """What the emergency protocol may take funds from: ``"lending"`` (a leveraged LST
        loop: withdraw, deleverage), ``"lst"`` (LST units held in the wallet), or None."""
    def hedge_legs(self, t: TargetModel) -> list:
        """Perp legs (``instrument``, ``weight``) shorting other targets' delta; [] if none."""
    def signal_file(self, t: TargetModel) -> str | None:
        """The signal CSV (relative to the config) whose side it trades, or None."""
    def order_extra(self, t: TargetModel, signals: Any, strategy: Any, params: dict[str, float], mark: float, target: float) -> dict:
        """Parameters a perp trade toward ``target`` carries (resting stops)."""
    def loop(self, t: TargetModel) -> Loop | None:
        """The lending loop it holds (audit: LTV against max LTV and emergency thresholds)."""
    def hedged_fraction(self, t: TargetModel, value: Callable[[Expr], float | None], delta_asset: Callable[[str], str | None],
                        asset: str) -> float:
        """Fraction of equity of delta in ``asset`` it puts on, for a hedge's margin ratio."""
    def trade_legs(self, t: TargetModel, index: int, value: Callable[[Expr], float | None], capital_usd: float,
                   hedge_margin: Callable[[TargetModel], float | None]) -> Iterator[TradeLeg]:
        """Positions the audit sizes against venue minimums at ``capital_usd``."""
    def live_gaps(self, t: TargetModel, has_spot: Callable[[str], bool], has_stops: Callable[[str], bool]) -> set[str]:
        """What a live run cannot do for this target, given whether a venue's live adapter has
        a spot market (``has_spot(venue)``) and resting stop orders (``has_stops(venue)``)."""


class BaseTemplate:
    """Defaults of :class:`Template` for a template that does not take part in a stage."""

    phase: ClassVar[int] = 0
    operations: ClassVar[list[tuple[str, tuple[str, ...]]]] = []
    cex: ClassVar[bool] = False
    owns_wallet: ClassVar[bool] = False

    def check(self, t, base, ctx):
        return t

    def metric_keys(self, t) -> dict[str, list[str]]:
        return {}

    def check_values(self, t, ctx) -> None:
        return None

    def required_series(self, t, strategy, series_of):
        return set(), set()

    def reserved_usd(self, t, strategy, params, px) -> float:
        return 0.0

    def targets(self, t, ctx) -> None:
        return None

    def current(self, t, out, px, sim, book) -> None:
        return None

    def moves(self, t, ctx) -> None:
        return None

    def reserve_key(self, t) -> str | None:
        return None

    def emergency_source(self, t) -> str | None:
        return None

    def hedge_legs(self, t) -> list:
        return []

    def signal_file(self, t) -> str | None:
        return None

    def order_extra(self, t, signals, strategy, params, mark, target) -> dict:
        return {}

    def loop(self, t) -> Loop | None:
        return None

    def hedged_fraction(self, t, value, delta_asset, asset) -> float:
        alloc = getattr(t, "allocation", None)
        return (value(alloc) or 0.0) if alloc is not None else 0.0

    def trade_legs(self, t, index, value, capital_usd, hedge_margin):
        return iter(())

    def live_gaps(self, t, has_spot, has_stops) -> set[str]:
        return set()


def held_series(strategy: Any, key: str, series_of: Callable[[str], str]) -> set[str]:
    """Series valuing a held instrument: its reserve (Aave) and its asset's USD or ETH-rate
    field in the wallet's price table."""
    spec = strategy.instruments[key][1]
    out = {spec.reserve} if spec.reserve else set()
    a = (strategy.venues["wallet"].assets or {}).get(spec.asset)
    if a and (a.usd_field or a.eth_rate_field):
        out.add(series_of(a.usd_field or a.eth_rate_field))
    return out
