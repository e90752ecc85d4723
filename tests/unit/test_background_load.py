"""The bundle loaded beside the caller (trimtab.data.background), in a forked child or on a
thread, is the direct load's, data and errors; a child that dies or answers nonsense is set
aside for the direct load; no child is left behind; and `trimtab run` ends cleanly when the
config is refused while the bundle is still loading. Real child processes on the bundled data
(or a damaged copy of it); nothing is mocked, nothing here times anything."""
from __future__ import annotations

import json
import mmap
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from trimtab.data import background
from trimtab.data.background import BackgroundLoad
from trimtab.data.feed import DataError, load_market_data

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "data"


def _same(a, b) -> None:
    """Two MarketData hold the same clock, static data, catalog and series, arrays bit for bit
    (and ``b``'s writable, as a direct load's are)."""
    assert a.epoch.tobytes() == b.epoch.tobytes()
    assert a.static == b.static and a._bundle == b._bundle
    assert list(a._series) == list(b._series) and len(a._series) > 20
    for name, x in a._series.items():
        y = b._series[name]
        for f in ("name", "interval_h", "fill", "geometric", "meta"):
            assert getattr(x, f) == getattr(y, f) and type(getattr(x, f)) is type(getattr(y, f)), (name, f)
        assert list(x.values) == list(y.values) and (x.ts is None) == (y.ts is None), name
        pairs = [(x.avail, y.avail), *((x.values[c], y.values[c]) for c in x.values)]
        if x.ts is not None:
            pairs.append((x.ts, y.ts))
        qa, qb = a.quality()[name], b.quality()[name]  # the data checks: judged here, or sent made
        assert (qa.columns, qa.duplicates) == (qb.columns, qb.duplicates), name
        pairs += [(qa.code, qb.code), (qa.column, qb.column), (qa.ref, qb.ref), (qa.keep, qb.keep)]
        for u, v in pairs:
            assert u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes(), name
            assert v.flags.writeable, name


@pytest.mark.parametrize("fork", [True, False])
def test_the_background_load_is_what_the_direct_call_loads(fork):
    direct = load_market_data(BUNDLE)
    single = threading.active_count() == 1
    loading = BackgroundLoad(BUNDLE, fork=fork)
    assert loading.how == ("process" if fork and single else "thread")
    got = loading.result()
    assert loading.result() is got  # collected twice: the same object
    _same(direct, got)
    if loading.how == "process":  # a view of the child's pages, written copy-on-write
        s = next(iter(got._series.values()))
        col = next(iter(s.values))
        s.values[col][0] = -1.0
        assert s.values[col][0] == -1.0 and direct._series[s.name].values[col][0] != -1.0


# The forked path is exercised in fresh interpreters: a loader is only forked from a process of
# one thread (a `trimtab` command's), and a test process may run others by then.
_DIGEST = """
import hashlib, json, os, signal, sys
from pathlib import Path
from trimtab.data.background import BackgroundLoad
from trimtab.data.feed import load_market_data
def digest(d):
    h = hashlib.sha256(d.epoch.tobytes())
    h.update(json.dumps([d.static, d._bundle], sort_keys=True).encode())
    for n, s in d._series.items():
        h.update(n.encode()); h.update(s.avail.tobytes())
        for c, v in s.values.items():
            h.update(c.encode()); h.update(v.tobytes())
        h.update(b"" if s.ts is None else s.ts.tobytes())
        q = d.quality()[n]
        for a in (q.code, q.column, q.ref, q.keep):
            h.update(a.dtype.str.encode()); h.update(a.tobytes())
        h.update(repr((q.columns, q.duplicates)).encode())
    return h.hexdigest()
def children():
    return {int(p) for t in Path(f"/proc/{os.getpid()}/task").iterdir() for p in (t / "children").read_text().split()}
"""


