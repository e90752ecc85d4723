#!/usr/bin/env python
"""Build the bundled market data: ``python scripts/build_data.py --raw ../shared/data --out data``.

Thin wrapper around :func:`trimtab.data.build.main`, the same build as
``trimtab data build --raw DIR --out DIR`` (see that module for what is built); ``make data``
uses it.
"""

import sys
from pathlib import Path

try:
    import trimtab  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from trimtab.data.build import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
