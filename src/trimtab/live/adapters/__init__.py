"""Live venue adapters, one package per venue (the layout of nautilus_trader's adapters).

- :mod:`.binance`, :mod:`.bybit`, :mod:`.okx`: each venue's ``config`` (reads its facts),
  ``data`` (raw balance layout) and ``execution`` (order lookups and stops where the venue
  differs) modules, composed into the package's ``ADAPTER`` class.
- :mod:`.exchange` with :mod:`.exchange_transfers`, :mod:`.exchange_spot`,
  :mod:`.exchange_stops`: the shared ccxt logic every exchange adapter extends.
- :mod:`.registry`: the venue facts (the ``live:`` block of ``venues/<venue>.yaml``) and the
  adapter class a venue names; adding a venue is a ``live:`` block plus a package here.
- :mod:`.aave_v3`, :mod:`.etherfi`, :mod:`.lido`, :mod:`.wallet`, :mod:`.uniswap_v3`: each
  on-chain venue's ``ADAPTER`` (a :class:`~.chain_venue.ChainVenue`: what it builds and reads),
  from the ``kind: chain`` ``live:`` block of its venue file; :mod:`.staking` is the stake both
  staking venues share.
- :mod:`.chain` (with :mod:`.chain_venue`, :mod:`.bundle`, :mod:`.contracts`): the shared web3
  adapter every chain venue uses (connection, approvals, signing, sending, bundles);
  :mod:`.base`: shared error/result shapes; :mod:`.recorded`: recorded-response transports
  for tests and replays.
"""
