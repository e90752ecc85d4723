"""A content-addressed cache of parsed YAML documents (plain data + positions), as JSON files.

Reading a config is mostly ruamel's pure-Python scanner (~90% of ``load_strategy``: a strategy
names a dozen YAML files). A document that parsed cleanly is stored under the SHA-256 of its
text (and of this module's format and ruamel's version), so the next process reading the same
text rebuilds it from JSON instead of parsing it again. The key is the text itself, so an
edited file can never be served stale; a document is only ever stored after a clean parse.

Only documents of plain data are stored: mappings with string keys, lists, str, int, float,
bool and None, and no anchors or aliases (ruamel warns on a reused anchor while composing, and
a cached document would not). Anything else (dates, binary) is simply parsed every time. No pickle: the cache is JSON, read as
untrusted (anything unexpected in an entry is a miss).

Location: ``$TRIMTAB_CACHE_DIR/yaml`` if set (``TRIMTAB_CACHE_DIR=off`` disables the cache),
else ``$XDG_CACHE_HOME/trimtab/yaml`` or ``~/.cache/trimtab/yaml``. A directory that cannot be
written just means no cache. At most :data:`MAX_ENTRIES` entries are kept (oldest dropped).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["MAX_ENTRIES", "cache_dir", "get", "put"]

#: Bump when the entry layout or what the builder produces changes.
FORMAT = "trimtab-yamldoc-1"
MAX_ENTRIES = 2000

_Positions = dict[tuple, tuple[int, int]]


def _ruamel_version() -> str:
    try:
        from ruamel.yaml import __version__ as v
    except ImportError:  # pragma: no cover
        v = "?"
    return str(v)


_SALT = f"{FORMAT}\0{_ruamel_version()}\0".encode()


def cache_dir() -> Path | None:
    """The cache directory (not created here), or None when disabled (``TRIMTAB_CACHE_DIR=off``)."""
    env = os.environ.get("TRIMTAB_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env) / "yaml"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "trimtab" / "yaml"


def _key(text: str) -> str:
    return hashlib.sha256(_SALT + text.encode("utf-8", "surrogatepass")).hexdigest()


# -- encoding: containers are tagged JSON arrays, scalars are themselves ----------------------
class _NotPlain(Exception):
    pass


def _enc(v: Any) -> Any:
    t = type(v)
    if v is None or t in (str, int, float, bool):
        return v
    if t is list:
        return ["L", *(_enc(x) for x in v)]
    if t is dict:
        out = {}
        for k, x in v.items():
            if type(k) is not str:
                raise _NotPlain
            out[k] = _enc(x)
        return ["M", out]
    raise _NotPlain


def _dec(v: Any) -> Any:
    if type(v) is list:
        if v and v[0] == "L":
            return [_dec(x) for x in v[1:]]
        if len(v) == 2 and v[0] == "M" and type(v[1]) is dict:
            return {k: _dec(x) for k, x in v[1].items()}
        raise ValueError("not a cache entry")
    return v


def _enc_pos(table: _Positions) -> list:
    out = []
    for path, (line, col) in table.items():
        if any(type(p) not in (str, int) for p in path):
            raise _NotPlain
        out.append([list(path), line, col])
    return out


def _dec_pos(rows: list) -> _Positions:
    out: _Positions = {tuple(path): (line, col) for path, line, col in rows}   # TypeError: not an entry
    # Types checked in bulk (a per-row check was most of a cache hit's time).
    if not ({type(x) for pos in out.values() for x in pos} <= {int}
            and {type(p) for path in out for p in path} <= {str, int}):
        raise ValueError("not a cache entry")
    return out


def get(text: str) -> tuple[Any, _Positions, _Positions] | None:
    """(data, value positions, key positions) stored for ``text``, or None (a miss)."""
    d = cache_dir()
    if d is None:
        return None
    try:
        entry = json.loads((d / f"{_key(text)}.json").read_text(encoding="utf-8"))
        if type(entry) is not dict or entry.get("format") != FORMAT:
            return None
        return _dec(entry["data"]), _dec_pos(entry["values"]), _dec_pos(entry["keys"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def put(text: str, data: Any, values: _Positions, keys: _Positions) -> None:
    """Store a cleanly parsed document of ``text``; silently nothing if it is not plain data
    or the cache cannot be written."""
    d = cache_dir()
    if d is None:
        return
    try:
        body = json.dumps({"format": FORMAT, "data": _enc(data), "values": _enc_pos(values), "keys": _enc_pos(keys)},
                          separators=(",", ":"))
    except (_NotPlain, ValueError, TypeError, RecursionError):
        return
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
            os.replace(tmp, d / f"{_key(text)}.json")   # atomic: a reader sees all of it or nothing
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        _trim(d)
    except OSError:
        return


def _trim(d: Path) -> None:
    """Keep at most MAX_ENTRIES entries: drop the oldest half beyond it (a sweep writing a config
    per parameter set must not fill the disk)."""
    entries = [e for e in os.scandir(d) if e.name.endswith(".json")]
    if len(entries) <= MAX_ENTRIES:
        return
    entries.sort(key=lambda e: e.stat().st_mtime)
    for e in entries[: len(entries) - MAX_ENTRIES // 2]:
        try:
            os.unlink(e.path)
        except OSError:
            pass
