"""Run directories and who owns them: run-id validation, claiming a run directory, its lock.

A run directory ``<out>/<run-id>/`` belongs to one process at a time. :func:`claim` takes an
exclusive lock on ``<run-dir>/run.lock`` with the ``filelock`` library (``flock(2)`` on Unix:
the kernel drops it when the process dies, even on SIGKILL, so a crash never leaves a run
"owned") and then writes ``owner.json`` (pid, host, started, command). The lock is the truth:
:func:`holder` reports a run as running only while its lock is held, and reads the pid from
the owner record; a stale owner record of a dead process is ignored.

Rules (issue 11 part 2):

* run ids are one path component of a sane charset (:data:`RUN_ID`): no separators, no
  ``..``, not absolute, at most 128 characters; nothing is ever written outside ``--out``;
* a run id that names an existing run is never deleted or replaced: a new run there is
  refused, ``resume=True`` continues it, ``overwrite=True`` replaces it only when it is a
  finished backtest (or drift basket backtest) that no process owns;
* a second process that tries to own a run already owned is refused with
  ``run X is owned by pid N (since ...)``.
"""
from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, TypeVar

from filelock import FileLock, Timeout

from .errors import TrimtabError
from .secrets import redact  # the stored command line never holds a secret's value

T = TypeVar("T")

#: A run id: a letter or digit, then letters, digits, ``.``, ``_``, ``-``; 1 to 128 characters.
#: One path component by construction (no ``/``, ``\\``, no leading ``.``, so never ``..``).
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
LOCK_FILE = "run.lock"
OWNER_FILE = "owner.json"
#: Files of a finished backtest that ``overwrite`` removes (nothing else is ever deleted).
_BACKTEST_FILES = ("journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm", "summary.json", "equity.csv")
#: How long a claim waits for a lock that is momentarily held (``trimtab status`` probing it).
_CLAIM_WAIT_S = 0.5


class RunError(TrimtabError):
    """A run directory cannot be used: a bad run id, a run owned by another process, an
    existing run that would be replaced. The message says which and what to do instead."""


def run_id_problem(run_id: str) -> str | None:
    """None if ``run_id`` is a valid run id (:data:`RUN_ID`, no ``..``), else the rule it breaks
    (path separator, ``..``, absolute path, empty, too long, other characters) and the value."""
    rid = run_id if isinstance(run_id, str) else str(run_id)
    if RUN_ID.fullmatch(rid) and ".." not in rid:
        return None
    if rid == "":
        why = "it is empty"
    elif rid.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[\\/]", rid):
        why = "it is an absolute path"
    elif "/" in rid or "\\" in rid:
        why = "it contains a path separator"
    elif ".." in rid:
        why = "it contains '..'"
    elif rid == ".":
        why = "it is '.', the --out folder itself"
    elif len(rid) > 128:
        why = f"it is {len(rid)} characters long (at most 128)"
    else:
        why = "it must start with a letter or digit and hold only letters, digits, '.', '_' and '-'"
    shown = rid if len(rid) <= 60 else rid[:57] + "..."
    return f"{shown!r} is not a valid run id: {why}; a run id names one directory under --out"


def safe_name(text: str, limit: int = 64) -> str:
    """``text`` (a strategy or portfolio name from a config) made usable inside a generated run
    id: characters outside ``[A-Za-z0-9._-]`` and runs of dots become ``_``, at most ``limit``
    characters, starting with a letter or digit (``run`` if nothing is left)."""
    out = re.sub(r"\.{2,}", "_", re.sub(r"[^A-Za-z0-9._-]", "_", str(text)))[:limit]
    out = out.lstrip("._-")
    return out or "run"


def unique_run_id(out: Path | str, name: str, start, end, prefix: str = "") -> str:
    """A generated run id ``{prefix}{name}-{start:%Y%m%d}-{end:%Y%m%d}-{now}`` (``name`` through
    :func:`safe_name`) that names no existing directory under ``out``: two runs started in the
    same second get -2, -3, ... (:func:`claim` takes the next one if another process claims it first)."""
    base = f"{prefix}{safe_name(name)}-{start:%Y%m%d}-{end:%Y%m%d}-{time.strftime('%Y%m%dT%H%M%S')}"
    run_id, k = base, 1
    while (Path(out) / run_id).exists():
        k += 1
        run_id = f"{base}-{k}"
    return run_id


