"""The ``trimtab`` console script ends its process at once after the command (cli/main.py ``main``):
the exit code, the output and the exit handlers are what Python's own exit gives (issue 14)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRIMTAB = Path(sys.executable).parent / "trimtab"

# The console script's own entry, with an exit handler that writes a file (what logging's
# handlers and weakref finalizers rely on), run as a real process.
SCRIPT = """
import atexit, sys
from pathlib import Path
marker = Path(sys.argv.pop())
atexit.register(lambda: marker.write_text("ran"))
from trimtab.cli.main import main
sys.argv = ["trimtab"] + sys.argv[1:]
main()
"""


def _main(args: list[str], marker: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, *args, str(marker)], cwd=ROOT, capture_output=True, text=True)


def test_exit_handlers_run_and_codes_are_kept(tmp_path):
    ok = _main(["schema"], tmp_path / "a")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)   # the whole output, flushed before the process ended
    assert (tmp_path / "a").read_text() == "ran"
    usage = _main(["run", "configs/pure_lending_usdt.yaml", "--journal", "thin"], tmp_path / "b")
    assert usage.returncode == 2 and "error: Invalid value for '--journal'" in usage.stderr
    assert (tmp_path / "b").read_text() == "ran"


def test_a_backtest_through_the_console_script_is_complete(tmp_path):
    p = subprocess.run([str(TRIMTAB), "run", "configs/pure_lending_usdt.yaml", "--json", "--out", str(tmp_path),
                        "--start", "2025-01-01", "--end", "2025-01-15", "--run-id", "r"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    run = tmp_path / "r"
    assert json.loads((run / "summary.json").read_text())["final_equity"] == summary["final_equity"]
    assert len((run / "equity.csv").read_text().splitlines()) == 14 * 24 + 1 + 1   # header + every tick
    import sqlite3
    with sqlite3.connect(run / "journal.sqlite") as db:
        assert json.loads(db.execute("SELECT value FROM meta WHERE key='summary'").fetchone()[0])["final_equity"] \
            == summary["final_equity"]
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
