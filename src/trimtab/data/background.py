"""The bundle loaded beside the caller while it loads its config (issue 14: start-up).

``trimtab run`` needs the market data and the config, and neither needs the other to load.
:class:`BackgroundLoad` starts :func:`trimtab.data.feed.load_market_data` at construction; the
caller collects it with :meth:`BackgroundLoad.result`. The data and its errors are those of a
direct call.

Where it can, the load runs in a *forked* child on the machine's second core. A thread was
tried first and gained little: pyarrow decodes a file with the GIL released, but each of the
bundle's 31 files then waits for the GIL (held by the config's imports and validation, much
of it in C calls that never yield), so the ~45 ms load stretched over ~150 ms and still held
up the run by 20-40 ms. A forked child shares the parent's imported modules (a fresh
interpreter would spend ~130 ms of CPU importing numpy and pyarrow: an earlier, spawned loader
was dropped for it), reads the files on its own interpreter and hands back the arrays through
an anonymous memory file (``memfd``): every array's raw bytes, then a MessagePack header
(msgspec, as :mod:`trimtab.engine.journal_writer`) with the manifest's checked catalog and
where each series' arrays lie (dtype, length, offset), or a
:class:`~trimtab.data.feed.DataError`'s message. The parent maps the file copy-on-write, reads
the header as untrusted data (typed decoding; dtypes, lengths and offsets checked) and builds
the :class:`~trimtab.data.feed.MarketData` (:func:`~trimtab.data.feed.assemble`) on views of
the child's pages, no copy: the direct load's, array for array, bit for bit.

With its time left over (the config takes longer than the load), the child also makes the
data checks of every series with the default limits (:class:`~trimtab.data.quality.Checked`,
all judged: ~25 ms there, the ~15-20 ms a run spent judging its own series here), sent the
same way; a run with other limits (``data_checks``) makes its own, as before. Then it can do
one job the caller names at construction, handed over later (:meth:`BackgroundLoad.submit`):
``trimtab run`` has it write a backtest's ``equity.csv``, so the run's own process never
imports pyarrow. Without a job to come, it ends when the caller closes it.

The child is only forked from a process running one thread (forking a threaded process can
leave a lock held forever in the child) on Linux (``os.fork``, ``os.memfd_create``); otherwise
the load runs on a thread, as it did. A child that fails to start, dies, or answers anything
but a valid answer is set aside and the bundle is loaded in-process, so the user sees what that
load says; a job it fails is done by the caller. The child ignores SIGINT (a Ctrl-C reaches the
whole process group: the parent's own handling decides), never returns into the caller's code
(``os._exit``), and is killed and reaped when no longer wanted, at the latest when the
interpreter exits.
"""
from __future__ import annotations

import functools
import os
import signal
import struct
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np

from .feed import DataError, MarketData, Series, assemble, load_market_data, read_catalog, read_series
from .location import DEFAULT_DATA_DIR
from .quality import Bands, Checked, SeriesQuality

__all__ = ["BackgroundLoad"]

# (the file's length, the header's offset), written on the pipe once the answer is in the file
_HEAD = struct.Struct(">QQ")
_PATIENCE_S = 120.0  # the longest wait for the child's answer or a job's status (the bundle loads in ~0.05 s)