def check_run_id(run_id: str, flag: str = "--run-id") -> str:
    """Return ``run_id`` if it is a valid run id (:func:`run_id_problem`), else raise.

    Raises:
        RunError: ``"{flag} '../x' is not a valid run id: it contains a path separator; ..."``.
    """
    why = run_id_problem(run_id)
    if why is not None:
        raise RunError(f"{flag} {why}")
    return run_id


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_owner(run_dir: Path) -> dict:
    """The owner record (possibly hostile or half-written): a dict, else {}."""
    try:
        rec = json.loads((run_dir / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return rec if isinstance(rec, dict) else {}


def _owned_message(name: str, run_dir: Path) -> str:
    rec = _read_owner(run_dir)
    pid = rec.get("pid")
    if isinstance(pid, int):
        # The record is another process's file: only short strings from it reach the message.
        since = f" (since {rec['started'][:40]})" if isinstance(rec.get("started"), str) else ""
        host = rec.get("host")
        on = f" on {host[:64]}" if isinstance(host, str) and host != socket.gethostname() else ""
        return f"run {name} is owned by pid {pid}{on}{since}; one run has one process at a time"
    return f"run {name} is owned by another process (it is starting up); try again"


def _lock(run_dir: Path) -> FileLock:
    # fallback_to_soft=False: a filesystem without flock must refuse, not fall back to a
    # lock file that a killed process would leave behind.
    return FileLock(run_dir / LOCK_FILE, timeout=0, thread_local=False, fallback_to_soft=False)


class RunClaim:
    """Ownership of one run directory by this process; :meth:`release` (or process exit) ends it.

    Attributes:
        run_id: the directory's name; ``run_dir``: the directory; ``record``: the owner record.
    """

    def __init__(self, run_dir: Path, lock: FileLock, record: dict):
        self.run_dir = run_dir
        self.run_id = run_dir.name
        self._lock = lock
        self.record = record

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def release(self) -> None:
        """Remove the owner record and drop the lock (idempotent)."""
        if not self._lock.is_locked:
            return
        try:
            if _read_owner(self.run_dir).get("pid") == self.record["pid"]:
                (self.run_dir / OWNER_FILE).unlink(missing_ok=True)
        finally:
            self._lock.release(force=True)

    def build(self, make: Callable[[], T]) -> T:
        """``make()`` for the owner of this claim; the claim is released if it raises, so a run
        that fails to start never keeps its directory locked."""
        try:
            return make()
        except BaseException:
            self.release()
            raise

    def __enter__(self) -> "RunClaim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _has_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds anything besides the lock and the owner record."""
    try:
        return any(p.name not in (LOCK_FILE, OWNER_FILE) for p in run_dir.iterdir())
    except FileNotFoundError:
        return False
    except NotADirectoryError:  # a file where the run directory would be: never replaced either
        return True


def _finished_backtest(run_dir: Path) -> str | None:
    """None if ``run_dir`` is a finished backtest (its journal has a summary and no live or
    portfolio record); else why it is not."""
    if (run_dir / "portfolio.sqlite").exists():
        return "it is a portfolio run"
    path = run_dir / "journal.sqlite"
    if not path.exists():
        return "it holds no run journal"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            keys = {k for (k,) in db.execute("SELECT key FROM meta")}
        finally:
            db.close()
    except sqlite3.Error as e:
        return f"its journal cannot be read ({e})"
    if "live" in keys:
        return "it is a live run (continue it with --resume)"
    if "summary" not in keys:
        return "it did not finish"
    return None


def claim_dir(run_dir: Path | str, *, name: str | None = None, resume: bool = False, overwrite: bool = False,
              command: list[str] | None = None) -> RunClaim:
    """Own ``run_dir`` for this process: take its lock, then write its owner record.

    Args:
        name: how messages name the run (default: the directory's name).
        resume: continue an existing run (the directory must exist; it is never created).
        overwrite: replace a finished backtest there (its journal, summary.json, equity.csv are
            removed once the lock is held); refused for any other run.
        command: the command line recorded in the owner record (default: ``sys.argv``).

    Returns:
        A :class:`RunClaim`; hold it for the run's life and :meth:`RunClaim.release` it at the end.

    Raises:
        RunError: the run is owned by another process; a new run (not ``resume``) where a run
            exists; ``resume`` where there is no run; ``overwrite`` of anything but a finished,
            unowned backtest.
    """
    run_dir = Path(run_dir)
    name = name or run_dir.name
    if resume:
        if not run_dir.is_dir():
            raise RunError(f"no run at {run_dir} to resume")
    elif run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir} is a file, not a run directory: pick another --run-id")
    elif _has_run(run_dir) and not overwrite:
        raise RunError(f"run {name} already exists in {run_dir.parent}: it is never replaced; continue it with --resume "
                       f"(a live or portfolio run), replace a finished backtest with --overwrite, or pick another --run-id")
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock(run_dir)
    try:
        lock.acquire(timeout=_CLAIM_WAIT_S)
    except Timeout:
        raise RunError(_owned_message(name, run_dir)) from None
    try:
        if not resume and _has_run(run_dir):  # created since the check above (a race), or --overwrite
            why = _finished_backtest(run_dir) if overwrite else "it already exists"
            if why is not None:
                raise RunError(f"run {name} in {run_dir.parent} is not replaced: {why}" if overwrite else
                               f"run {name} already exists in {run_dir.parent}: pick another --run-id")
            for f in _BACKTEST_FILES:
                (run_dir / f).unlink(missing_ok=True)

        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now(),
                  "command": [redact(w) for w in (command if command is not None else sys.argv)]}
        tmp = run_dir / f".{OWNER_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, run_dir / OWNER_FILE)  # whole or absent: a reader never sees half a record
    except BaseException:
        lock.release(force=True)
        raise
    return RunClaim(run_dir, lock, record)


