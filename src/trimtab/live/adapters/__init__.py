"""Live venue adapters: exchanges through ccxt (:mod:`.exchange`; its transfers, spot orders
and resting stops in :mod:`.exchange_transfers`, :mod:`.exchange_spot`, :mod:`.exchange_stops`),
chain operations through web3 (:mod:`.chain`), shared error/result shapes (:mod:`.base`) and
recorded-response transports for tests and replays (:mod:`.recorded`)."""
