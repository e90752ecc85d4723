"""The shared ccxt exchange adapter: perpetuals, balances, funding and orders of any exchange.

:class:`ExchangeAdapter` is the base every venue's adapter class extends
(``trimtab.live.adapters.<venue>``: its ``data`` and ``execution`` modules override the few
hooks where venues differ; :mod:`trimtab.live.adapters.registry` picks the class). The venue's
facts -- ccxt id and options, client-id fields, balance field, error codes, quotes, spot,
stops and transfer settings -- come from the ``live:`` block of ``venues/<venue>.yaml``
(:class:`~trimtab.config.models.LiveExchangeSpec`), never from a table here. It maps between
the venue and trimtab's names and units:

- instruments: ``binance:Perp:ETHUSDT`` <-> ccxt unified ``ETH/USDT:USDT`` (linear perpetual
  settled in the quote; the quote is one of the facts' ``quotes``); ``binance:Margin:USDT``
  for collateral balances.
- sizes: trimtab trades and holds perps in signed *asset units* (ETH), venues in *contracts*.
  ``asset units = contracts x contractSize`` with the contract size from the venue's own
  market data (OKX ETH-USDT-SWAP: ``ctVal`` 0.1 ETH; Binance and Bybit linear: 1).
- orders: market orders; ``reduceOnly`` when the trade only shrinks the current position; the
  client order id travels in the venue's own parameter (``client_id_param``: Binance
  ``newClientOrderId``, Bybit ``orderLinkId``, OKX ``clOrdId``). Before sending, the
  adapter looks the id up (:meth:`ExchangeAdapter.fetch_order_by_client_id`): an order that
  already exists is reported with ``already_placed=True`` and not sent again, so a retry after
  a crash cannot double an order. A timeout while sending is resolved the same way.

Other jobs of the adapter live in sibling modules as mixins :class:`ExchangeAdapter` inherits:
USDT deposits, withdrawals and internal transfers (:mod:`.exchange_transfers`), spot orders
(:mod:`.exchange_spot`) and resting take-profit / stop-loss orders (:mod:`.exchange_stops`).

Hooks a venue package overrides: :meth:`ExchangeAdapter.wallet_rows` (where the raw balance
payload keeps each asset's row), :meth:`ExchangeAdapter._fetch_by_client_id` (a venue whose
order query cannot filter by client id), and the spot/stop hooks of the mixins.

Balances (``Margin``) are wallet balances *excluding* unrealised PnL, because trimtab carries
the perp's unrealised PnL on the ``Perp`` position itself (DESIGN.md "Accounting"); counting it
in both places would double it. Funding is the venue's current rate for the next settlement
(per interval, signed, positive = longs pay) and that settlement's time.

Errors: every failure is an :class:`~trimtab.live.adapters.base.AdapterError` with a redacted
message; ``retryable`` marks network failures (the outcome is unknown, look the order up).

Sources: ccxt unified API (https://docs.ccxt.com/), Binance USD-M futures REST docs, Bybit v5
REST docs, OKX v5 REST docs (pages cited in ``tests/fixtures/live/*.json`` and beside each
fact in ``venues/*.yaml``).
"""
from __future__ import annotations

import math
import re
from decimal import Decimal
from datetime import datetime, timezone
from typing import NamedTuple

from trimtab.config.models import LiveExchangeSpec
from trimtab.keys import key as make_key
from trimtab.keys import parse_key
from trimtab.live.adapters.base import AdapterError, OrderRequest, OrderResult, ccxt_retryable, wrap_errors
from trimtab.live.adapters.exchange_spot import SpotOrders
from trimtab.live.adapters.exchange_stops import StopOrders
from trimtab.live.adapters.exchange_transfers import ExchangeTransfers
from trimtab.secrets import ExchangeCredentials

__all__ = ["Funding", "OrderRequest", "ExchangeAdapter", "make_exchange"]

#: Relative tolerance when comparing a trade with the position it may close.
_EPS = 1e-9


class Funding(NamedTuple):
    """Current funding of one perp: ``rate`` per interval (positive = longs pay) and the UTC
    time of the settlement it applies to (None if the venue does not say)."""

    rate: float
    next_time: datetime | None