def claim(out: Path | str, run_id: str | None, *, new_id: Callable[[], str] | None = None, resume: bool = False,
          overwrite: bool = False, flag: str = "--run-id", command: list[str] | None = None) -> RunClaim:
    """Own ``out/run_id`` (see :func:`claim_dir`) after checking ``run_id`` (:func:`check_run_id`).

    With ``run_id=None``, ``new_id()`` generates one (it must name no existing directory); a
    generated id that another process claims first is replaced by the next one.

    Raises:
        RunError: a bad run id (naming ``flag``), or as :func:`claim_dir`.
    """
    out = Path(out)
    if run_id is None:
        if new_id is None or resume:
            raise RunError(f"{flag} is needed to {'resume a run' if resume else 'name the run'}")
        for _ in range(20):
            rid = check_run_id(new_id(), flag)
            try:
                return claim_dir(out / rid, command=command)
            except RunError:
                if not _has_run(out / rid) and not holder(out / rid):
                    raise
        raise RunError(f"could not find a free run id under {out}; pass {flag}")
    rid = check_run_id(run_id, flag)
    return claim_dir(out / rid, name=rid, resume=resume, overwrite=overwrite, command=command)


def holder(run_dir: Path | str) -> dict | None:
    """The owner record of the process running ``run_dir``, or None when no process holds its lock.

    Decided by trying the lock (never by a pid file alone): held means running, whatever the
    owner record says; free means not running, even if a killed process left its record.
    The record is ``{"pid", "host", "started", "command"}`` (``{}`` if it is unreadable).
    """
    run_dir = Path(run_dir)
    if not (run_dir / LOCK_FILE).exists():
        return None
    lock = _lock(run_dir)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return _read_owner(run_dir)
    except OSError:  # a read-only directory: the lock cannot be tried; fall back to the record
        rec = _read_owner(run_dir)
        return rec if isinstance(rec.get("pid"), int) and _pid_alive(rec["pid"]) else None
    lock.release(force=True)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return True
