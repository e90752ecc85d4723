"""Shared shapes of the live venue adapters: errors, order results, client order ids.

- :class:`AdapterError`: every failure an adapter raises. Its message is passed through
  :func:`trimtab.secrets.redact` when built and the original exception is not chained
  (``from None``), so neither the message nor a traceback can carry a key.
- :func:`ccxt_retryable`: the ccxt failures that leave a call's outcome unknown (network).
- :class:`OrderRequest`: the order an instruction becomes before it is sent; :class:`OrderResult`:
  what an order became, in trimtab's units (signed asset units of the instrument's asset, not
  contracts), JSON-serialisable via :meth:`OrderResult.to_dict`.
- :func:`client_order_id`: the idempotency key of one instruction, derived from the plan id and
  step id only, so the same instruction retried after a crash carries the same id and the
  venue (or our lookup by that id) recognises it instead of sending it twice.
"""
from __future__ import annotations

import contextlib
import hashlib
from dataclasses import asdict, dataclass

from trimtab.secrets import redact


class AdapterError(RuntimeError):
    """A venue call failed. ``venue``/``operation`` say where; ``retryable`` is True for
    network-level failures (timeouts, connection resets) where the outcome is unknown."""

    def __init__(self, venue: str, operation: str, message: str, retryable: bool = False) -> None:
        self.venue = venue
        self.operation = operation
        self.retryable = retryable
        super().__init__(redact(f"{venue} {operation}: {message}"))


@contextlib.contextmanager
def wrap_errors(venue: str, operation: str, retryable_types: tuple[type, ...] = ()):
    """Turn any exception inside the block into an :class:`AdapterError` with a redacted message.

    ``AdapterError`` passes through unchanged. The cause is dropped (``from None``) because a
    library's exception text (a URL with a key, a signed payload) may hold a secret.
    """
    try:
        yield
    except AdapterError:
        raise
    except Exception as e:  # noqa: BLE001 - every failure becomes one redacted type
        retry = isinstance(e, retryable_types) if retryable_types else False
        raise AdapterError(venue, operation, f"{type(e).__name__}: {e}", retryable=retry) from None


def ccxt_retryable() -> tuple[type, ...]:
    """``retryable_types`` for :func:`wrap_errors` around ccxt calls: network failures, whose
    outcome is unknown (look the order or transfer up before sending again)."""
    import ccxt

    return (ccxt.NetworkError,)


@dataclass(frozen=True)
class OrderRequest:
    """The order an instruction becomes, before it is sent (pure data, for tests and journal)."""

    instrument: str
    symbol: str
    side: str
    contracts: float
    amount: float
    reduce_only: bool
    params: dict


@dataclass(frozen=True)
class OrderResult:
    """An order as the venue reports it, mapped to trimtab's units.

    ``amount`` and ``filled`` are signed asset units (+ buy, - sell) of ``instrument``'s asset
    (ETH for ``binance:Perp:ETHUSDT``); ``contracts`` is the venue quantity actually sent.
    ``status`` is ccxt's unified status (``open``, ``closed``, ``canceled``, ``expired``,
    ``rejected``) or None when the venue only acknowledged. ``already_placed`` is True when
    the order was found by its client order id and therefore not sent again.
    """

    venue: str
    instrument: str
    symbol: str
    client_order_id: str
    order_id: str | None
    side: str
    amount: float
    contracts: float
    filled: float
    average_price: float | None
    status: str | None
    reduce_only: bool
    already_placed: bool = False
    fee: float | None = None
    fee_currency: str | None = None
    #: Quote spent or received (USDT for ``BTC/USDT``), as the venue reports it; None if not given.
    cost: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def client_order_id(plan_id: str, step_id: str, index: int = 0) -> str:
    """Deterministic client order id: ``"tt"`` + 30 hex digits of SHA-256(plan:step:index).

    32 alphanumeric characters fit every venue's rule: Binance ``newClientOrderId``
    (``^[.A-Z:/a-z0-9_-]{1,36}$``), Bybit ``orderLinkId`` (up to 36 letters, digits, ``-_``)
    and OKX ``clOrdId`` (up to 32 alphanumerics).
    """
    if not plan_id or not step_id:
        raise ValueError("client_order_id needs a plan id and a step id")
    digest = hashlib.sha256(f"{plan_id}:{step_id}:{index}".encode()).hexdigest()
    return "tt" + digest[:30]
