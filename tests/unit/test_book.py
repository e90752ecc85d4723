"""Perp accounting in the book: entry averaging, realised P&L, and fills summing to positions."""
import pytest

from trimtab.accounting.book import Book, Fill, Leg

PERP = "binance:Perp:ETHUSDT"
MARGIN = "binance:Margin:USDT"


def trade(book, size, price):
    f = Fill(0, "binance", "trade", "trading_fees", [Leg(PERP, size, size)])
    book.apply(f, price)
    return f


def test_short_then_buy_back_realises_into_margin():
    b = Book()
    trade(b, -2.0, 3000.0)
    trade(b, -2.0, 3200.0)
    assert b.qty(PERP) == -4.0
    assert b.entry[PERP] == pytest.approx(3100.0)
    f = trade(b, 1.0, 3000.0)  # closing 1 of a short entered at 3100 earns 100
    assert b.qty(MARGIN) == pytest.approx(100.0)
    assert f.legs[-1].key == MARGIN and f.legs[-1].delta == pytest.approx(100.0)
    assert b.entry[PERP] == pytest.approx(3100.0)
    trade(b, 5.0, 3300.0)  # closes 3 at a loss of 200 each, flips to +2 long at 3300
    assert b.qty(PERP) == pytest.approx(2.0)
    assert b.entry[PERP] == pytest.approx(3300.0)
    assert b.qty(MARGIN) == pytest.approx(100.0 - 600.0)
    assert b.check_fills() == []


def test_a_position_changed_outside_fills_is_caught():
    b = Book()
    trade(b, -1.0, 3000.0)
    b.bal[PERP] = -1.5
    assert b.check_fills() and PERP in b.check_fills()[0]


def test_snapshot_restore_undoes_everything():
    b = Book()
    trade(b, -1.0, 3000.0)
    snap = b.snapshot()
    trade(b, 3.0, 2000.0)
    b.restore(snap)
    assert b.qty(PERP) == -1.0 and b.entry[PERP] == 3000.0 and b.qty(MARGIN) == 0.0
    assert b.check_fills() == []
