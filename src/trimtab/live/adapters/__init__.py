"""Live venue adapters: exchanges through ccxt (:mod:`.exchange`), chain operations through
web3 (:mod:`.chain`), shared error/result shapes (:mod:`.base`) and recorded-response
transports for tests and replays (:mod:`.recorded`)."""
