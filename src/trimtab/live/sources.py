"""Where each catalog series comes from in a live run: ``feeds/live.yaml``, declared in YAML.

Loaded with the project's ruamel loader (:func:`trimtab.config.yamldoc.load_yaml`), validated
with pydantic models (``extra="forbid"``), and cross-checked (every series is a catalog series,
every token and exchange referenced exists); every problem is a
:class:`~trimtab.diagnostics.Diagnostic` at ``file:line:col`` and all of them are raised at once as
a :class:`~trimtab.errors.ConfigError`. The meaning of each ``kind`` and its units are in
the YAML file's header and in :mod:`trimtab.live.collect`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from ..config.pydantic_errors import validate
from ..config.yamldoc import load_yaml
from ..data.catalog import BY_NAME
from ..errors import ConfigError
from .adapters.registry import market_data_clients

DEFAULT_SOURCES = Path(__file__).resolve().parents[3] / "feeds" / "live.yaml"



def exchanges() -> dict[str, tuple[str, ...]]:
    """ccxt exchange ids a source may name, with the market types ccxt is told to load for them
    (the first is the default): the ``market_data`` lists of the venue files' ``live:`` blocks
    (:func:`trimtab.live.adapters.registry.market_data_clients`)."""
    return {ex: tuple(markets) for ex, markets in market_data_clients().items()}


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Token(_M):
    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    decimals: int = Field(ge=0, le=36)


class Contracts(_M):
    aave_pool: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    aave_oracle: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    univ3_factory: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")


class Ohlcv(_M):
    kind: Literal["ohlcv"]
    exchange: str
    symbol: str
    market: str | None = None


class Funding(_M):
    kind: Literal["funding"]
    exchange: str
    symbol: str
    market: str | None = None


class AaveReserve(_M):
    kind: Literal["aave_reserve"]
    asset: str


class AaveOracle(_M):
    kind: Literal["aave_oracle"]
    asset: str


class RateCall(_M):
    kind: Literal["rate_call"]
    to: str
    function: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*\(\)$")
    decimals: int = 18


class Gas(_M):
    kind: Literal["gas"]


class UniV3(_M):
    kind: Literal["univ3_slot0"]
    base: str
    quote: str
    fee: int


Source = Annotated[Union[Ohlcv, Funding, AaveReserve, AaveOracle, RateCall, Gas, UniV3], Field(discriminator="kind")]


class LiveSources(_M):
    """The parsed ``feeds/live.yaml``: timing (seconds, hours), tokens, contracts, and one
    :data:`Source` per catalog series name."""

    settle_s: float = Field(default=30.0, ge=0)
    warmup_hours: int = Field(default=24, ge=0, le=1000)
    timeout_s: float = Field(default=10.0, gt=0)
    max_chain_lag_s: float = Field(default=900.0, gt=0)
    tokens: dict[str, Token] = {}
    contracts: Contracts
    series: dict[str, Source]
    file: str = ""

    def exchange_of(self, s: Ohlcv | Funding) -> tuple[str, str]:
        """(ccxt id, market type) of an exchange source; the type defaults to the id's first."""
        return s.exchange, s.market or exchanges()[s.exchange][0]

    def needs_chain(self, names) -> bool:
        return any(not isinstance(self.series[n], (Ohlcv, Funding)) for n in names if n in self.series)


def load_sources(path: str | Path | None = None) -> LiveSources:
    """Read and check a sources file (default ``feeds/live.yaml``).

    Raises:
        ConfigError: YAML or schema errors, a series not in the catalog, an unknown exchange,
            market type or token, each at ``file:line:col``.
    """
    doc = load_yaml(Path(path) if path is not None else DEFAULT_SOURCES)
    model, issues = validate(LiveSources, doc)
    if model is None:
        raise ConfigError(issues)
    known = exchanges()
    for name, src in model.series.items():
        if name not in BY_NAME:
            issues.append(doc.issue(("series", name), f"{name!r} is not a catalog series (trimtab.data.catalog)", key=True))
        if isinstance(src, (Ohlcv, Funding)):
            if src.exchange not in known:
                issues.append(doc.issue(("series", name, "exchange"), f"unknown exchange {src.exchange!r}; known: {', '.join(known)}"))
            elif src.market is not None and src.market not in known[src.exchange]:
                issues.append(doc.issue(("series", name, "market"), f"{src.exchange} markets: {', '.join(known[src.exchange])}"))
        for field in ("asset", "to", "base", "quote"):
            tok = getattr(src, field, None)
            if tok is not None and tok not in model.tokens:
                issues.append(doc.issue(("series", name, field), f"unknown token {tok!r}; declare it under tokens:"))
        if isinstance(src, Ohlcv) and BY_NAME.get(name) and BY_NAME[name].kind != "bar":
            issues.append(doc.issue(("series", name, "kind"), f"{name} is not a bar series"))
        if isinstance(src, Funding) and BY_NAME.get(name) and BY_NAME[name].fill != "event":
            issues.append(doc.issue(("series", name, "kind"), f"{name} is not a funding series"))
    if issues:
        raise ConfigError(issues)
    return model.model_copy(update={"file": doc.file})
