"""Which live adapter serves a venue, and the venue facts it is built from.

A venue is live-tradable when its catalog file ``venues/<name>.yaml`` has a ``live:`` block
(:data:`~trimtab.config.models.LiveSpec`, validated like the rest of the file and in
``schema/venue.schema.json``), of one of two kinds:

- ``kind: exchange`` (:class:`~trimtab.config.models.LiveExchangeSpec`, ``cex_perp`` venues):
  the package's ``ADAPTER`` extends the shared ccxt
  :class:`~trimtab.live.adapters.exchange.ExchangeAdapter` (:func:`exchange_adapter`);
- ``kind: chain`` (:class:`~trimtab.config.models.LiveChainSpec`, on-chain venues): the
  package's ``ADAPTER`` extends :class:`~trimtab.live.adapters.chain_venue.ChainVenue`, the
  per-venue half of the shared web3 :class:`~trimtab.live.adapters.chain.ChainAdapter`
  (:func:`chain_venue`, :func:`chain_venues`).

The block's ``adapter`` names the package ``trimtab.live.adapters.<adapter>`` whose
``ADAPTER`` class carries the venue's own code. Adding a venue is a ``live:`` block plus an
adapter package: nothing here or elsewhere names a venue.

The package is imported by name because the name comes from the venue file: it must match
``^[a-z][a-z0-9_]*$`` (the model's pattern) and is only ever looked up under this package, so
a venue file cannot make trimtab import anything else.

Errors: :class:`~trimtab.live.adapters.base.AdapterError` (operation ``init``), one line
naming the venue file, for a missing file, a file that does not validate, a venue without a
``live:`` block (or with one of the other kind), or an adapter package that does not exist.
"""
from __future__ import annotations

import functools
import importlib
import re
from pathlib import Path

from collections.abc import Mapping

from trimtab.config.models import LiveChainSpec, LiveExchangeSpec, LiveMarketDataSpec, VenueSpec
from trimtab.config.pydantic_errors import validate
from trimtab.config.yamldoc import load_yaml
from trimtab.errors import ConfigError
from trimtab.live.adapters.base import AdapterError
from trimtab.live.adapters.chain_venue import ChainVenue
from trimtab.live.adapters.exchange import ExchangeAdapter
from trimtab.secrets import ExchangeCredentials, exchange_credentials

__all__ = ["DEFAULT_ROOT", "live_block", "live_facts", "chain_facts", "live_venues", "adapter_class", "exchange_adapter",
           "exchange_from_env", "market_data_clients", "chain_venue", "chain_venues", "strategy_chain_venues"]

#: The project root whose ``venues/`` folder is read when no root is given (the checkout).
DEFAULT_ROOT = Path(__file__).resolve().parents[4]
_PACKAGE = __name__.rsplit(".", 1)[0]


def _venue_file(venue: str, root: Path | None) -> Path:
    path = Path(root or DEFAULT_ROOT) / "venues" / f"{venue}.yaml"
    try:  # shown relative to the working directory when it is below it, as config errors are
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def live_block(venue: str, root: str | Path | None = None) -> LiveExchangeSpec | LiveChainSpec:
    """The ``live:`` block of ``<root>/venues/<venue>.yaml`` (default root: the checkout), of
    either kind; an exchange block is on a ``cex_perp`` venue, a chain block on any other.

    Raises:
        AdapterError: ``venue`` is not a plain name; the file is missing or invalid (first
            problem, at ``file:line:col``), has no ``live:`` block, or its kind does not fit
            its model -- one line naming the file.
    """
    if not re.fullmatch(r"[A-Za-z0-9_]+", venue):  # a name, never a path
        raise AdapterError(venue, "init", "a venue name is letters, digits and '_'")
    path = _venue_file(venue, Path(root) if root is not None else None)
    if not path.is_file():
        raise AdapterError(venue, "init", f"{path}: no such venue file, so no live adapter for {venue!r}")
    try:
        spec, issues = validate(VenueSpec, load_yaml(path))
    except ConfigError as e:
        spec, issues = None, list(e.issues)
    if issues or spec is None:
        where = str(ConfigError(issues)).splitlines()[0] if issues else str(path)
        raise AdapterError(venue, "init", f"invalid venue file: {where}")
    if spec.live is None:
        raise AdapterError(venue, "init", f"{path} has no 'live:' block, so trimtab has no live adapter for {venue!r}")
    if (spec.live.kind == "exchange") != (spec.model == "cex_perp"):
        raise AdapterError(venue, "init", f"{path}: a 'live:' block of kind {spec.live.kind!r} does not fit model {spec.model!r} "
                                          "(exchange adapters serve 'cex_perp' venues, chain adapters the others)")
    return spec.live


def _block_of_kind(venue: str, root: str | Path | None, cls: type, what: str):
    """The ``live:`` block of ``venue`` (:func:`live_block`) when it is a ``cls``; else
    AdapterError saying trimtab has no ``what`` adapter for the venue."""
    facts = live_block(venue, root)
    if not isinstance(facts, cls):
        raise AdapterError(venue, "init", f"{_venue_file(venue, Path(root) if root is not None else None)}: the 'live:' block "
                                          f"is of kind {facts.kind!r}, so trimtab has no {what} adapter for {venue!r}")
    return facts


def live_facts(venue: str, root: str | Path | None = None) -> LiveExchangeSpec:
    """The exchange ``live:`` block of ``<root>/venues/<venue>.yaml`` (see :func:`live_block`).

    Raises AdapterError as :func:`live_block`, and when the block is not ``kind: exchange``."""
    return _block_of_kind(venue, root, LiveExchangeSpec, "exchange")


