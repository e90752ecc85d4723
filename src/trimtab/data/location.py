"""Where the market data lives: the bundled ``data/`` or the directory ``TRIMTAB_DATA`` names.

A module of its own, without numpy or pyarrow, so a config check that only needs the
directory (its manifest's series names, :mod:`trimtab.config.domains`) does not load the
bundle reader (:mod:`trimtab.data.feed`, which re-exports these names and sets the directory:
:func:`trimtab.data.feed.set_data_dir`).
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BUNDLED_DATA_DIR", "DEFAULT_DATA_DIR", "data_dir"]

#: The repository's bundled ``data/``.
BUNDLED_DATA_DIR: Path = Path(__file__).resolve().parents[3] / "data"


def data_dir() -> Path:
    """The data directory in force now: env ``TRIMTAB_DATA`` (set by ``trimtab --data DIR``)
    or the bundled ``data/``."""
    env = os.environ.get("TRIMTAB_DATA")
    return Path(env) if env else BUNDLED_DATA_DIR


class _DataDirNow(os.PathLike):
    """:func:`data_dir` as a path-like value, read at each use.

    Modules take ``DEFAULT_DATA_DIR`` by ``from ... import`` when they are imported, before
    ``trimtab --data DIR`` has parsed its option, so a plain ``Path`` would freeze the
    directory in force at import time.
    """

    def __fspath__(self) -> str:
        return str(data_dir())

    def __truediv__(self, other) -> Path:
        return data_dir() / other

    def __getattr__(self, name):
        return getattr(data_dir(), name)

    def __eq__(self, other) -> bool:
        return data_dir() == (Path(other) if isinstance(other, (str, os.PathLike)) else other)

    def __hash__(self) -> int:
        return hash(data_dir())

    def __str__(self) -> str:
        return str(data_dir())

    def __repr__(self) -> str:
        return f"DEFAULT_DATA_DIR({data_dir()!s})"


#: The data directory in force (:func:`data_dir`), path-like: ``Path(DEFAULT_DATA_DIR)``,
#: ``DEFAULT_DATA_DIR / "manifest.json"``.
DEFAULT_DATA_DIR = _DataDirNow()
