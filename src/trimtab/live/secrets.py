"""Credentials from the environment only, and redaction so they never leak.

Where secrets come from (DESIGN.md "Runs and storage"; issue 7: "credentials from the
environment ... Secrets never reach logs or the journal"): environment variables, and nothing
else — no config file, no command-line flag, no journal column.

    TRIMTAB_<VENUE>_KEY, TRIMTAB_<VENUE>_SECRET     exchange API key and secret
                                                    (VENUE = BINANCE, BYBIT, OKX)
    TRIMTAB_<VENUE>_PASSPHRASE                      OKX API passphrase (ccxt ``password``)
    TRIMTAB_ETH_PRIVATE_KEY                         hex private key of the sending account
    TRIMTAB_ETH_RPC_URL                             JSON-RPC endpoint; often embeds a provider
                                                    key, so it is treated as a secret too

Every value read through this module is registered, and :func:`redact` replaces every
registered value (and every current value of the variables above) with ``***``. Adapters
raise :class:`trimtab.live.adapters.base.AdapterError`, whose message is redacted when it is
built; :class:`RedactingFilter` does the same for log records. :class:`Secret` holds a value
whose ``str``/``repr`` is ``***``, so a secret that ends up inside a dataclass, an exception
or a JSON dump shows as ``***`` and never as itself.

Errors: :class:`MissingCredentials` (a ``KeyError``) names the missing variable, never a value.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass

MASK = "***"
PREFIX = "TRIMTAB_"
#: Suffixes of the environment variables whose values are secrets.
SECRET_SUFFIXES = ("_KEY", "_SECRET", "_PASSPHRASE", "_PRIVATE_KEY", "_RPC_URL")
#: Shorter than this is not treated as a secret value (masking "1" would mangle every message).
_MIN_LEN = 6

_lock = threading.Lock()
_registered: set[str] = set()


class MissingCredentials(KeyError):
    """A required credential variable is not set; the message names the variable only."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "missing credentials"


class Secret:
    """A secret value that prints as ``***``. Call :meth:`reveal` at the one place it is used."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    __repr__ = __str__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True)
class ExchangeCredentials:
    """API credentials of one exchange; every field is a :class:`Secret` (``password`` may be None)."""

    venue: str
    api_key: Secret
    secret: Secret
    password: Secret | None = None

    def ccxt_config(self) -> dict:
        """The ``apiKey``/``secret``/``password`` entries of a ccxt exchange config."""
        cfg = {"apiKey": self.api_key.reveal(), "secret": self.secret.reveal()}
        if self.password is not None:
            cfg["password"] = self.password.reveal()
        return cfg


def register(value: str | None) -> None:
    """Add a value to the set :func:`redact` masks (also its ``0x``-less and lower-case forms)."""
    if not value or len(value) < _MIN_LEN:
        return
    forms = {value, value.lower(), value.upper()}
    if value[:2] in ("0x", "0X"):
        forms |= {value[2:], value[2:].lower(), value[2:].upper()}
    with _lock:
        _registered.update(f for f in forms if len(f) >= _MIN_LEN)


def _env_secret_values() -> set[str]:
    out = set()
    for name, value in os.environ.items():
        if name.startswith(PREFIX) and name.endswith(SECRET_SUFFIXES) and value and len(value) >= _MIN_LEN:
            out.add(value)
            if value[:2] in ("0x", "0X"):
                out.add(value[2:])
    return out


def redact(text: object) -> str:
    """``str(text)`` with every known secret replaced by ``***`` (longest values first)."""
    s = str(text)
    with _lock:
        values = set(_registered)
    values |= _env_secret_values()
    for v in sorted(values, key=len, reverse=True):
        if v in s:
            s = s.replace(v, MASK)
        elif v.lower() != v and re.search(re.escape(v), s, re.IGNORECASE):
            s = re.sub(re.escape(v), MASK, s, flags=re.IGNORECASE)
    return s


def env_secret(name: str, required: bool = True) -> Secret | None:
    """Read one secret variable. Raises :class:`MissingCredentials` if required and unset."""
    value = os.environ.get(name, "")
    if not value:
        if required:
            raise MissingCredentials(f"environment variable {name} is not set")
        return None
    return Secret(value)


def exchange_credentials(venue: str, need_passphrase: bool | None = None) -> ExchangeCredentials:
    """``TRIMTAB_<VENUE>_KEY``/``_SECRET`` (and ``_PASSPHRASE`` for OKX, or when asked)."""
    v = venue.upper()
    need_pass = (venue.lower() == "okx") if need_passphrase is None else need_passphrase
    return ExchangeCredentials(
        venue=venue,
        api_key=env_secret(f"{PREFIX}{v}_KEY"),
        secret=env_secret(f"{PREFIX}{v}_SECRET"),
        password=env_secret(f"{PREFIX}{v}_PASSPHRASE", required=need_pass),
    )


def eth_private_key() -> Secret:
    """``TRIMTAB_ETH_PRIVATE_KEY`` (hex, with or without ``0x``)."""
    return env_secret(f"{PREFIX}ETH_PRIVATE_KEY")


def eth_rpc_url() -> Secret:
    """``TRIMTAB_ETH_RPC_URL`` (an http(s) JSON-RPC endpoint)."""
    return env_secret(f"{PREFIX}ETH_RPC_URL")


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record's message and masks secrets in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string must not hide the record
            msg = f"{record.msg} {record.args}"
        record.msg = redact(msg)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Attach a :class:`RedactingFilter` to ``logger`` (default: the root logger) and its handlers."""
    lg = logger or logging.getLogger()
    f = RedactingFilter()
    lg.addFilter(f)
    for h in lg.handlers:
        h.addFilter(f)
    return f
