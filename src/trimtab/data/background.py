"""The bundle loaded beside the caller while it loads its config (issue 14: start-up).

``trimtab run`` needs the market data and the config, and neither needs the other to load.
:class:`BackgroundLoad` starts :func:`trimtab.data.feed.load_market_data` at construction; the
caller collects it with :meth:`BackgroundLoad.result`. The data and its errors are those of a
direct call.

Where it can, the load runs in a *forked* child on the machine's second core. A thread was
tried first and gained little: pyarrow decodes a file with the GIL released, but each of the
bundle's 31 files then waits for the GIL (held by the config's imports and validation, much
of it in C calls that never yield), so the ~45 ms load stretched over ~150 ms and still held
up the run by 20-40 ms. A forked child shares the parent's imported numpy and pyarrow (a fresh
interpreter would spend ~130 ms of CPU importing them: an earlier, spawned loader was dropped for it),
reads the files on its own interpreter and hands back the arrays through an anonymous memory
file (``memfd``): every array's raw bytes, then a MessagePack header (msgspec, as
:mod:`trimtab.engine.journal_writer`) with the manifest's checked catalog and where each
series' arrays lie (dtype, length, offset), or a :class:`~trimtab.data.feed.DataError`'s
message. Its time left over (the config takes longer than the load), the child also makes the
data checks of every series with the default limits (:class:`~trimtab.data.quality.Checked`,
all judged: ~25 ms there, the ~15-20 ms a run spent judging its series here), sent the same
way; a run with other limits (``data_checks``) makes its own, as before. The parent maps the file copy-on-write, reads the header as untrusted data (typed
decoding; dtypes, lengths and offsets checked) and builds the
:class:`~trimtab.data.feed.MarketData` (:func:`~trimtab.data.feed.assemble`) on views of the
child's pages, no copy: the direct load's, array for array, bit for bit.

The child is only forked from a process running one thread (forking a threaded process can
leave a lock held forever in the child) on Linux (``os.fork``, ``os.memfd_create``); otherwise
the load runs on a thread, as it did. A child that fails to start, dies, or answers anything
but a valid answer is set aside and the bundle is loaded in-process, so the user sees what that
load says. The child ignores SIGINT (a Ctrl-C reaches the whole process group: the parent's
own handling decides), never returns into the caller's code (``os._exit``), and is killed and
reaped when no longer wanted, at the latest when the interpreter exits.
"""
from __future__ import annotations

import functools
import os
import signal
import struct
import threading
import weakref
from pathlib import Path
from typing import Any, Union

import numpy as np

from .feed import DataError, MarketData, Series, assemble, load_market_data, read_catalog, read_series
from .location import DEFAULT_DATA_DIR
from .quality import Bands, Checked, SeriesQuality

__all__ = ["BackgroundLoad"]

# (the file's length, the header's offset), written on the pipe once the answer is in the file
_HEAD = struct.Struct(">QQ")
_PATIENCE_S = 120.0  # the longest wait for the child's first byte (the bundle loads in ~0.05 s)


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
    """

    def __init__(self, data_dir: Path | None = None, fork: bool = True):
        self.data_dir = Path(data_dir) if data_dir is not None else Path(DEFAULT_DATA_DIR)
        self._data: MarketData | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._child: _Child | None = None
        if fork and _can_fork():
            self._child = _Child.start(self.data_dir)
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
            try:
                answer = child.receive()
            finally:
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

    def close(self) -> None:
        """Stop and reap the child if it has not answered, free its answer (idempotent; a
        thread is left to finish)."""
        if self._finalizer is not None:
            self._finalizer()


def _can_fork() -> bool:
    """Whether a child may be forked here: Linux's fork and memfd, a second core to run it on,
    and no thread but this one (a lock another thread holds would stay held in the child)."""
    return (hasattr(os, "fork") and hasattr(os, "memfd_create") and (os.cpu_count() or 1) > 1
            and threading.active_count() == 1)


class _Child:
    """A forked loader: its pid, the read end of its pipe, and the memfd its answer goes to."""

    def __init__(self, pid: int, pipe: int, fd: int):
        self.pid, self.pipe, self.fd = pid, pipe, fd
        self.answered = False

    @classmethod
    def start(cls, data_dir: Path) -> _Child | None:
        """Fork the loader of ``data_dir``; None if it cannot be started."""
        _wire()  # msgspec and the answer's types, imported once and shared with the child
        try:
            fd = os.memfd_create("trimtab-bundle", os.MFD_CLOEXEC)
        except OSError:
            return None
        try:
            r, w = os.pipe()
        except OSError:
            os.close(fd)
            return None
        try:
            pid = os.fork()
        except OSError:
            for x in (fd, r, w):
                os.close(x)
            return None
        if pid == 0:  # the child: never returns
            _child_main(data_dir, fd, w)
        os.close(w)
        return cls(pid, r, fd)

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
        """Kill the child unless it answered (it only reads files), reap it, close its pipe and
        its answer's file. Called once (through the finalizer)."""
        if not self.answered:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(self.pid, 0)  # an answered child is ending (os._exit)
        except ChildProcessError:
            pass
        for x in (self.pipe, self.fd):
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
    at = 0

    def raw(a: np.ndarray):
        nonlocal at
        a = np.ascontiguousarray(a, dtype=_DTYPES[a.dtype.str])
        ref = array(a.dtype.str, int(a.shape[0]), at)
        out.write(a.data.cast("B"))
        pad = -a.nbytes % 8  # every array starts 8-byte aligned
        out.write(b"\0" * pad)
        at += a.nbytes + pad
        return ref

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
    out.write(msgspec.msgpack.encode(head))
    return at


def _quality(quality, raw, q: SeriesQuality):
    """The wire's Quality of ``q`` (its arrays written by ``raw``)."""
    return quality(raw(q.code), raw(q.column), raw(q.ref), raw(q.keep), [(int(t), int(r), bool(d)) for t, r, d in q.duplicates])


def _child_main(data_dir: Path, fd: int, w: int) -> None:
    """The forked child: the answer into the memfd ``fd``, then its length and its header's offset
    on the pipe ``w``;
    ends the process (``os._exit``) whatever happens, so the caller's code never runs twice."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with open(fd, "wb", closefd=False) as f:
            at = _answer(data_dir, f)
            f.flush()
            n = f.tell()
        os.write(w, _HEAD.pack(n, at))
        code = 0
    except BaseException:  # noqa: BLE001 - the parent sees no answer and loads in-process
        pass
    finally:
        os._exit(code)
