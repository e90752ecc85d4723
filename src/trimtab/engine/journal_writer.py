"""A backtest journal's SQLite writes on the machine's second core: a writer process.

Issue 14: a flagship backtest spends ~0.1 s of its one core in SQLite (binding ~700k values,
B-tree inserts, commits), work no decision waits for. :class:`WriterConnection` stands in for
the ``sqlite3.Connection`` of :class:`trimtab.engine.journal.Journal`: it hands every statement
to a child process (``python -m trimtab.engine.journal_writer PATH``), which owns the only
connection to the file and runs the statements in the order they were given, with the same
``sqlite3`` calls (:func:`insert_rows` included) the journal makes in-process. The journal's
rows and every query's answer are therefore the ones an in-process journal gives
(``tests/integration/test_journal_writer.py`` compares every table). Its transactions end
where the journal commits and also, past :data:`IDLE_COMMIT` bytes of rows, whenever nothing
is queued: the child's idle time then commits (and checkpoints into the file) what the run's
last commit would otherwise write while the run waits for it (~9 ms of the flagship's end).

The two processes talk over the child's stdin and stdout: frames of a 4-byte big-endian length
and a MessagePack body (msgspec; floats travel as IEEE doubles, so every value arrives bit for
bit). A frame from the parent is ``[op, sql, args]``:

* ``ROWS`` (:func:`insert_rows` of ``args``), ``SPAN`` (a quiet span's metrics rows, built
  here: :meth:`WriterConnection.insert_span`), ``EXEC`` (``execute``), ``MANY`` (``executemany``),
  ``SCRIPT`` (``executescript``), ``COMMIT``: posted, no answer, so the engine never waits for
  them;
* ``QUERY`` (``execute`` of a read: SELECT, WITH, a PRAGMA that sets nothing; its rows answered) and ``CLOSE`` (close the connection, without a
  commit, as ``sqlite3.Connection.close`` does): answered ``[0, rows]``, or ``[1, error class,
  message, statement]`` when a statement failed.

A posted statement that fails rolls the open transaction back (what its connection is left
holding is never committed) and the child then skips every later frame but answers the next
QUERY or CLOSE with that first error: :class:`WriterConnection` raises it as the same
``sqlite3`` exception class with the same message, naming the statement, there and at every
later call. A parent that dies (or is interrupted) closes the pipe: the child runs what it
already received and exits without committing the rest, as an in-process connection dropped
mid-run would. The child ignores SIGINT for that reason: a Ctrl-C in the terminal reaches the
whole process group, and the parent's own handling decides.

Only what a run reads back is exchanged as data: MessagePack of the parent's own rows, never
code (no pickle).
"""
from __future__ import annotations

import os
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import weakref
from array import array
from pathlib import Path

import msgspec

from .sqlrows import insert_rows, span_rows

ROWS, EXEC, MANY, SCRIPT, COMMIT, QUERY, CLOSE, SPAN = range(8)
_HEAD = struct.Struct(">I")
#: Prepared statements and page cache (KiB) of the writer's connection (:func:`_serve`).
STATEMENTS, CACHE_KIB = 16, 512
#: The writer commits when nothing is queued and this many bytes of frames ran since its last
#: commit, and SQLite checkpoints the WAL into the file past this many pages (4 KiB each).
IDLE_COMMIT, CHECKPOINT_PAGES = 1 << 19, 256


def _number(x):
    """MessagePack of what ``sqlite3`` binds beyond the built-in types, as it binds them: a float
    subclass (numpy's float64) as the same double, anything with the buffer protocol (numpy's
    other scalars) as a BLOB of its bytes. Anything else is refused as ``sqlite3`` refuses it."""
    if isinstance(x, float):
        return float(x)
    try:
        return bytes(memoryview(x))
    except TypeError:
        raise sqlite3.ProgrammingError(f"Error binding parameter - type '{type(x).__name__}' is not supported") from None


