import pytest

from trimtab.keys import InstrumentKeyError, parse_key


def test_parses_the_three_parts():
    k = parse_key("aave_v3:aToken:aweETH")
    assert (k.venue, k.position_type, k.symbol) == ("aave_v3", "aToken", "aweETH")
    assert str(k) == "aave_v3:aToken:aweETH"


@pytest.mark.parametrize("text, fragment", [
    ("okx:Perp", "2 part(s)"),
    ("binance:Perp:ETH:USDT", "4 part(s)"),
    ("binance::ETHUSDT", "invalid position_type"),
    ("binance:Prep:ETHUSDT", "did you mean 'Perp'"),
    ("bin ance:Perp:ETHUSDT", "invalid venue"),
])
def test_malformed_keys_say_what_is_wrong(text, fragment):
    with pytest.raises(InstrumentKeyError) as e:
        parse_key(text)
    assert fragment in str(e.value)
    assert "venue:position_type:symbol" in str(e.value) or "known:" in str(e.value)