class BackgroundLoad:
    """:func:`~trimtab.data.feed.load_market_data` of ``data_dir`` (default: the data directory
    in force at construction: ``--data``, else ``TRIMTAB_DATA``, else the repository's ``data/``)
    started at construction, in a forked child where possible, else on a thread (module docstring).

    :meth:`result` waits for it and returns the :class:`~trimtab.data.feed.MarketData`, or
    raises what the load raised (a :class:`~trimtab.data.feed.DataError` for a missing or
    damaged bundle, worded as the direct call words it); it may be called again and gives the
    same object or error. :attr:`how` says where it ran: ``"process"``, ``"thread"``, or
    ``"in-process"`` (the child failed; the caller's thread loaded it at :meth:`result`). A load
    no one collects (the config was refused) is stopped and reaped at :meth:`close`, when this
    object is dropped, or at the interpreter's exit; a thread finishes on its own (it is not a
    daemon, so an exit waits for it rather than stopping it inside pyarrow).

    ``fork=False`` always uses the thread.

    **One job after the load.** A forked child can do one more piece of work for the caller,
    later, on the second core: ``job(spec, arrays)``, a function of the caller's (``spec`` a
    plain MessagePack-able dict, ``arrays`` name -> 1-D numpy array of :data:`_DTYPES`), given
    at construction with ``prepare()`` (run by the child once it has answered, to import what
    the job needs while the caller is busy). :meth:`submit` hands it over and returns a
    :class:`Pending` (None without a child: the caller then does the work itself). ``trimtab
    run`` writes ``equity.csv`` this way (:func:`trimtab.engine.results.equity_csv_job`), so
    its own process never imports pyarrow.
    """

    def __init__(self, data_dir: Path | None = None, fork: bool = True,
                 job: Callable[[dict, dict[str, np.ndarray]], None] | None = None, prepare: Callable[[], None] | None = None):
        self.data_dir = Path(data_dir) if data_dir is not None else Path(DEFAULT_DATA_DIR)
        self._data: MarketData | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._child: _Child | None = None
        self._helper: _Child | None = None  # the child once it answered, waiting for its job
        if fork and _can_fork():
            self._child = _Child.start(self.data_dir, job, prepare)
        if self._child is not None:
            self.how = "process"
            self._finalizer = weakref.finalize(self, self._child.close)
        else:
            self.how = "thread"
            self._finalizer = None
            # pyarrow's Parquet reader imported here, not on the thread: a first import there
            # would hold the import lock while the caller imports its own modules.
            try:
                from pyarrow._parquet import ParquetReader  # noqa: F401
            except ImportError:  # another pyarrow layout: the loader's fallback imports its own
                pass
            self._thread = threading.Thread(target=self._load, name="trimtab-data-load")
            self._thread.start()

    def _load(self) -> None:
        try:
            self._data = load_market_data(self.data_dir)
        except BaseException as e:  # noqa: BLE001 - handed to result(), which raises it in the caller
            self._error = e

    def result(self) -> MarketData:
        """The loaded bundle, once the child or the thread is done. Raises the load's own error."""
        if self._child is not None:
            child, self._child = self._child, None  # (collected once: later calls give what this one set)
            answer = None
            try:
                answer = child.receive()
            finally:
                if isinstance(answer, tuple) and child.has_job:
                    self._helper = child  # kept for submit(); closed by close()
                else:
                    self.close()
            if isinstance(answer, str):
                self._error = DataError(answer)
            elif answer is None:  # no valid answer: the direct load, whatever it says
                self.how = "in-process"
                self._load()
            else:
                catalog, loaded, checks = answer
                try:
                    self._data = assemble(self.data_dir, loaded, catalog, quality=checks)
                except DataError as e:
                    self._error = e
        elif self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._data is not None
        return self._data

    def submit(self, spec: dict, arrays: dict[str, np.ndarray]) -> Pending | None:
        """Hand the child its job (class docstring) once :meth:`result` has given the data; None
        if there is no child to do it (a thread load, a child that failed, a job already
        given, no job at construction): the caller does the work itself."""
        helper, self._helper = self._helper, None
        if helper is None:
            return None
        pending = helper.submit(spec, arrays)
        if pending is None:
            self.close()
        return pending

    def close(self) -> None:
        """Stop and reap the child (its job, if one is running, is abandoned: kill), free its
        answer (idempotent; a thread is left to finish)."""
        self._helper = None
        if self._finalizer is not None:
            self._finalizer()


class Pending:
    """A job the child is doing (:meth:`BackgroundLoad.submit`)."""

    def __init__(self, child: _Child):
        self._child = child
        self._done: bool | None = None

    def wait(self, timeout: float = _PATIENCE_S) -> bool:
        """Wait for the job (at most ``timeout`` seconds); True if the child did it, False if it
        failed, died or took too long (the child is then killed and reaped: the caller does the
        work itself). Idempotent."""
        if self._done is None:
            self._done = self._child.finished(timeout)
        return self._done


def _can_fork() -> bool:
    """Whether a child may be forked here: Linux's fork and memfd, a second core to run it on,
    and no thread but this one (a lock another thread holds would stay held in the child)."""
    return (hasattr(os, "fork") and hasattr(os, "memfd_create") and (os.cpu_count() or 1) > 1
            and threading.active_count() == 1)


