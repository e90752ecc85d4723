"""trimtab.runs: run-id rules, claiming a run directory, the lock and the owner record (real
files and real flock locks; the cross-process cases are in tests/integration/test_runs.py)."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from trimtab.runs import RunError, check_run_id, claim, claim_dir, holder, run_id_problem, safe_name


@pytest.mark.parametrize("bad, rule", [
    ("../x", "path separator"), ("/tmp/x", "absolute path"), ("a/b", "path separator"), ("a\\b", "path separator"),
    ("", "empty"), ("..", "'..'"), ("a..b", "'..'"), (".", "the --out folder itself"), (".hidden", "start with a letter or digit"),
    ("a b", "only letters, digits"), ("x" * 129, "129 characters"), ("a\x00b", "only letters, digits"),
])
def test_bad_run_ids_name_the_rule(bad, rule):
    assert rule in run_id_problem(bad)
    with pytest.raises(RunError, match=r"^--run-id .* is not a valid run id"):
        check_run_id(bad)


def test_generated_names_are_valid_run_ids():
    for name in ("../../etc", "a b/c", "...", "", "é", "pure_lending_usdt"):
        assert check_run_id(safe_name(name) + "-20240601-20240608-20261123T000000")
    assert safe_name("pure_lending_usdt") == "pure_lending_usdt"


def test_claim_locks_records_and_releases(tmp_path):
    c = claim(tmp_path, "r", command=["trimtab", "run"])
    rec = json.loads((tmp_path / "r" / "owner.json").read_text())
    assert rec["pid"] == os.getpid() and rec["command"] == ["trimtab", "run"] and rec["started"].endswith("Z")
    assert holder(tmp_path / "r") == rec
    with pytest.raises(RunError, match=f"run r is owned by pid {os.getpid()} \\(since {rec['started']}\\)"):
        claim(tmp_path, "r", resume=True)
    # Another process sees the lock too.
    probe = subprocess.run([sys.executable, "-c", "import sys; from trimtab.runs import holder; print(holder(sys.argv[1])['pid'])",
                            str(tmp_path / "r")], capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == str(os.getpid()), probe.stderr
    c.release()
    c.release()  # idempotent
    assert holder(tmp_path / "r") is None and not (tmp_path / "r" / "owner.json").exists()
    with claim(tmp_path, "r", resume=True) as again:
        assert again.held
    assert not again.held


def test_a_stale_owner_record_is_not_believed(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "run.lock").touch()
    (run / "owner.json").write_text(json.dumps({"pid": os.getpid(), "started": "2020-01-01T00:00:00Z"}))
    assert holder(run) is None  # the record names a live pid, but nobody holds the lock
    (run / "owner.json").write_text("garbage{")
    with claim_dir(run, resume=True) as c:
        assert holder(run)["pid"] == os.getpid() == c.record["pid"]


def test_resume_of_nothing_creates_nothing(tmp_path):
    with pytest.raises(RunError, match="no run at .* to resume"):
        claim(tmp_path / "out", "missing", resume=True)
    assert not (tmp_path / "out").exists()
    with pytest.raises(RunError, match="is needed to resume"):
        claim(tmp_path, None, resume=True)


def _journal(path, meta: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
    db.commit()
    db.close()


def test_existing_runs_are_never_replaced_unless_a_finished_backtest(tmp_path):
    _journal(tmp_path / "done" / "journal.sqlite", {"summary": {}})
    (tmp_path / "done" / "notes.txt").write_text("mine")
    _journal(tmp_path / "live" / "journal.sqlite", {"live": {}, "summary": {}})
    _journal(tmp_path / "half" / "journal.sqlite", {"window": {}})
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "journal.sqlite").write_bytes(b"not a database at all" * 100)
    keep = {d: (tmp_path / d / "journal.sqlite").read_bytes() for d in ("done", "live", "half", "junk")}
    for d in keep:
        with pytest.raises(RunError, match=f"run {d} already exists .* --resume .* --overwrite"):
            claim(tmp_path, d)
    for d, why in (("live", "it is a live run"), ("half", "it did not finish"), ("junk", "its journal cannot be read")):
        with pytest.raises(RunError, match=f"run {d} in .* is not replaced: {why}"):
            claim(tmp_path, d, overwrite=True)
        assert (tmp_path / d / "journal.sqlite").read_bytes() == keep[d]
        assert holder(tmp_path / d) is None  # a refused claim leaves no lock held
    with claim(tmp_path, "done", overwrite=True):
        assert not (tmp_path / "done" / "journal.sqlite").exists()
        assert (tmp_path / "done" / "notes.txt").read_text() == "mine"  # only the run's own files go
    # An empty directory (or one with only a stale lock) is free for a new run.
    (tmp_path / "empty").mkdir()
    with claim(tmp_path, "empty"):
        pass
