"""Checkpoints are data (issue 11 part 1): an engine's state round-trips through JSON exactly and
restores into a fresh engine; a pickle, garbage, the wrong shape or version are refused with a
message naming what is wrong, and nothing in them ever runs."""
from __future__ import annotations

import json
import math
import pickle
import sqlite3
from pathlib import Path

import pytest

from trimtab.engine import checkpoint as C
from trimtab.engine import recovery as R
from trimtab.engine.backtest import run_backtest
from trimtab.engine.journal import ledger_categories, quote
from trimtab.engine.kernel import Engine
from trimtab.errors import TrimtabError

START, END = "2024-07-28", "2024-08-08"


class Payload:
    """A pickle whose loading creates ``path``: what a crafted journal would smuggle in."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _engine(flagship, market, run_dir: Path, ticks: int, resume: bool = False) -> Engine:
    window = market.slice(pd_utc(START), pd_utc(END))
    e = Engine(flagship, window, run_dir, resume=resume)
    e.journal.flush_every = 10**9
    for i in range(ticks):
        e.step(i)
    return e


def pd_utc(t: str):
    from trimtab.timeutil import utc

    return utc(t)


@pytest.fixture(scope="module")
def stepped(flagship, market, tmp_path_factory):
    """An engine stepped into the first plan, checkpointed at tick 0 (deposits in transit)
    and at tick 30 in a second directory, with the state of each."""
    d = tmp_path_factory.mktemp("cp")
    out = {}
    for ticks in (1, 31):
        e = _engine(flagship, market, d / f"run{ticks}", ticks)
        R.start_marker(e.run_dir, "journal.sqlite")
        R.commit(e, ticks - 1)
        out[ticks] = (e, e.state())
    return out


def test_state_round_trips_exactly_and_restores_into_a_fresh_engine(stepped, flagship, market):
    e, st = stepped[1]
    assert st["executor"]["plan"] is not None and st["executor"]["transits"], "tick 0 leaves a plan in flight"
    blob = C.encode("engine", st)
    assert blob.startswith(b'{"format":"trimtab-checkpoint","version":1,"kind":"engine"')
    back = C.decode(blob, "engine", e.run_dir, 0)
    assert back == json.loads(json.dumps(st))  # every float exactly (tuples come back as lists)
    tick, loaded = R.load_engine(e.run_dir)
    assert tick == 0 and loaded == back
    fresh = Engine(flagship, market.slice(pd_utc(START), pd_utc(END)), e.run_dir, resume=True)
    R.restore(fresh, tick, loaded)
    assert fresh.state() == st
    assert fresh.executor.plan == e.executor.plan and fresh.executor.plan.id == st["executor"]["plan"]["id"]
    assert fresh.executor.transits == e.executor.transits


def test_a_restored_engine_ends_where_an_uninterrupted_run_ends(stepped, flagship, market, tmp_path):
    e, st = stepped[31]
    run = _copy_run(e.run_dir, tmp_path / "resumed")  # the fixture's journal stays at tick 30
    tick, loaded = R.load_engine(run)
    assert tick == 30
    fresh = Engine(flagship, market.slice(pd_utc(START), pd_utc(END)), run, resume=True)
    R.restore(fresh, tick, loaded)
    for i in range(fresh.next_tick, fresh.view.n):
        fresh.step(i)
    resumed = fresh.finish().summary
    whole = run_backtest(flagship, start=START, end=END, out=tmp_path, run_id="whole", data=market).summary
    assert resumed["final_equity"] == whole["final_equity"]
    assert resumed["final_positions"] == whole["final_positions"]
    assert resumed["plans"] == whole["plans"] and resumed["transitions"] == whole["transitions"]


def test_a_pickle_is_refused_and_never_loaded(tmp_path):
    marker = tmp_path / "pwned"
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(control)))  # the payload is live: loading it creates the file
    assert control.exists()
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        blob = pickle.dumps({"state": Payload(marker)}, protocol=protocol)
        with pytest.raises(C.CheckpointError) as e:
            C.decode(blob, "engine", tmp_path / "run", 7)
        msg = str(e.value)
        assert msg.startswith(f"{tmp_path / 'run'}: checkpoint at tick 7: not a trimtab checkpoint")
        assert ("Python pickle" in msg) == (protocol >= 2)  # older protocols are simply not JSON
        assert not marker.exists()


@pytest.mark.parametrize("blob, message", [
    (b"", "not a trimtab checkpoint (not JSON: Expecting value)"),
    (b"\xff\xfe\x00garbage", "not a trimtab checkpoint (not UTF-8 text)"),
    (b"{\"format\": \"trimtab-checkpoint\", \"version\": 1,", "not a trimtab checkpoint (not JSON:"),
    (b"[1, 2, 3]", "not a trimtab checkpoint (no 'format': 'trimtab-checkpoint' header)"),
    (b'{"format": "other", "version": 1, "kind": "engine", "state": {}}', "no 'format': 'trimtab-checkpoint' header"),
    (b'{"format": "trimtab-checkpoint", "version": 7, "kind": "engine", "state": {}}', "version 7, this trimtab reads version 1"),
    (b'{"format": "trimtab-checkpoint", "version": "1", "kind": "engine", "state": {}}', "version '1', this trimtab reads version 1"),
    (b'{"format": "trimtab-checkpoint", "version": "' + b"9" * 500 + b'", "kind": "engine", "state": {}}',
     "version '" + "9" * 36 + "..., this trimtab reads version 1"),
    (b'{"format": "trimtab-checkpoint", "version": 1, "kind": "portfolio", "state": {}}',
     "kind 'portfolio', expected 'engine'"),
    (b'{"format": "trimtab-checkpoint", "version": 1, "kind": "engine", "state": {}, "code": "x"}', "unexpected header fields ['code']"),
    (b'{"format": "trimtab-checkpoint", "version": 1, "kind": "engine", "state": []}', "field state: Input should be a valid dictionary"),
    (b"[" * 100000 + b"]" * 100000, "not a trimtab checkpoint (not JSON: nested more than 64 levels deep)"),
])
def test_garbage_and_wrong_headers_are_refused_with_their_reason(blob, message, tmp_path):
    with pytest.raises(C.CheckpointError) as e:
        C.decode(blob, "engine", tmp_path, 3)
    assert message in str(e.value) and str(e.value).endswith("refusing to resume")
    assert isinstance(e.value, TrimtabError) and "\n" not in str(e.value)


def _mutate(st: dict, path: str, value) -> dict:
    st = json.loads(json.dumps(st))
    *parents, last = path.split(".")
    d = st
    for p in parents:
        d = d[int(p)] if isinstance(d, list) else d[p]
    if value is KeyError:
        del d[last]
    elif isinstance(d, list):
        d[int(last)] = value
    else:
        d[last] = value
    return st


@pytest.mark.parametrize("path, value, message", [
    ("next_tick", "1", "field next_tick: Input should be a valid integer"),
    ("next_tick", 1.0, "field next_tick: Input should be a valid integer"),
    ("book.bal.wallet:BaseToken:USDT", "100", "field book.bal.wallet:BaseToken:USDT: Input should be a valid number"),
    ("book.bal.wallet:BaseToken:USDT", math.nan, "field book.bal.wallet:BaseToken:USDT: Input should be a finite number"),
    ("attr.max_error", math.inf, "field attr.max_error: Input should be a finite number"),
    ("executor.plan.steps.0.instructions.0.amount", None, "field executor.plan.steps.0.instructions.0.amount: Input should be a valid number"),
    ("executor.plan.steps.0.bundle", "yes", "field executor.plan.steps.0.bundle: Input should be a valid boolean"),
    ("executor.status", {"s1": "exploded"}, "field executor.status.s1: Input should be 'pending', 'in_transit', 'done', 'failed' or 'cancelled'"),
    ("machine", KeyError, "field machine: Field required"),
    ("machine.code", "__import__('os')", "field machine.code: Extra inputs are not permitted"),
    ("pricing.stale_marks", {"k": [1, 2, 3]}, "field pricing.stale_marks.k: List should have at most 2 items"),
])
def test_a_field_of_the_wrong_shape_is_named(stepped, path, value, message, tmp_path):
    _, st = stepped[1]
    with pytest.raises(C.CheckpointError) as e:
        C.decode(C.encode("engine", _mutate(st, path, value)), "engine", tmp_path, 0)
    assert message in str(e.value), str(e.value)


def test_nan_and_inf_only_where_the_state_holds_them(stepped, tmp_path):
    _, st = stepped[1]
    # A "withdraw all" flow is -inf; a NaN elsewhere in the same state is still refused.
    ok = _mutate(st, "cflows.flows", [{"time": "2024-08-01T00:00:00+00:00", "amount": -math.inf}])
    assert C.decode(C.encode("engine", ok), "engine", tmp_path, 0)["cflows"]["flows"][0]["amount"] == -math.inf
    with pytest.raises(C.CheckpointError, match="field cflows.units: Input should be a finite number"):
        C.decode(C.encode("engine", _mutate(ok, "cflows.units", math.nan)), "engine", tmp_path, 0)


@pytest.mark.parametrize("path, value, message", [
    ("executor.plan.steps.0.instructions.0.amount", 123.0, "does not match its content"),
    ("machine.state", "nirvana", "machine has no state 'nirvana'"),
    ("next_tick", 10**6, "next_tick 1000000 is outside the run's"),
    ("cflows.flows", [{"time": "not a time", "amount": 5.0}], "does not fit this run"),
    ("book.bal.wallet:BaseToken:USDT", 1e9, "holds positions that are not the sum of their fills (wallet:BaseToken:USDT: position"),
])
def test_a_well_formed_state_that_does_not_fit_the_run_is_refused(stepped, flagship, market, path, value, message, tmp_path):
    e, st = stepped[1]
    fresh = Engine(flagship, market.slice(pd_utc(START), pd_utc(END)), e.run_dir, resume=True)
    bad = C.decode(C.encode("engine", _mutate(st, path, value)), "engine", e.run_dir, 0)
    with pytest.raises(C.CheckpointError) as err:
        R.restore(fresh, 0, bad)
    assert message in str(err.value) and str(err.value).startswith(f"{e.run_dir}: checkpoint at tick 0")


# --------------------------------------------------------------------------- the journal's checks
def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _sql(path: Path, *stmts):
    db = sqlite3.connect(path)
    with db:
        for s, args in stmts:
            db.execute(s, args)
    db.close()


def test_checkpoint_disagreeing_with_the_journal_rows_is_refused(stepped, tmp_path):
    e, _ = stepped[31]
    e.journal.flush()
    cat = quote(ledger_categories(e.journal.db)[0])  # the wide ledger: one column per category
    cases = {
        "fills": ("DELETE FROM fills WHERE fill_id = (SELECT max(fill_id) FROM fills)", (), "the state's last fill is"),
        "series": ("DELETE FROM series WHERE tick = 12", (), "series holds 30 ticks (0..30), not 0..30"),
        "metrics": ("DELETE FROM metrics WHERE tick = 30", (), "metrics holds 30 ticks (0..29), not 0..30"),
        "ledger": (f"UPDATE ledger SET {cat} = coalesce({cat}, 0) + 5 WHERE tick = (SELECT min(tick) FROM ledger)", (), "the ledger sums to"),
        "legs": ("UPDATE fills SET legs = ? WHERE fill_id = 2", ('[["wallet:BaseToken:USDT", 1.0, 1.0]]',), "the fills' legs on"),
        "equity": ("UPDATE series SET equity = equity + 1000 WHERE tick = 30", (), "the change in equity is"),
        "text": ("UPDATE series SET nav = 'x' WHERE tick = 5", (), "a series row holds a value that is not a number"),
        "deep": ("UPDATE fills SET legs = ? WHERE fill_id = 1", ("[" * 5000 + "]" * 5000,), "a fill's legs are not [key, delta, amount]"),
    }
    for name, (stmt, args, message) in cases.items():
        run = _copy_run(e.run_dir, tmp_path / name)
        _sql(run / "journal.sqlite", (stmt, args))
        with pytest.raises(C.CheckpointError) as err:
            R.load_engine(run)
        assert message in str(err.value), (name, str(err.value))
        assert str(err.value).startswith(f"{run}: checkpoint at tick 30 does not match the journal")


def test_the_marker_catches_lost_ticks_and_a_swapped_checkpoint(stepped, tmp_path):
    e, st = stepped[31]
    run = _copy_run(e.run_dir, tmp_path / "older")
    R.write_marker(run, "journal.sqlite", 45, b"x")  # as if ticks 31..45 had been committed and lost
    with pytest.raises(C.CheckpointError, match="lost committed ticks: it ends at checkpoint tick 30, but tick 45 was committed"):
        R.load_engine(run)
    run = _copy_run(e.run_dir, tmp_path / "swapped")
    other = C.encode("engine", _mutate(st, "halted", True))
    _sql(run / "journal.sqlite", ("UPDATE checkpoints SET state = ?", (other,)))
    with pytest.raises(C.CheckpointError, match="the checkpoint at tick 30 is not the one committed"):
        R.load_engine(run)
    run = _copy_run(e.run_dir, tmp_path / "nomarker")
    (run / R.MARKER).unlink()
    with pytest.raises(C.CheckpointError, match="checkpoint.json is missing"):
        R.load_engine(run)
    (run / R.MARKER).write_text("garbage")
    with pytest.raises(C.CheckpointError, match="is not a trimtab checkpoint marker"):
        R.load_engine(run)
    # A marker one tick behind the journal: the process died between the commit and the marker.
    run = _copy_run(e.run_dir, tmp_path / "behind")
    R.write_marker(run, "journal.sqlite", 29, b"whatever")
    assert R.load_engine(run)[0] == 30


def test_a_damaged_or_foreign_database_is_refused(tmp_path):
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "journal.sqlite").write_text("not a database at all\n" * 50)
    with pytest.raises(C.CheckpointError, match=r"journal.sqlite is not a readable trimtab journal \(file is not a database\)"):
        R.load_engine(tmp_path / "text")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "journal.sqlite").write_bytes(b"")
    with pytest.raises(C.CheckpointError, match=r"is not a trimtab journal \(no meta, checkpoints, series, metrics, fills, ledger table\)"):
        R.load_engine(tmp_path / "empty")
    with pytest.raises(C.CheckpointError, match="no journal there"):
        R.load_engine(tmp_path / "nothing")


def test_no_module_of_trimtab_can_load_pickled_or_marshalled_code():
    """No import of pickle (or its relatives) anywhere in src/: run state is read as data only."""
    import ast

    src = Path(__file__).resolve().parents[2] / "src" / "trimtab"
    banned = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "jsonpickle"}
    found = []
    for f in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{f.relative_to(src)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in banned]
    assert len(list(src.rglob("*.py"))) > 50 and found == []


def test_deep_nesting_is_refused_even_with_a_raised_recursion_limit(tmp_path):
    """web3 raises Python's recursion limit to 100000; the C JSON parser would then overflow the
    C stack on a hostile ``[[[[...`` (a segfault). The nesting is bounded before parsing."""
    import subprocess
    import sys

    code = (
        "import sys; sys.setrecursionlimit(100000)\n"
        "from trimtab.engine import checkpoint as C\n"
        "blob = b'[' * 400000 + b']' * 400000\n"
        "try:\n"
        "    C.decode(blob, 'engine', 'run', 1)\n"
        "except C.CheckpointError as e:\n"
        "    print(e)\n"
        "try:\n"
        "    C.loads('{\"a\":' * 100 + '1' + '}' * 100)\n"
        "except ValueError as e:\n"
        "    print(e)\n"
        "print(C.loads('{\"a\": \"[[[[[[\", \"b\": [[1]]}'))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-500:]
    assert p.stdout.splitlines() == [
        "run: checkpoint at tick 1: not a trimtab checkpoint (not JSON: nested more than 64 levels deep); refusing to resume",
        "nested more than 64 levels deep",
        "{'a': '[[[[[[', 'b': [[1]]}",
    ]