class WriterConnection:
    """The part of ``sqlite3.Connection`` a :class:`~trimtab.engine.journal.Journal` uses, run
    by a writer process (module docstring): ``execute``, ``executemany``, ``executescript``,
    ``commit``, ``close``, and :meth:`insert_rows`.

    ``execute`` of a read (SELECT, WITH, a PRAGMA without ``=``) waits for its rows and returns a cursor-like
    :class:`Rows`; every other statement is posted and returns None. Raises the first failed
    statement's ``sqlite3`` error (see the module docstring) at the next read or :meth:`close`,
    and :class:`WriterError` when the writer process is gone.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        # -P: the working directory's files never shadow a module; this very trimtab package
        # first on the path, so the child runs the parent's code (a source tree, a worktree).
        src = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([src] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        self._proc = subprocess.Popen([sys.executable, "-P", "-m", __name__, str(self.path)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env=env, close_fds=True)
        _widen_pipe(self._proc.stdin)
        self._enc = msgspec.msgpack.Encoder(enc_hook=_number)
        self._dec = msgspec.msgpack.Decoder()
        self._error: BaseException | None = None
        self._closed = False
        self._finalizer = weakref.finalize(self, _reap, self._proc)

    # -- posted ------------------------------------------------------------------------------
    def insert_rows(self, sql: str, rows: list) -> None:
        """:func:`insert_rows` of ``rows`` in the writer, posted."""
        self._send(ROWS, sql, rows)

    def insert_span(self, sql: str, first: int, times: list[str], state: str, head: tuple, columns: list) -> None:
        """:func:`insert_rows` of the quiet span's rows :func:`span_rows` builds, in the writer,
        posted: ``columns`` each a list of ``len(times)`` values or the bytes of a float64
        array (native byte order: read back as the same doubles)."""
        self._send(SPAN, sql, (first, times, state, head, columns))

    def execute(self, sql: str, params=()) -> Rows | None:
        """A read's rows (:class:`Rows`, waiting for them), or None for a posted statement."""
        head = sql.lstrip()[:6].upper()
        if head.startswith(("SELECT", "WITH")) or (head == "PRAGMA" and "=" not in sql):
            return Rows(self._ask(QUERY, sql, params))
        self._send(EXEC, sql, params)
        return None

    def executemany(self, sql: str, rows) -> None:
        self._send(MANY, sql, list(rows))

    def executescript(self, sql: str) -> None:
        self._send(SCRIPT, sql, None)

    def commit(self) -> None:
        self._send(COMMIT, None, None)

    def close(self) -> None:
        """Close the writer's connection (no commit) and wait for the process to end; raises
        the first failed statement's error, if any."""
        if self._closed:
            return
        try:
            self._ask(CLOSE, None, None)
        finally:
            self._closed = True
            self._finalizer()

    # -- the pipe ----------------------------------------------------------------------------
    def _send(self, op: int, sql, args) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        body = self._enc.encode((op, sql, args))
        try:
            w = self._proc.stdin
            w.write(_HEAD.pack(len(body)))
            w.write(body)
            w.flush()
        except (BrokenPipeError, ValueError):
            self._gone()

    def _ask(self, op: int, sql, args) -> list:
        self._send(op, sql, args)
        r = self._proc.stdout
        head = r.read(_HEAD.size)
        if len(head) < _HEAD.size:
            self._gone()
        (n,) = _HEAD.unpack(head)
        body = r.read(n)
        if len(body) < n:  # the child died while answering
            self._gone()
        reply = self._dec.decode(body)
        if reply[0] == 0:
            return reply[1]
        _, name, message, statement = reply
        cls = getattr(sqlite3, name, None)
        if not (isinstance(cls, type) and issubclass(cls, sqlite3.Error)):
            cls = sqlite3.Error
        self._error = cls(f"{message} (journal writer, in: {statement})")
        raise self._error

    def _gone(self):
        code = self._proc.wait()
        self._error = WriterError(f"the journal writer process for {self.path} ended (exit code {code}); "
                                  "rows not yet committed are lost")
        raise self._error


class Rows:
    """The rows a read returned (tuples), with the cursor methods the journal's readers use."""

    def __init__(self, rows: list):
        self._rows = [tuple(r) for r in rows]

    def fetchone(self) -> tuple | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[tuple]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self):
        return iter(self.fetchall())


class WriterError(sqlite3.OperationalError):
    """The writer process ended before it was asked to (killed, out of memory)."""


