"""``python -m trimtab.portfolio``: run a portfolio of strategies with a stop, and resume it.

    python -m trimtab.portfolio run CONFIG [--start T] [--end T] [--out DIR] [--run-id ID] [--stop-at TICK]
    python -m trimtab.portfolio resume RUN_DIR [--stop-at TICK]

``run --stop-at N`` processes ticks 0..N-1, checkpoints and exits (status 0) without a summary;
``resume`` continues from the last checkpoint (``trimtab run CONFIG --run-id ID --resume`` does
the same through the main command). Prints the summary JSON when the run finishes, else one
line ``stopped at tick N`` on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..engine.journal import jsonable
from ..errors import ConfigError, TrimtabError
from .runner import PortfolioRunner


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trimtab.portfolio")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("config")
    r.add_argument("--start")
    r.add_argument("--end")
    r.add_argument("--out", default="runs")
    r.add_argument("--run-id")
    r.add_argument("--stop-at", type=int)
    s = sub.add_parser("resume")
    s.add_argument("run_dir")
    s.add_argument("--stop-at", type=int)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "run":
            runner = PortfolioRunner.start(a.config, a.out, a.run_id, a.start, a.end)
        else:
            runner = PortfolioRunner.resume(a.run_dir)
        result = runner.run(stop_at=a.stop_at)
    except ConfigError as e:
        sys.stderr.write(f"{e}\n")
        return 2
    except TrimtabError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    if result is None:
        sys.stderr.write(f"stopped at tick {runner.next_tick} (checkpointed in {runner.run_dir})\n")
        return 0
    sys.stdout.write(json.dumps(jsonable(result.summary), default=str) + "\n")
    return 0


if __name__ == "__main__":
    from ..cli.guard import redacted_streams
    from ..secrets import install_process_log_redaction

    install_process_log_redaction()
    with redacted_streams():  # what it prints is redacted of TRIMTAB_* secrets, as trimtab's own commands
        code = main()
    sys.exit(code)