def make_exchange(facts: LiveExchangeSpec, credentials: ExchangeCredentials | None):
    """A ccxt client for a venue's perpetuals from its ``live:`` facts (no network call here):
    only ``facts.market_types`` markets load, ``facts.ccxt_options`` are its options."""
    import ccxt  # imported on use: ccxt takes about a second to import

    cfg = {"enableRateLimit": True, "options": dict(facts.ccxt_options)}
    if credentials is not None:
        cfg.update(credentials.ccxt_config())
    ex = getattr(ccxt, facts.ccxt_id)(cfg)
    ex.options.setdefault("fetchMarkets", {})
    if isinstance(ex.options["fetchMarkets"], dict):
        ex.options["fetchMarkets"]["types"] = list(facts.market_types)
    return ex


def _units(contracts: float, contract_size: float) -> float:
    """Contracts x contract size in asset units, without binary noise (12 x 0.1 = 1.2)."""
    return float(Decimal(repr(float(contracts))) * Decimal(repr(float(contract_size))))


class ExchangeAdapter(ExchangeTransfers, SpotOrders, StopOrders):
    """Balances, positions, funding and orders of one exchange, in trimtab's keys and units
    (transfers, spot orders and resting stops from the mixins, see the module doc).

    ``venue`` is trimtab's venue name, ``facts`` its ``live:`` block. Build through
    :func:`trimtab.live.adapters.registry.exchange_from_env` (the venue's own class, credentials
    from ``TRIMTAB_<VENUE>_*``) or pass a configured ccxt ``exchange`` (tests pass one whose HTTP
    session replays recorded responses).
    """

    def __init__(self, venue: str, facts: LiveExchangeSpec, exchange=None, credentials: ExchangeCredentials | None = None,
                 spot_exchange=None) -> None:
        self.venue = venue
        self.facts = facts
        self.exchange = exchange if exchange is not None else make_exchange(facts, credentials)
        self._spot = spot_exchange
        self._spot_loaded = False
        # cancel_all lists open orders across markets in one call (Binance warns otherwise).
        foo = self.exchange.options.setdefault("fetchOpenOrders", {})
        if isinstance(foo, dict):
            foo["warnWithoutSymbol"] = False
        self._loaded = False

    # -- markets and names -------------------------------------------------------------
    def load_markets(self, reload: bool = False) -> dict:
        """Load the venue's perpetual markets (only ``facts.market_types``; no currency calls)."""
        if self._loaded and not reload:
            return self.exchange.markets
        with wrap_errors(self.venue, "load_markets", ccxt_retryable()):
            markets = self.exchange.fetch_markets()
            self.exchange.set_markets(markets)
        self._loaded = True
        return self.exchange.markets

    def symbol_for(self, instrument: str) -> str:
        """``binance:Perp:ETHUSDT`` -> ``ETH/USDT:USDT`` (must be a loaded linear perpetual)."""
        k = parse_key(instrument)
        if k.venue != self.venue or k.position_type != "Perp":
            raise AdapterError(self.venue, "symbol", f"{instrument} is not a {self.venue} Perp instrument")
        self.load_markets()
        for q in self.facts.quotes:
            if k.symbol.endswith(q) and len(k.symbol) > len(q):
                sym = f"{k.symbol[:-len(q)]}/{q}:{q}"
                m = self.exchange.markets.get(sym)
                if m is not None and m.get("swap") and m.get("linear"):
                    return sym
        raise AdapterError(self.venue, "symbol", f"no linear perpetual market for {instrument} on {self.venue}")

    def instrument_for(self, symbol: str) -> str:
        """``ETH/USDT:USDT`` -> ``binance:Perp:ETHUSDT``."""
        self.load_markets()
        m = self.exchange.market(symbol)
        return make_key(self.venue, "Perp", f"{m['base']}{m['quote']}")

    def contract_size(self, symbol: str) -> float:
        """Asset units per contract, from the venue's market data (1 when the venue omits it)."""
        self.load_markets()
        cs = self.exchange.market(symbol).get("contractSize")
        return float(cs) if cs else 1.0

    # -- account state -----------------------------------------------------------------
    def balances(self) -> dict[str, float]:
        """``{"binance:Margin:USDT": 24613.91, ...}``: wallet balance per asset (asset units,
        unrealised PnL excluded), non-zero assets only."""
        self.load_markets()
        with wrap_errors(self.venue, "balances", ccxt_retryable()):
            bal = self.exchange.fetch_balance()
        out: dict[str, float] = {}
        for code, amount in self._wallet_balances(bal).items():
            if amount and math.isfinite(amount):
                out[make_key(self.venue, "Margin", code)] = amount
        return out

    def wallet_rows(self, info: dict) -> list[tuple[str | None, dict]]:
        """``(venue currency code, raw row)`` per asset of the venue's raw balance payload
        (ccxt ``fetch_balance()["info"]``); each row holds ``facts.wallet_field``. The base
        knows no layout and returns none (ccxt's unified totals are used): venue packages
        override it."""
        return []

    def _wallet_balances(self, bal: dict) -> dict[str, float]:
        info = bal.get("info")
        rows = self.wallet_rows(info) if isinstance(info, dict) else []
        out: dict[str, float] = {}
        for raw_code, row in rows:
            v = row.get(self.facts.wallet_field)
            if raw_code and v not in (None, ""):
                code = self.exchange.safe_currency_code(raw_code)
                out[code] = out.get(code, 0.0) + float(v)
        if not rows:  # unknown raw shape: fall back to ccxt's unified totals
            out = {c: float(v) for c, v in (bal.get("total") or {}).items() if v is not None}
        return out

    def positions(self) -> dict[str, tuple[float, float]]:
        """``{"binance:Perp:ETHUSDT": (-2.5, 3110.42)}``: signed size in asset units (negative =
        short) and entry price (quote per asset unit). Flat positions are left out.

        Raises AdapterError for a hedge-mode account holding both a long and a short in one
        market: trimtab keeps one net position per instrument (one-way mode)."""
        self.load_markets()
        with wrap_errors(self.venue, "positions", ccxt_retryable()):
            raw = self.exchange.fetch_positions()
        out: dict[str, tuple[float, float]] = {}
        for p in raw:
            sym = p.get("symbol")
            if sym not in self.exchange.markets or not p.get("contracts"):
                continue
            m = self.exchange.market(sym)
            if not (m.get("swap") and m.get("linear")):
                continue
            contracts = float(p["contracts"])
            cs = float(p.get("contractSize") or m.get("contractSize") or 1.0)
            side = p.get("side")
            if side not in ("long", "short"):
                raise AdapterError(self.venue, "positions", f"position in {sym} has no side: {side!r}")
            size = _units(contracts, cs) * (1.0 if side == "long" else -1.0)
            entry = float(p.get("entryPrice") or 0.0)
            k = self.instrument_for(sym)
            if k in out and out[k][0] * size < 0:
                raise AdapterError(self.venue, "positions", f"{k}: long and short open at once (hedge mode); trimtab needs one-way mode")
            if k in out:
                s0, e0 = out[k]
                size_t = s0 + size
                entry = (abs(s0) * e0 + abs(size) * entry) / abs(size_t)
                size = size_t
            out[k] = (size, entry)
        return out

    def funding(self, instrument: str) -> Funding:
        """Current funding rate of ``instrument`` for its next settlement, and that time (UTC)."""
        sym = self.symbol_for(instrument)
        with wrap_errors(self.venue, "funding", ccxt_retryable()):
            fr = self.exchange.fetch_funding_rate(sym)
        rate = fr.get("fundingRate")
        if rate is None:
            raise AdapterError(self.venue, "funding", f"{instrument}: venue returned no funding rate")
        ts = fr.get("fundingTimestamp") or fr.get("nextFundingTimestamp")
        when = datetime.fromtimestamp(ts / 1000, tz=timezone.utc) if ts else None
        return Funding(float(rate), when)

    # -- orders ------------------------------------------------------------------------
    def order_request(self, instruction, client_order_id: str, current_size: float) -> OrderRequest:
        """The market order for a ``trade`` instruction (signed asset units in ``amount``).

        ``reduce_only`` is set when the trade moves the position toward zero without crossing
        it (``|amount| <= |current_size|`` and opposite signs); a trade that flips the position
        is sent without it. Contracts are ``|amount| / contractSize`` rounded to the venue's
        amount precision; a size that rounds to zero raises AdapterError.
        """
        if instruction.operation != "trade":
            raise AdapterError(self.venue, "place_order", f"operation {instruction.operation!r} is not a perp trade")
        if instruction.venue != self.venue:
            raise AdapterError(self.venue, "place_order", f"instruction is for venue {instruction.venue!r}")
        amount = float(instruction.amount)
        if not math.isfinite(amount) or amount == 0:
            raise AdapterError(self.venue, "place_order", f"{instruction.instrument}: trade amount must be non-zero, got {amount}")
        sym = self.symbol_for(instruction.instrument)
        cs = self.contract_size(sym)
        raw = Decimal(repr(abs(amount))) / Decimal(repr(cs))  # exact: 1.2 / 0.1 = 12, not 11.999...
        try:
            contracts = float(self.exchange.amount_to_precision(sym, str(raw)))
        except Exception:  # ccxt raises InvalidOrder when the size truncates to zero
            contracts = 0.0
        if contracts <= 0:
            raise AdapterError(self.venue, "place_order", f"{instruction.instrument}: {amount} is below the venue's size step")
        reduce = current_size * amount < 0 and abs(amount) <= abs(current_size) * (1 + _EPS)
        if "reduce_only" in instruction.params:
            reduce = bool(instruction.params["reduce_only"])
        params = {self.facts.client_id_param: client_order_id}
        if reduce:
            params["reduceOnly"] = True
        return OrderRequest(instruction.instrument, sym, "buy" if amount > 0 else "sell", contracts,
                            amount, reduce, params)

    def place_order(self, instruction, client_order_id: str, current_size: float | None = None) -> OrderResult:
        """Send ``instruction`` as a market order, unless ``client_order_id`` already exists.

        ``current_size`` is the signed position in asset units (looked up if None). The order
        is looked up by client id first; if found it is returned with ``already_placed=True``.
        A network failure while sending, or the venue's "duplicate client id" error, is
        resolved by looking the id up again. After sending, the order is re-read once to report
        fills (market orders usually fill at once; the acknowledgement is returned otherwise).

        Not handled here: ``take_profit``/``stop_loss``/``clear_stops`` in ``instruction.params``
        (resting protective orders of signal-driven perps): the gateway places and cancels them
        with :meth:`place_stop` / :meth:`cancel_stop`.
        """
        sym = self.symbol_for(instruction.instrument)
        existing = self.fetch_order_by_client_id(client_order_id, instruction.instrument)
        if existing is not None:
            return existing
        if current_size is None:
            current_size = self.positions().get(instruction.instrument, (0.0, 0.0))[0]
        req = self.order_request(instruction, client_order_id, current_size)
        import ccxt  # imported on use: ccxt takes about a second to import

        try:
            with wrap_errors(self.venue, "place_order", ccxt_retryable()):
                try:
                    ack = self.exchange.create_order(sym, "market", req.side, req.contracts, None, dict(req.params))
                except ccxt.BaseError as e:
                    if not self._is_duplicate(e):
                        raise
                    ack = None
        except AdapterError as e:
            if not e.retryable:
                raise
            ack = None  # outcome unknown: the lookup below decides
        if ack is None:
            found = self.fetch_order_by_client_id(client_order_id, instruction.instrument)
            if found is None:
                raise AdapterError(self.venue, "place_order", f"{instruction.instrument}: send failed and no order {client_order_id} exists; safe to retry", retryable=True)
            return found
        result = self._to_result(ack, instruction.instrument, client_order_id, req)
        try:
            refreshed = self.fetch_order_by_client_id(client_order_id, instruction.instrument)
        except AdapterError:
            refreshed = None
        if refreshed is not None:
            return OrderResult(**{**refreshed.to_dict(), "already_placed": False, "reduce_only": req.reduce_only})
        return result

    def _is_duplicate(self, e: Exception) -> bool:
        """True for the venue's "client order id already used" rejection (an InvalidOrder in
        ccxt whose message carries the venue's error code)."""
        import ccxt  # imported on use: ccxt takes about a second to import

        if not isinstance(e, ccxt.InvalidOrder):
            return False
        text = str(e)
        return any(re.search(rf"(?<![\w-]){re.escape(c)}(?!\d)", text) for c in self.facts.duplicate_codes)

    def fetch_order_by_client_id(self, client_order_id: str, instrument: str) -> OrderResult | None:
        """The order with this client id in ``instrument``'s market, or None if the venue has none."""
        import ccxt  # imported on use: ccxt takes about a second to import

        sym = self.symbol_for(instrument)
        with wrap_errors(self.venue, "fetch_order", ccxt_retryable()):
            try:
                order = self._fetch_by_client_id(client_order_id, sym)
            except ccxt.OrderNotFound:
                return None
        if order is None:
            return None
        return self._to_result(order, instrument, client_order_id, None, already_placed=True)

    def _fetch_by_client_id(self, cid: str, sym: str) -> dict | None:
        """The raw ccxt order with client id ``cid`` in market ``sym`` (None or ccxt
        ``OrderNotFound`` if there is none): one ``fetch_order`` filtered by
        ``facts.client_id_lookup_param``. A venue without such a filter overrides this."""
        param = self.facts.client_id_lookup_param
        if param is None:
            raise AdapterError(self.venue, "fetch_order", "no client-id lookup for this venue (no live.client_id_lookup_param)")
        return self.exchange.fetch_order(None, sym, {param: cid})

    def _to_result(self, o: dict, instrument: str, cid: str, req: OrderRequest | None, already_placed: bool = False) -> OrderResult:
        sym = o.get("symbol") or self.symbol_for(instrument)
        cs = self.contract_size(sym)
        side = o.get("side") or (req.side if req else None)
        sign = 1.0 if side == "buy" else -1.0
        contracts = float(o.get("amount") or (req.contracts if req else 0.0))
        filled = float(o.get("filled") or 0.0)
        fee = o.get("fee") or {}
        info = o.get("info") or {}
        ro = o.get("reduceOnly")
        if ro is None and req is not None:
            ro = req.reduce_only
        return OrderResult(
            venue=self.venue, instrument=instrument, symbol=sym,
            client_order_id=o.get("clientOrderId") or info.get(self.facts.client_id_param) or cid,
            order_id=str(o["id"]) if o.get("id") is not None else None, side=side,
            amount=sign * _units(contracts, cs), contracts=contracts, filled=sign * _units(filled, cs),
            average_price=float(o["average"]) if o.get("average") else None,
            status=o.get("status"), reduce_only=bool(ro), already_placed=already_placed,
            fee=float(fee["cost"]) if fee.get("cost") is not None else None, fee_currency=fee.get("currency"),
            cost=float(o["cost"]) if o.get("cost") is not None else None,
        )

    # -- kill switch ---------------------------------------------------------------------
    def cancel_all(self, instruments: list[str] | None = None) -> list[str]:
        """Cancel every open order in ``instruments`` (default: every perp market that has an
        open order now). Returns the instruments cleared. This is the kill switch's first step."""
        self.load_markets()
        if instruments is None:
            with wrap_errors(self.venue, "cancel_all", ccxt_retryable()):
                open_orders = self.exchange.fetch_open_orders()
            instruments = sorted({self.instrument_for(o["symbol"]) for o in open_orders
                                  if o.get("symbol") in self.exchange.markets})
        for k in instruments:
            sym = self.symbol_for(k)
            with wrap_errors(self.venue, "cancel_all", ccxt_retryable()):
                if self.exchange.has.get("cancelAllOrders") is True:
                    self.exchange.cancel_all_orders(sym)
                else:  # OKX: no cancel-all endpoint for regular orders; cancel by id
                    ids = [o["id"] for o in self.exchange.fetch_open_orders(sym)]
                    if ids:
                        self.exchange.cancel_orders(ids, sym)
        return list(instruments)
