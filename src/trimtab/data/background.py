"""The bundle loaded on a thread while the caller loads its config (issue 14: start-up).

``trimtab run`` needs the market data and the config, and neither needs the other to load.
Most of :func:`trimtab.data.feed.load_market_data` is pyarrow decoding Parquet pages with the
GIL released (~30 of the flagship's ~45 ms), so it can overlap the config's parsing and
validation (pure Python). :class:`BackgroundLoad` starts the load at construction; the caller
collects it with :meth:`BackgroundLoad.result`. The data and its errors are those of a direct
call: the thread runs that very function.
"""
from __future__ import annotations

import threading
from pathlib import Path

from .feed import MarketData, load_market_data

__all__ = ["BackgroundLoad"]


class BackgroundLoad:
    """:func:`~trimtab.data.feed.load_market_data` of ``data_dir`` (default: the data directory
    in force when the thread starts: ``--data``, else ``TRIMTAB_DATA``, else the repository's
    ``data/``) on a thread started at construction.

    :meth:`result` waits for it and returns the :class:`~trimtab.data.feed.MarketData`, or
    raises what the load raised (a :class:`~trimtab.data.feed.DataError` for a missing or
    damaged bundle, worded as the direct call words it); it may be called again and gives the
    same object or error. A load no one collects (the config was refused) finishes on its own:
    the thread is not a daemon, so the interpreter's exit waits for it (at most the load's
    time) rather than stopping it inside pyarrow.
    """

    def __init__(self, data_dir: Path | None = None):
        # pyarrow's Parquet reader is imported here, not on the thread: a first import there
        # would hold the import lock while the caller imports its own modules. (Another pyarrow
        # layout: the loader falls back to the public reader, imported on the thread.)
        try:
            from pyarrow._parquet import ParquetReader  # noqa: F401
        except ImportError:
            pass

        self._data: MarketData | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, args=(data_dir,), name="trimtab-data-load")
        self._thread.start()

    def _load(self, data_dir: Path | None) -> None:
        try:
            self._data = load_market_data(data_dir)
        except BaseException as e:  # noqa: BLE001 - handed to result(), which raises it in the caller
            self._error = e

    def result(self) -> MarketData:
        """The loaded bundle, once the thread is done. Raises the load's own error."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._data is not None
        return self._data