class _Child:
    """A forked loader: its pid, the read end of its pipe, and the memfd its answer goes to."""

    def __init__(self, pid: int, pipe: int, fd: int, cmd: int, job_fd: int, has_job: bool):
        self.pid, self.pipe, self.fd, self.cmd, self.job_fd, self.has_job = pid, pipe, fd, cmd, job_fd, has_job
        self.answered = False   # the data's answer came: the child is not killed, it ends by itself
        self.busy = False       # a job was handed over and not answered: killed if abandoned
        self.closed = False

    @classmethod
    def start(cls, data_dir: Path, job=None, prepare=None) -> _Child | None:
        """Fork the loader of ``data_dir`` (then the server of ``job``); None if it cannot be started."""
        _wire()  # msgspec and the answer's types, imported once and shared with the child
        fds: list[int] = []
        try:
            fds.append(os.memfd_create("trimtab-bundle", os.MFD_CLOEXEC))
            fds.append(os.memfd_create("trimtab-job", os.MFD_CLOEXEC))
            fds.extend(os.pipe())  # child -> parent: the answers
            fds.extend(os.pipe())  # parent -> child: the job (EOF: none, end)
            pid = os.fork()
        except OSError:
            for x in fds:
                os.close(x)
            return None
        fd, job_fd, r, w, cmd_r, cmd_w = fds
        if pid == 0:  # the child: never returns
            # The parent's ends closed here, or the job pipe would never see the parent's EOF.
            os.close(r)
            os.close(cmd_w)
            _child_main(data_dir, fd, w, cmd_r, job_fd, job, prepare)
        os.close(w)
        os.close(cmd_r)
        return cls(pid, r, fd, cmd_w, job_fd, job is not None)

    def submit(self, spec: dict, arrays: dict[str, np.ndarray]) -> Pending | None:
        """Write the job into the job file and tell the child; None if that fails."""
        import msgspec

        array = _wire()[0]
        try:
            with open(self.job_fd, "wb", closefd=False) as f:
                refs = _write_arrays(f, arrays, array)
                at = f.tell()
                f.write(msgspec.msgpack.encode([spec, refs]))
                n = f.tell()
            self.busy = True
            os.write(self.cmd, _HEAD.pack(n, at))
        except (OSError, TypeError, KeyError, msgspec.EncodeError):
            return None
        return Pending(self)

    def finished(self, timeout: float) -> bool:
        """Whether the child did its job: its one-byte status (0: done), waited for at most
        ``timeout`` seconds; the child is reaped either way (killed if it has not answered)."""
        import select

        ok = False
        try:
            if select.select([self.pipe], [], [], timeout)[0]:
                got = os.read(self.pipe, 1)
                ok = got == b"\0"
                self.busy = not got
        except OSError:
            pass
        finally:
            self.close()
        return ok

    def receive(self) -> tuple[dict, dict[str, Series], dict[str, SeriesQuality]] | str | None:
        """The child's answer: ``(catalog, series, checks)``, the first two as
        :func:`~trimtab.data.feed.read_catalog` and :func:`~trimtab.data.feed.read_series`
        return them, the checks of every series with the default limits; a DataError's message;
        or None if there is no valid answer."""
        import mmap
        import select

        try:
            # A child that neither answers nor dies (it should not happen: it is forked from one
            # thread) is given up on after a while, for the direct load.
            if not select.select([self.pipe], [], [], _PATIENCE_S)[0]:
                return None
            head = _read_exactly(self.pipe, _HEAD.size)
            if len(head) != _HEAD.size:
                return None
            self.answered = True
            n, at = _HEAD.unpack(head)
            if not 0 <= at < n == os.fstat(self.fd).st_size:
                return None
            # Mapped copy-on-write: the arrays are views of the child's pages (no copy), and
            # writable as the direct load's are; the mapping lives as long as one of them. Not
            # pre-faulted: MAP_POPULATE on a writable private map copies every page (~5 ms).
            m = mmap.mmap(self.fd, n, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError, OverflowError):
            return None
        return _decode(m, at)

    def close(self) -> None:
        """End the child: no job to come (its command pipe closed: it exits), killed if it has
        not answered the data or is in the middle of a job; reaped; its pipes and files closed.
        Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            os.close(self.cmd)
        except OSError:
            pass
        # An answered, idle child ends at the command pipe's EOF (at most its prepare() first);
        # one that has not answered, is doing a job, or does not end, is killed.
        kill = not self.answered or self.busy
        try:
            for _ in range(0 if kill else 200):
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    break
                time.sleep(0.005)
            else:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        except (ChildProcessError, ProcessLookupError):
            pass
        for x in (self.pipe, self.fd, self.job_fd):
            try:
                os.close(x)
            except OSError:
                pass


def _read_exactly(fd: int, n: int) -> bytes:
    """Up to ``n`` bytes from ``fd``, fewer only at end of file (the child died)."""
    out = b""
    while len(out) < n:
        got = os.read(fd, n - len(out))
        if not got:
            break
        out += got
    return out


@functools.cache
def _wire():
    """The answer's types ``(Array, Quality, Series, Bundle, Failure)``. An Array is where a 1-D
    array's raw bytes (C order) lie in the answer's file: numpy dtype string (:data:`_DTYPES`),
    length, byte offset (a multiple of 8); a Series' ``values`` follow the manifest's column
    order, its Quality is its :class:`~trimtab.data.quality.SeriesQuality` with the default
    limits (the columns are the values')."""
    import msgspec

    array = msgspec.defstruct("Array", [("dtype", str), ("n", int), ("offset", int)], array_like=True)
    quality = msgspec.defstruct("Quality", [("code", array), ("column", array), ("ref", array), ("keep", array),
                                            ("duplicates", list[tuple[int, int, bool]])], array_like=True)
    series = msgspec.defstruct("Series", [("name", str), ("avail", array), ("values", dict[str, array]),
                                          ("ts", Union[array, None]), ("quality", quality)], array_like=True)
    bundle = msgspec.defstruct("Bundle", [("catalog", dict[str, dict[str, Any]]), ("series", list[series])],
                               array_like=True, tag="bundle")
    failure = msgspec.defstruct("Failure", [("message", str)], array_like=True, tag="error")
    return array, quality, series, bundle, failure


def _decode(m, at: int) -> tuple[dict, dict[str, Series], dict[str, SeriesQuality]] | str | None:
    """:meth:`_Child.receive`'s answer from the mapped file ``m``: the arrays before ``at``,
    the MessagePack header from ``at`` on."""
    import msgspec

    _, _, _, bundle, failure = _wire()
    try:
        answer = msgspec.msgpack.decode(m[at:], type=bundle | failure)
    except msgspec.DecodeError:  # ValidationError included
        return None
    if isinstance(answer, failure):
        return answer.message
    got = _unpack(answer, m, at)
    return (answer.catalog, *got) if got is not None else None


_DTYPES = {t: np.dtype(t) for t in ("<i8", "<f8", "|i1", "|b1")}  # what a Series and its SeriesQuality hold


def _array(a, dtype: str, m, end: int, n: int | None = None) -> np.ndarray | None:
    """The array the Array ``a`` places in ``m`` (before ``end``), if it is 1-D of ``dtype``,
    ``n`` long when given, aligned and inside the arrays' part; else None."""
    dt = _DTYPES[dtype]
    if a.dtype != dtype or a.n < 0 or (n is not None and a.n != n):
        return None
    if a.offset < 0 or a.offset % dt.itemsize or a.offset + a.n * dt.itemsize > end:
        return None
    return np.frombuffer(m, dtype=dt, count=a.n, offset=a.offset)


def _unpack(bundle, m, end: int) -> tuple[dict[str, Series], dict[str, SeriesQuality]] | None:
    """The :class:`~trimtab.data.feed.Series` of every catalog entry of the Bundle ``bundle``
    (arrays in ``m`` before ``end``), as :func:`~trimtab.data.feed.read_series` built them in
    the child (``meta`` the catalog's entry itself, as a direct load has it), and their
    :class:`~trimtab.data.quality.SeriesQuality`; None if ``bundle`` is not what the child sends
    (every series of the catalog, in its order, consistent arrays)."""
    catalog = bundle.catalog
    if [s.name for s in bundle.series] != list(catalog):
        return None
    loaded: dict[str, Series] = {}
    checks: dict[str, SeriesQuality] = {}
    try:
        for s in bundle.series:
            meta = catalog[s.name]
            avail = _array(s.avail, "<i8", m, end)
            if avail is None or list(s.values) != list(dict.fromkeys(meta["columns"])):
                return None
            n = avail.size
            values = {c: _array(v, "<f8", m, end, n) for c, v in s.values.items()}
            ts = _array(s.ts, "<i8", m, end, n) if s.ts is not None else None
            q = s.quality
            code, column, ref, keep = (_array(q.code, "|i1", m, end, n), _array(q.column, "|i1", m, end, n),
                                       _array(q.ref, "<f8", m, end, n), _array(q.keep, "|b1", m, end, n))
            if any(v is None for v in (*values.values(), code, column, ref, keep)) or (s.ts is not None and ts is None):
                return None
            loaded[s.name] = Series(meta["name"], avail, values, float(meta["interval_h"]), meta["fill"],
                                    tuple(meta.get("geometric", ())), meta, ts)
            checks[s.name] = SeriesQuality(code, column, ref, keep, tuple(values), [tuple(d) for d in q.duplicates])
    except (KeyError, TypeError, ValueError):
        return None
    return loaded, checks


# ------------------------------------------------------------------------------- the child
def _answer(data_dir: Path, out) -> int:
    """Write the answer for the bundle at ``data_dir`` to the file ``out``: every array's raw
    bytes, then the MessagePack header that places them (module docstring); returns the
    header's offset."""
    import msgspec

    array, quality, series, bundle, failure = _wire()

    def raw(a: np.ndarray):
        return _write_array(out, a, array)

    try:
        catalog, names = read_catalog(data_dir)
        loaded = read_series(data_dir, catalog, names)
    except DataError as e:
        out.write(msgspec.msgpack.encode(failure(str(e))))
        return 0
    # The checks of every row with the default limits, all judged (the run reads its few): the
    # parent's MarketData takes them as made, the verdicts being the same judged in any order.
    checks = Checked(loaded, Bands.of(None))
    head = bundle(catalog, [series(n, raw(s.avail), {c: raw(v) for c, v in s.values.items()}, None if s.ts is None else raw(s.ts),
                                   _quality(quality, raw, checks[n]))
                            for n, s in loaded.items()])
    at = out.tell()
    out.write(msgspec.msgpack.encode(head))
    return at


def _write_array(out, a: np.ndarray, array):
    """Write the 1-D array ``a`` (of :data:`_DTYPES`) to the file ``out`` at its position, then
    zeros to the next multiple of 8; its wire Array."""
    a = np.ascontiguousarray(a, dtype=_DTYPES[a.dtype.str])
    if a.ndim != 1:
        raise TypeError(f"arrays are 1-D, not {a.shape}")
    ref = array(a.dtype.str, int(a.shape[0]), out.tell())
    out.write(a.data.cast("B"))
    out.write(b"\0" * (-a.nbytes % 8))  # every array starts 8-byte aligned
    return ref


def _write_arrays(out, arrays: dict[str, np.ndarray], array) -> dict:
    return {name: _write_array(out, a, array) for name, a in arrays.items()}


def _quality(quality, raw, q: SeriesQuality):
    """The wire's Quality of ``q`` (its arrays written by ``raw``)."""
    return quality(raw(q.code), raw(q.column), raw(q.ref), raw(q.keep), [(int(t), int(r), bool(d)) for t, r, d in q.duplicates])


def _child_main(data_dir: Path, fd: int, w: int, cmd: int, job_fd: int, job, prepare) -> None:
    """The forked child: the answer into the memfd ``fd``, then its length and its header's
    offset on the pipe ``w``; then, if there is a ``job``, ``prepare()`` and the job the parent
    hands over on ``cmd`` (its arrays in ``job_fd``), its status byte on ``w`` (0: done). Ends
    the process (``os._exit``) whatever happens, so the caller's code never runs twice."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with open(fd, "wb", closefd=False) as f:
            at = _answer(data_dir, f)
            f.flush()
            n = f.tell()
        os.write(w, _HEAD.pack(n, at))
        code = 0
        if job is not None:
            _serve(w, cmd, job_fd, job, prepare)
    except BaseException:  # noqa: BLE001 - the parent sees no answer and loads in-process (or does the job)
        pass
    finally:
        os._exit(code)


def _serve(w: int, cmd: int, job_fd: int, job, prepare) -> None:
    """The child's one job: wait for it on ``cmd`` (EOF: none comes), run it on the arrays the
    parent wrote to ``job_fd``, answer a status byte on ``w``."""
    import mmap

    import msgspec

    if prepare is not None:
        prepare()
    head = _read_exactly(cmd, _HEAD.size)
    if len(head) != _HEAD.size:
        return
    status = b"\1"
    try:
        n, at = _HEAD.unpack(head)
        m = mmap.mmap(job_fd, n, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        spec, refs = msgspec.msgpack.decode(m[at:], type=tuple[dict[str, Any], dict[str, _wire()[0]]])
        arrays = {}
        for name, ref in refs.items():
            a = _array(ref, ref.dtype, m, at) if ref.dtype in _DTYPES else None
            if a is None:
                raise ValueError(f"job array {name!r} out of bounds")
            arrays[name] = a
        job(spec, arrays)
        status = b"\0"
    finally:
        os.write(w, status)
