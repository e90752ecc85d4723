"""`validate` refuses what a run would fail on (issue 16): the wallet instruments a run books to.

The venue-file gaps (a perp without cost_pair, mark_field or funding_field; an Aave position
without reserve; a CEX without its perp block, margin account or transit instrument) and a
malformed signal file are corpus cases (tests/cases/config/configs/venue_*_missing.yaml,
signal_file_malformed.yaml). The wallet is one file per project root, so its cases build a
project of their own here.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trimtab.config.load import load_strategy
from trimtab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).with_name("trimtab")


def _project(tmp_path: Path, drop: str) -> Path:
    """A copy of the shipped project whose venues/wallet.yaml lacks the instrument ``drop``."""
    for d in ("machines", "rules", "venues", "configs"):
        shutil.copytree(ROOT / d, tmp_path / d)
    wallet = tmp_path / "venues" / "wallet.yaml"
    lines = wallet.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if f'"{drop}"' not in ln]
    assert len(kept) == len(lines) - 1
    wallet.write_text("".join(kept))
    return tmp_path


def _issues(cfg: Path) -> list[str]:
    try:
        load_strategy(cfg)
    except ConfigError as e:
        return [str(i) for i in e.issues]
    return []


def test_a_wallet_without_the_share_class_token_is_refused_at_the_wallet(tmp_path):
    """Before: `validate` said ok and `run` died with KeyError 'wallet:BaseToken:USDT'."""
    root = _project(tmp_path, "wallet:BaseToken:USDT")
    cfg = root / "configs" / "pure_lending_usdt.yaml"
    out = subprocess.run([str(EXE), "validate", str(cfg)], capture_output=True, text=True, timeout=120, cwd=root)
    assert out.returncode == 1, out.stdout + out.stderr
    line = next(i + 1 for i, t in enumerate((root / "venues" / "wallet.yaml").read_text().splitlines()) if t.startswith("instruments:"))
    assert f"venues/wallet.yaml:{line}:1: instruments: the wallet has no instrument 'wallet:BaseToken:USDT'" in out.stdout, out.stdout
    assert '`- {key: "wallet:BaseToken:USDT", asset: USDT}`' in out.stdout   # the fix, spelled out
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize(("drop", "needs", "free"), [
    ("wallet:Transit:USDT", "eth_basis.yaml", "pure_lending_usdt.yaml"),        # CEX withdrawals land there
    ("wallet:Transit:ETH", "eth_staking_only.yaml", "eth_basis.yaml"),          # an unstake queue pays out there
])
def test_a_transit_instrument_is_required_only_by_configs_that_use_it(tmp_path, drop, needs, free):
    root = _project(tmp_path, drop)
    got = _issues(root / "configs" / needs)
    assert any(f"the wallet has no instrument {drop!r}" in g for g in got), got
    assert not _issues(root / "configs" / free)