def _widen_pipe(f) -> None:
    """The pipe to the child as large as the system allows (Linux: 1 MiB by default), so a
    flush of thousands of rows is handed over without waiting for the child to read it."""
    try:
        import fcntl
        fcntl.fcntl(f.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
    except (ImportError, OSError):
        pass


def _reap(proc: subprocess.Popen) -> None:
    """End of a writer: its stdin closed (the child then finishes what it has and exits), then
    waited for, so no journal is still being written once its run has returned or failed."""
    try:
        proc.stdin.close()
    except OSError:
        pass
    proc.wait()
    proc.stdout.close()


# ------------------------------------------------------------------------------- the child
def _serve(path: str, inp, out) -> int:
    """Run the frames of ``inp`` on a connection to ``path`` (module docstring); 0 at CLOSE or EOF."""
    frames: list[bytes | None] = []
    ready = threading.Condition()

    def reader():  # drains the pipe at once, so the parent never waits while a batch is inserted
        while True:
            head = inp.read(_HEAD.size)
            body = inp.read(_HEAD.unpack(head)[0]) if len(head) == _HEAD.size else None
            with ready:
                frames.append(body)
                ready.notify()
            if body is None:
                return

    feeder = threading.Thread(target=reader, daemon=True)
    feeder.start()
    dec, enc = msgspec.msgpack.Decoder(), msgspec.msgpack.Encoder()
    # This process's memory adds to the run's. insert_rows' statements are large (~1,000
    # parameters: ~150 kB prepared each) and a run uses ~40 distinct ones: sqlite3's default
    # cache of 128 kept ~6 MB of them; the few evicted are prepared again, on this core. The
    # page cache: SQLite's default 2 MB; dirty pages past it go to the WAL before the commit.
    failed = None
    try:
        db = sqlite3.connect(path, cached_statements=STATEMENTS)
        db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        db.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
    except sqlite3.Error as e:  # the file cannot be opened: the next read and the close say so
        db = sqlite3.connect(":memory:")
        failed = (1, type(e).__name__, str(e), f"opening {path}")

    def answer(msg) -> None:
        body = enc.encode(msg)
        out.write(_HEAD.pack(len(body)) + body)
        out.flush()

    written = 0  # bytes of rows run since the last commit
    while True:
        with ready:
            idle = not frames and written >= IDLE_COMMIT and failed is None
            if not idle:
                while not frames:
                    ready.wait()
                batch, frames[:] = frames[:], []
        if idle:
            # Nothing queued: commit now, on this core's idle time, so the run's end commits
            # (and checkpoints) only what came after
            written = 0
            try:
                db.commit()
            except sqlite3.Error as e:
                db.rollback()
                failed = (1, type(e).__name__, str(e), "COMMIT")
            continue
        for body in batch:
            if body is None:  # the parent is gone: what was not committed is not
                db.close()
                return 0
            op, sql, args = dec.decode(body)
            written = 0 if op == COMMIT else written + len(body)
            reply = failed  # a failed journal runs nothing more; it answers with that failure
            if failed is None:
                try:
                    reply = _apply(db, op, sql, args)
                except sqlite3.Error as e:
                    db.rollback()
                    reply = failed = (1, type(e).__name__, str(e), (sql or "COMMIT")[:200])
            if op in (QUERY, CLOSE):
                answer(reply)
            if op == CLOSE:
                db.close()  # (again, if _apply closed it: a no-op)
                feeder.join()  # until the parent closes the pipe: no thread left reading at exit
                return 0


def _apply(db: sqlite3.Connection, op: int, sql, args) -> tuple | None:
    """Run one frame on ``db``; the answer of a QUERY (its rows) or CLOSE, else None."""
    if op == ROWS:
        insert_rows(db, sql, args)
    elif op == SPAN:
        first, times, state, head, columns = args
        columns = [_doubles(c) if isinstance(c, bytes) else c for c in columns]
        insert_rows(db, sql, list(span_rows(first, times, state, head, columns)))
    elif op == EXEC:
        db.execute(sql, args)
    elif op == MANY:
        db.executemany(sql, args)
    elif op == SCRIPT:
        db.executescript(sql)
    elif op == COMMIT:
        db.commit()
    elif op == QUERY:
        return (0, db.execute(sql, args).fetchall())
    elif op == CLOSE:
        db.close()  # WAL checkpointed into the file before the parent hears back
        return (0, [])
    return None


def _doubles(b: bytes) -> list[float]:
    """A float64 array's bytes (native order) as Python floats."""
    a = array("d")
    a.frombytes(b)
    return a.tolist()


def main(argv: list[str] | None = None) -> int:
    """``python -m trimtab.engine.journal_writer PATH``: serve one journal (stdin, stdout)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # module docstring: the parent decides
    # The pipe's reader thread takes the GIL as soon as a frame arrives (5 ms by default, while
    # the main thread binds rows): the parent's writes never wait on this process's inserts.
    sys.setswitchinterval(1e-4)
    (path,) = argv if argv is not None else sys.argv[1:]
    return _serve(path, sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    code = main()
    # The journal is closed and answered for; the interpreter's teardown (~9 ms of module and
    # thread clean-up) would only delay the parent's wait for this process to end.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