def chain_facts(venue: str, root: str | Path | None = None) -> LiveChainSpec:
    """The chain ``live:`` block of ``<root>/venues/<venue>.yaml`` (see :func:`live_block`).

    Raises AdapterError as :func:`live_block`, and when the block is not ``kind: chain``."""
    return _block_of_kind(venue, root, LiveChainSpec, "chain")


def live_venues(root: str | Path | None = None, kind: str | None = "exchange") -> list[str]:
    """Names of the venues under ``<root>/venues/`` whose file has a ``live:`` block of ``kind``
    (``exchange``, ``chain``; None: either), sorted. A file that does not load is skipped here;
    :func:`live_block` reports it when asked."""
    out = []
    for p in sorted((Path(root or DEFAULT_ROOT) / "venues").glob("*.yaml")):
        try:
            facts = live_block(p.stem, root)
        except AdapterError:
            continue
        if kind is None or facts.kind == kind:
            out.append(p.stem)
    return out


def adapter_class(venue: str, facts: LiveExchangeSpec | LiveChainSpec) -> type:
    """The ``ADAPTER`` class of package ``trimtab.live.adapters.<facts.adapter>``: a subclass of
    :class:`ExchangeAdapter` for an exchange block, of :class:`ChainVenue` for a chain block.

    Raises AdapterError when the package does not exist or has no such ``ADAPTER`` class."""
    base = ExchangeAdapter if isinstance(facts, LiveExchangeSpec) else ChainVenue
    try:
        mod = importlib.import_module(f"{_PACKAGE}.{facts.adapter}")
    except ModuleNotFoundError:
        raise AdapterError(venue, "init", f"no adapter package {_PACKAGE}.{facts.adapter} (named by the venue's live.adapter)") from None
    cls = getattr(mod, "ADAPTER", None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise AdapterError(venue, "init", f"{_PACKAGE}.{facts.adapter} has no ADAPTER class (a {base.__name__})")
    return cls


def exchange_adapter(venue: str, facts: LiveExchangeSpec | None = None, *, root: str | Path | None = None,
                     exchange=None, credentials: ExchangeCredentials | None = None, spot_exchange=None) -> ExchangeAdapter:
    """The live adapter of ``venue``, built from ``facts`` (default: :func:`live_facts` of
    ``root``). ``exchange``/``spot_exchange``: pre-built ccxt clients (tests); otherwise they
    are built with ``credentials`` (None: public endpoints only). No network call is made."""
    facts = facts if facts is not None else live_facts(venue, root)
    return adapter_class(venue, facts)(venue, facts, exchange=exchange, credentials=credentials, spot_exchange=spot_exchange)


def exchange_from_env(venue: str, facts: LiveExchangeSpec | None = None, *, root: str | Path | None = None) -> ExchangeAdapter:
    """:func:`exchange_adapter` with credentials from ``TRIMTAB_<VENUE>_KEY``/``_SECRET`` (and
    ``_PASSPHRASE`` when the facts say the key has one).

    Raises MissingCredentials (naming the variable, never a value) or AdapterError."""
    facts = facts if facts is not None else live_facts(venue, root)
    return exchange_adapter(venue, facts, credentials=exchange_credentials(venue, need_passphrase=facts.passphrase))


@functools.cache
def _market_data(root: Path) -> dict[str, dict[str, LiveMarketDataSpec]]:
    out: dict[str, dict[str, LiveMarketDataSpec]] = {}
    for name in live_venues(root):
        for md in live_facts(name, root).market_data:
            out.setdefault(md.ccxt_id, {}).setdefault(md.market, md)
    return out


def market_data_clients(root: str | Path | None = None) -> dict[str, dict[str, LiveMarketDataSpec]]:
    """``{ccxt id: {market type: LiveMarketDataSpec}}`` over every live venue's ``market_data``
    (venue files in name order; a market's first listing wins). The first market of an id is
    its default. Read once per root."""
    return _market_data(Path(root or DEFAULT_ROOT).resolve())


def chain_venue(venue: str, facts: LiveChainSpec | None = None, *, root: str | Path | None = None) -> ChainVenue:
    """The chain adapter of on-chain venue ``venue``, built from ``facts`` (default:
    :func:`chain_facts` of ``root``). No network call is made."""
    facts = facts if facts is not None else chain_facts(venue, root)
    return adapter_class(venue, facts)(venue, facts)


@functools.lru_cache(maxsize=16)
def _chain_venues(root: Path, stamp: tuple) -> dict[str, ChainVenue]:
    return {name: chain_venue(name, root=root) for name in live_venues(root, "chain")}


def chain_venues(root: str | Path | None = None) -> dict[str, ChainVenue]:
    """``{venue: ChainVenue}`` over every venue file under ``<root>/venues/`` with a chain
    ``live:`` block (default root: the checkout). Validating the files takes ~0.2 s, so the
    answer is kept until a venue file's size or modification time changes."""
    r = Path(root or DEFAULT_ROOT).resolve()
    stamp = tuple((p.name, st.st_mtime_ns, st.st_size) for p in sorted((r / "venues").glob("*.yaml")) for st in [p.stat()])
    return dict(_chain_venues(r, stamp))


def strategy_chain_venues(venues: Mapping[str, VenueSpec]) -> dict[str, ChainVenue]:
    """``{venue: ChainVenue}`` for the venues of a loaded strategy (``strategy.venues``) that
    have a chain ``live:`` block, built from the facts the strategy loaded."""
    return {name: chain_venue(name, v.live) for name, v in sorted(venues.items()) if isinstance(v.live, LiveChainSpec)}