def _fresh(code: str, *args: str) -> list[str]:
    """Run ``code`` (after :data:`_DIGEST`; ``args`` in ``sys.argv[1:]``) in a new interpreter;
    its stdout's lines."""
    p = subprocess.run([sys.executable, "-c", _DIGEST + code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def test_a_forked_load_raises_the_direct_calls_errors(tmp_path):
    """A missing bundle and a damaged series file: the child's DataError, raised by the parent
    with the direct call's text."""
    bundle = tmp_path / "data"
    shutil.copytree(BUNDLE, bundle)
    victim = sorted((bundle / "series").glob("*.parquet"))[0]
    victim.write_bytes(b"PAR1 not a parquet file PAR1")
    got = subprocess.run([sys.executable, "-c", _DIGEST + """
from trimtab.data.feed import DataError
for d in sys.argv[1:]:
    texts = []
    for load in (lambda: BackgroundLoad(Path(d)), None):
        try:
            b = load() if load else None
            assert b is None or b.how == "process"
            b.result() if b else load_market_data(Path(d))
        except DataError as e:
            texts.append(str(e))
    print(json.dumps(texts))
""", str(tmp_path / "nothing"), str(bundle)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    missing, damaged = (json.loads(line) for line in got.stdout.splitlines())
    assert len(missing) == 2 and missing[0] == missing[1] and "manifest.json missing" in missing[0]
    assert len(damaged) == 2 and damaged[0] == damaged[1] and victim.name in damaged[0]


def test_a_fresh_process_forks_its_loader_and_reaps_it():
    """In a process of one thread, the load runs in a forked child, the bundle is the direct
    load's (a digest of every array, the catalog and the static data), and the child is reaped."""
    how, got, direct, left = _fresh("""
loading = BackgroundLoad()
child = loading._child.pid if loading._child else None
print(loading.how, digest(loading.result()), digest(load_market_data()), child in children())
""")
    assert how == "process" and got == direct and left == "False"


def test_a_child_that_dies_is_set_aside_for_the_direct_load():
    how, got, direct, left = _fresh("""
loading = BackgroundLoad()
assert loading.how == "process"
os.kill(loading._child.pid, signal.SIGKILL)
pid = loading._child.pid
got = loading.result()
print(loading.how, digest(got), digest(load_market_data()), pid in children())
""")
    assert how == "in-process" and got == direct and left == "False"


def test_a_load_no_one_collects_leaves_no_child():
    """Dropped, closed or left at exit, an unanswered child is killed and reaped."""
    closed, dropped = _fresh("""
loading = BackgroundLoad()
pid = loading._child.pid
loading.close(); loading.close()  # idempotent
print(pid in children(), end=" ")
loading = BackgroundLoad()
pid = loading._child.pid
del loading
print(pid in children())
""")
    assert closed == "False" and dropped == "False"


def _mapped(body: bytes) -> mmap.mmap:
    fd = os.memfd_create("test-answer")
    try:
        os.write(fd, body)
        return mmap.mmap(fd, len(body), flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)


def test_an_answer_out_of_bounds_or_of_the_wrong_type_is_refused():
    """The parent reads the child's answer as untrusted data: an array placed outside the
    arrays' part, misaligned, of another dtype or length, a header that is not the answer's
    shape, is no answer (None: the direct load follows), never a wrong array or a crash."""
    import msgspec

    array, quality, series, bundle, _ = background._wire()
    data = np.arange(4, dtype="<i8").tobytes() + np.ones(4, dtype="<f8").tobytes()  # 64 bytes of arrays
    data += np.zeros(8, dtype="|i1").tobytes() + np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype="|b1").tobytes()  # +16
    catalog = {"s": {"name": "s", "columns": ["v"], "interval_h": 1.0, "fill": "ffill"}}
    checks = quality(array("|i1", 4, 64), array("|i1", 4, 64), array("<f8", 4, 32), array("|b1", 4, 72), [])

    def answer(avail, v, q=checks):
        return data + msgspec.msgpack.encode(bundle(catalog, [series("s", avail, {"v": v}, None, q)]))

    good = background._decode(_mapped(answer(array("<i8", 4, 0), array("<f8", 4, 32))), 80)
    assert good is not None and good[1]["s"].avail.tolist() == [0, 1, 2, 3]
    assert good[1]["s"].values["v"].tolist() == [1.0] * 4
    assert good[2]["s"].keep.tolist() == [True] * 4 and good[2]["s"].columns == ("v",)
    assert background._decode(_mapped(answer(array("<i8", 4, 0), array("<f8", 4, 32))), 64) is None  # keep past the end
    assert background._decode(_mapped(answer(array("<i8", 4, 0), array("<f8", 4, 32),
                                             quality(array("|i1", 4, 64), array("|i1", 4, 64), array("<f8", 4, 32),
                                                     array("|i1", 4, 72), []))), 80) is None  # keep not bool
    for avail, v in [(array("<i8", 4, 0), array("<f8", 4, 56)),    # past the arrays' part
                     (array("<i8", 4, 0), array("<f8", 4, 28)),    # misaligned
                     (array("<i8", 4, 0), array("<f8", 3, 32)),    # another length than avail
                     (array("<i8", 4, 0), array("<f4", 4, 32)),    # another dtype
                     (array("<i8", -1, 0), array("<f8", 4, 32)),   # a negative length
                     (array("<i8", 4, -8), array("<f8", 4, 32))]:  # a negative offset
        assert background._decode(_mapped(answer(avail, v)), 80) is None, (avail, v)
    assert background._decode(_mapped(data + b"\x93not msgpack"), 80) is None
    assert background._decode(_mapped(data + msgspec.msgpack.encode({"catalog": 1})), 80) is None
    other = data + msgspec.msgpack.encode(bundle({"t": catalog["s"]}, [series("s", array("<i8", 4, 0), {"v": array("<f8", 4, 32)}, None, checks)]))
    assert background._decode(_mapped(other), 80) is None  # series not the catalog's


def test_a_missing_bundle_raises_the_direct_calls_error(tmp_path):
    with pytest.raises(DataError) as direct:
        load_market_data(tmp_path)
    loading = BackgroundLoad(tmp_path)
    for _ in range(2):  # raised again at every call
        with pytest.raises(DataError) as info:
            loading.result()
        assert str(info.value) == str(direct.value)
        assert "manifest.json missing" in str(info.value)


def test_a_damaged_series_file_raises_the_direct_calls_error(tmp_path):
    bundle = tmp_path / "data"
    shutil.copytree(BUNDLE, bundle)
    victim = sorted((bundle / "series").glob("*.parquet"))[0]
    victim.write_bytes(b"PAR1 not a parquet file PAR1")
    with pytest.raises(DataError) as direct:
        load_market_data(bundle)
    with pytest.raises(DataError) as info:
        BackgroundLoad(bundle).result()
    assert str(info.value) == str(direct.value)
    assert victim.name in str(info.value) and "not a readable series file" in str(info.value)


def test_run_refused_for_its_config_while_the_bundle_loads_exits_cleanly(tmp_path):
    """`trimtab run` starts the bundle's load before it reads the config: a config error still
    exits 2 with its issues and no traceback, the load finishing on its own."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nshare_class: USDT\nmachine: [\n", encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "trimtab.cli.main", "run", str(bad), "--out", str(tmp_path / "runs")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "nothing was run" in p.stderr
    assert "Traceback" not in p.stderr and "Exception in thread" not in p.stderr
    assert not (tmp_path / "runs").exists()


def test_the_child_does_one_job_after_the_load(tmp_path):
    """The job a caller gives at construction runs in the child on the arrays handed over (the
    same bytes), after ``prepare``; a job that raises is reported as not done; either way, and
    with no job handed over at all, the child is reaped (it ends at the job pipe's end)."""
    out = _fresh("""
import numpy as np
def job(spec, arrays):
    if spec.get("fail"):
        raise RuntimeError("failed on purpose")
    Path(spec["out"]).write_text(json.dumps({k: [a.dtype.str, a.tobytes().hex()] for k, a in arrays.items()}))
def prepare():
    Path(sys.argv[1]).write_text("prepared")
arrays = {"i": np.arange(3, dtype="<i8"), "f": np.array([0.1, float("nan"), -0.0]), "b": np.array([True, False]),
          "c": np.array([1, -2, 3], dtype=np.int8)}
for fail in (False, True):
    loading = BackgroundLoad(job=job, prepare=prepare)
    assert loading.how == "process"
    loading.result()
    pid = loading._helper.pid
    pending = loading.submit({"out": sys.argv[2], "fail": fail}, arrays)
    print(pending.wait(), pending.wait(), pid in children(), loading.submit({}, arrays) is None)
got = json.loads(Path(sys.argv[2]).read_text())
print(got == {k: [a.dtype.str, a.tobytes().hex()] for k, a in arrays.items()})
loading = BackgroundLoad(job=job)  # answered, never given its job: ends when closed
loading.result()
pid = loading._helper.pid
loading.close()
print(pid in children(), Path(sys.argv[1]).read_text())
""", str(tmp_path / "prepared"), str(tmp_path / "job.json"))
    assert out[:4] == ["True", "True", "False", "True"]      # done, reaped, one job only
    assert out[4:8] == ["False", "False", "False", "True"]   # failed: not done, reaped
    assert out[8] == "True"                                  # the arrays' bytes, as handed over
    assert out[9:] == ["False", "prepared"]
