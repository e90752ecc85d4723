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
built; :class:`RedactingFilter` does the same for log records (installed for the whole process
by :func:`install_process_log_redaction` when the CLI starts); :class:`RedactingStream` masks
what the CLI prints (``trimtab.cli.guard``); :func:`scrubbing` wraps a journal's SQLite
connection so every string written is masked. :class:`Secret` holds a value
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


_pattern_cache: tuple[frozenset, re.Pattern | None] = (frozenset(), None)


def secret_pattern() -> re.Pattern | None:
    """One case-insensitive alternation of every known secret value, longest first (None when
    there is none); compiled again only when the set of values changes."""
    global _pattern_cache
    with _lock:
        values = frozenset(_registered)
    values |= _env_secret_values()
    key, pat = _pattern_cache
    if values != key:
        pat = re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)), re.IGNORECASE) if values else None
        _pattern_cache = (values, pat)
    return pat


def redact(text: object) -> str:
    """``str(text)`` with every known secret (in any letter case) replaced by ``***``."""
    s = str(text)
    pat = secret_pattern()
    return pat.sub(MASK, s) if pat is not None else s


def env_secret(name: str, required: bool = True) -> Secret | None:
    """Read one secret variable. Raises :class:`MissingCredentials` if required and unset."""
    value = os.environ.get(name, "")
    if not value:
        if required:
            raise MissingCredentials(f"environment variable {name} is not set")
        return None
    return Secret(value)


def exchange_credentials(venue: str, need_passphrase: bool = False) -> ExchangeCredentials:
    """``TRIMTAB_<VENUE>_KEY``/``_SECRET``, and ``_PASSPHRASE`` (required when
    ``need_passphrase``: the venue file's ``live.passphrase``, e.g. OKX; read if set otherwise)."""
    v = venue.upper()
    return ExchangeCredentials(
        venue=venue,
        api_key=env_secret(f"{PREFIX}{v}_KEY"),
        secret=env_secret(f"{PREFIX}{v}_SECRET"),
        password=env_secret(f"{PREFIX}{v}_PASSPHRASE", required=need_passphrase),
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
        if record.exc_info and not record.exc_text:  # the traceback text is rendered here to be masked
            record.exc_text = logging.Formatter().formatException(record.exc_info)
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


_installed: RedactingFilter | None = None


def install_process_log_redaction() -> RedactingFilter:
    """Mask secrets in every log record of the process (the CLI calls this at start); idempotent.

    A filter on the root logger does not see records propagated from child loggers (``ccxt``,
    ``web3``, ``urllib3``), so this also wraps the record factory (every record's message is
    masked when it is made) and filters the root's handlers and ``logging.lastResort``.
    """
    global _installed
    with _lock:
        if _installed is not None:
            return _installed
        _installed = f = RedactingFilter()
    make = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = make(*args, **kwargs)
        if secrets_loaded():
            f.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    install_log_redaction()
    if logging.lastResort is not None:
        logging.lastResort.addFilter(f)
    return f


# --------------------------------------------------------------------------- everywhere else
# Issue 11 part 8: every message the CLI prints, every log record and every string a journal
# stores goes through :func:`redact`. Each hook costs one check when no secret is loaded.

def secrets_loaded() -> bool:
    """True when a secret is known: a value was registered, or a ``TRIMTAB_*`` secret variable is set."""
    with _lock:
        if _registered:
            return True
    return bool(_env_secret_values())


def _scrub(value, pat: re.Pattern):
    if isinstance(value, str):
        return pat.sub(MASK, value)
    if isinstance(value, (bytes, bytearray)):  # a JSON blob (checkpoint state) is masked as text
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return value
        masked = pat.sub(MASK, text)
        return value if masked == text else masked.encode("utf-8")
    return value


def scrub_row(row, pat: re.Pattern | None = None):
    """A row of SQL parameters (tuple, list or dict) with every text value redacted.
    ``pat``: :func:`secret_pattern`, when the caller scrubs many rows at once."""
    pat = pat or secret_pattern()
    if pat is None:
        return row
    if isinstance(row, dict):
        return {k: _scrub(v, pat) for k, v in row.items()}
    return tuple(_scrub(v, pat) for v in row)


class ScrubbingConnection:
    """A ``sqlite3.Connection`` whose ``execute``/``executemany`` parameters are redacted.

    Everything else (``commit``, ``close``, ``with con:``, ...) is the connection's own. Use
    :func:`scrubbing`, which returns the bare connection when no secret is loaded.
    """

    def __init__(self, con) -> None:
        object.__setattr__(self, "_con", con)

    def __setattr__(self, name, value) -> None:  # row_factory, isolation_level: the connection's
        setattr(self._con, name, value)

    def execute(self, sql, params=()):
        return self._con.execute(sql, scrub_row(params))

    def executemany(self, sql, rows):
        pat = secret_pattern()  # once per batch: a tick's rows, or a backtest's 5,000
        return self._con.executemany(sql, rows if pat is None else [scrub_row(r, pat) for r in rows])

    def __enter__(self):
        self._con.__enter__()
        return self

    def __exit__(self, *exc):
        return self._con.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._con, name)


def scrubbing(con):
    """``con`` wrapped in a :class:`ScrubbingConnection` if a secret is loaded, else ``con`` itself
    (a backtest, where no ``TRIMTAB_*`` secret is set, writes through the bare connection)."""
    return ScrubbingConnection(con) if secrets_loaded() else con


class RedactingStream:
    """A text stream (``sys.stdout``, ``sys.stderr``) whose writes are redacted.

    Each ``write`` is masked on its own: the CLI writes a message in one call (rich renders a
    whole ``print`` before writing it). ``buffer`` is deliberately not exposed, so nothing
    writes around the mask.
    """

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, s: str) -> int:
        self._stream.write(redact(s) if s else s)
        return len(s)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    @property
    def wrapped(self):
        """The stream written to."""
        return self._stream

    def __getattr__(self, name):
        if name == "buffer":
            raise AttributeError("buffer")
        return getattr(self._stream, name)
