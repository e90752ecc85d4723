"""Committing a checkpoint, and the checks a journal passes before a run resumes from it.

The checkpoint format itself (schema, encode, decode) is :mod:`trimtab.engine.checkpoint`.

Before resuming, the journal is checked (:func:`open_checked`, :func:`verify_rows`):

1. it is opened read-only and SQLite's ``PRAGMA integrity_check`` runs over it; a file that
   is not a database, a truncated file or a damaged page is refused with SQLite's reason;
2. the checkpoint is decoded, and checked against the journal's rows: its tick is the last
   tick of ``series`` and ``metrics`` (every tick present), its fill id is the number of
   ``fills`` and the largest id, the sum of the fills' legs is the book's per-key sum, and the
   ledger's sum is the change in equity (equity - capital - net flows) to 1e-6 of capital;
3. a *marker* (``checkpoint.json`` next to the database, :func:`write_marker`) holds the tick
   and SHA-256 of the last committed checkpoint. It is replaced atomically after each commit.
   SQLite in WAL mode keeps recent commits only in the ``-wal`` file; if that file is lost
   (deleted after a kill, not copied with the database) the database silently goes back to an
   older, self-consistent state that step 2 cannot tell from the real one. The marker can:
   a checkpoint older than the marker's is refused ("the journal lost committed ticks"), the
   same tick must have the same digest, and a newer one is accepted (the process died between
   the commit and the marker's replacement). A run writes a marker for tick -1 before its
   first tick, so a missing marker is refused too.

SQLite keeps no checksum of row contents: bytes flipped inside a text value that no index or
check reads back (a decision's rule trace, say) go unnoticed; damaged page structure, indexes,
fills, ledger, series and the checkpoint itself do not.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
from pathlib import Path

from .checkpoint import CheckpointError, decode, encode, loads
from .journal import ledger_total

#: The marker file next to a run's database (see the module docstring, step 3).
MARKER = "checkpoint.json"
MARKER_FORMAT = "trimtab-checkpoint-marker"


# --------------------------------------------------------------------------- the marker
def write_marker(run_dir: Path, database: str, tick: int, blob: bytes) -> None:
    """Record in ``run_dir/checkpoint.json`` that the checkpoint ``blob`` of ``tick`` is committed
    in ``database`` (tick -1, empty blob: the run has started, nothing committed yet). Written
    to a temporary file and renamed over the old marker, so it is always whole."""
    path = Path(run_dir) / MARKER
    tmp = path.with_name(f".{MARKER}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"format": MARKER_FORMAT, "database": database, "tick": tick,
                               "sha256": hashlib.sha256(blob).hexdigest()}))
    os.replace(tmp, path)


def check_marker(run_dir: Path, database: str, tick: int | None, blob: bytes | None) -> None:
    """Check the journal's last checkpoint (``tick``/``blob``; None when it has none) against the
    marker of ``run_dir``.

    Raises:
        CheckpointError: no readable marker; the journal's checkpoint is older than the
            marker's (committed ticks were lost: a dropped ``-wal`` file, an old copy); the same
            tick with another digest; no checkpoint where the marker says one was committed.
    """
    path = Path(run_dir) / MARKER
    try:
        m = json.loads(path.read_text())
        if not (isinstance(m, dict) and m.get("format") == MARKER_FORMAT and type(m.get("tick")) is int
                and isinstance(m.get("sha256"), str)):
            raise ValueError
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: cannot tell whether {Path(run_dir) / database} holds every committed "
                              "tick; refusing to resume") from None
    except (OSError, UnicodeDecodeError, ValueError):
        raise CheckpointError(f"{path} is not a trimtab checkpoint marker; refusing to resume") from None
    if m["database"] != database:
        raise CheckpointError(f"{path} is the marker of {m['database']!r}, not {database!r}; refusing to resume")
    have = -1 if tick is None else tick
    if have < m["tick"]:
        got = "has no checkpoint" if tick is None else f"ends at checkpoint tick {tick}"
        raise CheckpointError(f"{Path(run_dir) / database} lost committed ticks: it {got}, but tick {m['tick']} was committed "
                              f"(see {MARKER}); was its -wal file deleted or an old copy restored? Refusing to resume")
    if have == m["tick"] and tick is not None and hashlib.sha256(bytes(blob)).hexdigest() != m["sha256"]:
        raise CheckpointError(f"{Path(run_dir) / database}: the checkpoint at tick {tick} is not the one committed "
                              f"(its SHA-256 differs from {MARKER}); refusing to resume")


def commit(engine, tick: int) -> None:
    """Commit ``engine``'s buffered journal rows with its state after ``tick`` (one SQLite
    transaction, :meth:`trimtab.engine.journal.Journal.checkpoint`), then replace the marker."""
    blob = encode("engine", engine.state())
    engine.journal.checkpoint(tick, blob)
    write_marker(engine.run_dir, engine.journal.path.name, tick, blob)


def restore(engine, tick: int, state: dict) -> None:
    """:meth:`Engine.restore` of a decoded ``state``; a state that passed the schema but does
    not fit this engine (another window, a plan whose id does not match its content, an
    unknown machine state) is a :class:`CheckpointError`, never a traceback."""
    try:
        engine.restore(state)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise CheckpointError(f"{engine.run_dir}: checkpoint at tick {tick} does not fit this run: {e}; refusing to resume") from None
    bad = engine.book.check_fills()  # positions must be the sum of the fills (verify_rows tied the sums to the journal)
    if bad:
        raise CheckpointError(f"{engine.run_dir}: checkpoint at tick {tick} holds positions that are not the sum of their "
                              f"fills ({bad[0]}); refusing to resume")


def start_marker(run_dir: Path, database: str) -> None:
    """The marker of a run that has started and committed nothing yet (tick -1)."""
    write_marker(run_dir, database, -1, b"")


# --------------------------------------------------------------------------- the journal
def open_checked(path: Path, tables: tuple[str, ...], doing: str = "resume") -> sqlite3.Connection:
    """``path`` opened read-only after SQLite's ``integrity_check`` passed and ``tables`` exist
    (``doing``: what is refused, for the messages: "refusing to {doing}").

    Raises:
        CheckpointError: no such file, not a database, damaged (SQLite's first complaint), or
            a table missing; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no journal there; refusing to {doing}")
    db = None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        rows = db.execute("PRAGMA integrity_check(20)").fetchall()
        if rows != [("ok",)]:
            # One row may hold several problems on several lines: report the first, count the rest.
            problems = [ln.strip() for r in rows for ln in str(r[0]).splitlines() if ln.strip() and not ln.startswith("***")]
            first = problems[0] if problems else "unknown problem"
            more = f"; {len(problems) - 1}{'+' if len(problems) >= 20 else ''} more" if len(problems) > 1 else ""
            raise CheckpointError(f"{path} is damaged (SQLite integrity_check: {first}{more}); refusing to {doing}")
        have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as e:  # "file is not a database", "database disk image is malformed", ...
        if db is not None:
            db.close()
        raise CheckpointError(f"{path} is not a readable trimtab journal ({e}); refusing to {doing}") from None
    except CheckpointError:
        db.close()
        raise
    missing = [t for t in tables if t not in have]
    if missing:
        db.close()
        raise CheckpointError(f"{path} is not a trimtab journal (no {', '.join(missing)} table); refusing to {doing}")
    return db


def _last_checkpoint(db: sqlite3.Connection) -> tuple[int, bytes] | None:
    row = db.execute("SELECT tick, state FROM checkpoints ORDER BY tick DESC LIMIT 1").fetchone()
    if row is not None and type(row[0]) is not int:
        raise sqlite3.DatabaseError(f"checkpoint tick {row[0]!r} is not an integer")
    return row


def verify_rows(db: sqlite3.Connection, where: Path, tick: int, state: dict, capital: float, later_ok: bool = False) -> None:
    """Check an engine ``state`` (decoded, checkpointed at ``tick``) against its journal's rows:
    the series and metrics hold exactly ticks 0..tick, the fills are ids 1..fill_id and their
    legs sum to the book's per-key sums, and the ledger's sum is the change in equity (equity -
    ``capital`` - net flows) and the attribution's total, to 1e-6 of capital.

    ``later_ok``: rows after the checkpoint are allowed and ignored (a portfolio's sleeve
    journal, committed before the portfolio's own checkpoint, may be ahead of it).

    Raises:
        CheckpointError: the first disagreement, naming ``where`` and the tick.
    """
    def fail(what: str) -> CheckpointError:
        return CheckpointError(f"{where}: checkpoint at tick {tick} does not match the journal: {what}; refusing to resume")

    if state["next_tick"] != tick + 1:
        raise fail(f"the state is of tick {state['next_tick'] - 1}")
    for table in ("series", "metrics"):
        n, lo, hi = db.execute(f"SELECT count(*), min(tick), max(tick) FROM {table} WHERE tick <= ?", (tick,)).fetchone()
        if (n, lo, hi) != (tick + 1, 0, tick):
            raise fail(f"{table} holds {n} ticks ({lo}..{hi}), not 0..{tick}")
        if not later_ok and db.execute(f"SELECT count(*) FROM {table} WHERE tick > ?", (tick,)).fetchone()[0]:
            raise fail(f"{table} has rows after the checkpoint")
    if _not_numeric(db, "series", ("tick", "equity", "nav", "eeth"), tick):
        raise fail("a series row holds a value that is not a number")
    fid = state["fill_id"]
    n, hi = db.execute("SELECT count(*), max(fill_id) FROM fills WHERE fill_id <= ?", (fid,)).fetchone()
    if n != fid or (hi or 0) != fid:
        raise fail(f"the state's last fill is {fid}, the journal has {n} fills up to {hi}")
    if not later_ok and db.execute("SELECT count(*) FROM fills WHERE fill_id > ?", (fid,)).fetchone()[0]:
        raise fail(f"fills after the state's last fill {fid}")
    sums: dict[str, float] = {}
    for (legs,) in db.execute("SELECT legs FROM fills WHERE fill_id <= ? ORDER BY fill_id", (fid,)):
        try:
            for key, delta, _ in loads(legs):
                sums[key] = sums.get(key, 0.0) + float(delta)
        except (TypeError, ValueError, RecursionError):
            raise fail(f"a fill's legs are not [key, delta, amount] lists: {str(legs)[:60]!r}") from None
    book = state["book"]["sums"]
    for k in sorted(set(sums) | set(book)):
        a, b = sums.get(k, 0.0), book.get(k, 0.0)
        if not abs(a - b) <= 1e-9 * max(1.0, abs(a)):
            raise fail(f"the fills' legs on {k} sum to {a!r}, the book's to {b!r}")
    try:
        ledger = ledger_total(db, tick)  # the wide ledger: one column per category
    except TypeError:
        raise fail("a ledger amount is not a number") from None
    equity = db.execute("SELECT equity FROM series WHERE tick = ?", (tick,)).fetchone()[0]
    if type(ledger) not in (int, float) or type(equity) not in (int, float):
        raise fail(f"the ledger's sum {ledger!r} or the equity {equity!r} is not a number")
    pnl = equity - capital - state["cflows"]["net"]
    tol = 1e-6 * max(abs(capital), 1.0)
    if not abs(ledger - pnl) <= tol:
        raise fail(f"the ledger sums to {ledger!r}, the change in equity is {pnl!r}")
    attr = math.fsum(state["attr"]["total"].values())
    if not abs(ledger - attr) <= tol:
        raise fail(f"the ledger sums to {ledger!r}, the state's attribution to {attr!r}")


def _not_numeric(db: sqlite3.Connection, table: str, columns: tuple[str, ...], tick: int) -> bool:
    """Whether a row of ``table`` up to ``tick`` holds a non-number in ``columns`` (read back as floats)."""
    bad = " OR ".join(f"typeof({c}) NOT IN ('integer', 'real')" for c in columns)
    return db.execute(f"SELECT count(*) FROM {table} WHERE tick <= ? AND ({bad})", (tick,)).fetchone()[0] > 0


def _meta(db: sqlite3.Connection, key: str):
    row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    try:
        return loads(row[0]) if row else None
    except (TypeError, ValueError, RecursionError):
        return None


def _capital(db: sqlite3.Connection, path: Path) -> float:
    w = _meta(db, "window")
    cap = w.get("capital") if isinstance(w, dict) else None
    if type(cap) not in (int, float) or not math.isfinite(cap) or cap <= 0:
        raise CheckpointError(f"{path}: the run's capital (meta 'window') is missing or not a positive number; refusing to resume")
    return float(cap)


ENGINE_TABLES = ("meta", "checkpoints", "series", "metrics", "fills", "ledger")


def load_engine(run_dir: Path, database: str = "journal.sqlite") -> tuple[int, dict]:
    """The last checkpoint of the live run in ``run_dir``, checked every way above: the journal's
    integrity, the marker, the checkpoint's format and schema, and the journal's rows.

    Returns ``(tick, state)`` for :meth:`Engine.restore`.

    Raises:
        CheckpointError: any check failed (the message says which and names the path).
    """
    run_dir = Path(run_dir)
    path = run_dir / database
    db = open_checked(path, ENGINE_TABLES)
    try:
        try:
            cp = _last_checkpoint(db)
        except sqlite3.DatabaseError as e:
            raise CheckpointError(f"{path} is not a readable trimtab journal ({e}); refusing to resume") from None
        check_marker(run_dir, database, cp[0] if cp else None, cp[1] if cp else None)
        if cp is None:
            raise CheckpointError(f"{run_dir} has no checkpoint to resume from")
        tick, blob = cp
        state = decode(blob, "engine", run_dir, tick)
        verify_rows(db, run_dir, tick, state, _capital(db, path))
    except sqlite3.DatabaseError as e:
        raise CheckpointError(f"{path} is not a readable trimtab journal ({e}); refusing to resume") from None
    finally:
        db.close()
    return tick, state


PORTFOLIO_TABLES = ("meta", "checkpoints", "series", "sleeve_series", "decisions", "reallocations")


def load_portfolio(run_dir: Path, sleeves: dict[str, float]) -> tuple[int, dict]:
    """The last checkpoint of the portfolio run in ``run_dir`` (``sleeves``: id -> initial
    capital), checked: ``portfolio.sqlite`` and every sleeve journal pass ``integrity_check``,
    the marker matches, the checkpoint decodes, its tick is the portfolio series' last, and each
    sleeve's state matches its journal's rows up to the checkpoint (:func:`verify_rows`; later
    rows are the ones the runner rolls back).

    Raises:
        CheckpointError: any check failed.
    """
    run_dir = Path(run_dir)
    path = run_dir / "portfolio.sqlite"
    db = open_checked(path, PORTFOLIO_TABLES)
    try:
        cp = _last_checkpoint(db)
        check_marker(run_dir, "portfolio.sqlite", cp[0] if cp else None, cp[1] if cp else None)
        if cp is None:
            raise CheckpointError(f"{run_dir} has no checkpoint to resume from")
        tick, blob = cp
        state = decode(blob, "portfolio", run_dir, tick)
        n, lo, hi = db.execute("SELECT count(*), min(tick), max(tick) FROM series").fetchone()
        if (n, lo, hi) != (tick + 1, 0, tick) or state["portfolio"]["next_tick"] != tick + 1:
            raise CheckpointError(f"{run_dir}: checkpoint at tick {tick} does not match portfolio.sqlite: its series holds "
                                  f"{n} ticks ({lo}..{hi}); refusing to resume")
        rows = db.execute("SELECT count(*) FROM sleeve_series WHERE tick <= ?", (tick,)).fetchone()[0]
        if (_not_numeric(db, "series", ("tick", "equity"), tick) or _not_numeric(db, "sleeve_series", ("tick", "equity", "nav"), tick)
                or rows != (tick + 1) * len(sleeves)
                or db.execute("SELECT count(*) FROM sleeve_series WHERE tick <= ? AND sleeve NOT IN (%s)"
                              % ",".join("?" * len(sleeves)), (tick, *sleeves)).fetchone()[0]):
            raise CheckpointError(f"{run_dir}: checkpoint at tick {tick} does not match portfolio.sqlite: its series or "
                                  "sleeve_series rows are incomplete or not numbers; refusing to resume")
    except sqlite3.DatabaseError as e:
        raise CheckpointError(f"{path} is not a readable trimtab journal ({e}); refusing to resume") from None
    finally:
        db.close()
    if set(state["sleeves"]) != set(sleeves):
        raise CheckpointError(f"{run_dir}: checkpoint at tick {tick} holds sleeves {sorted(state['sleeves'])}, "
                              f"the portfolio has {sorted(sleeves)}; refusing to resume")
    for sid, capital in sleeves.items():
        jpath = run_dir / "sleeves" / sid / "journal.sqlite"
        sdb = open_checked(jpath, ENGINE_TABLES)
        try:
            verify_rows(sdb, jpath.parent, tick, state["sleeves"][sid]["engine"], capital, later_ok=True)
        except sqlite3.DatabaseError as e:
            raise CheckpointError(f"{jpath} is not a readable trimtab journal ({e}); refusing to resume") from None
        finally:
            sdb.close()
    return tick, state
