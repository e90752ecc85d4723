"""Ethereum mainnet addresses, token decimals and the ABI fragments trimtab calls.

Every address and signature below was checked against a public source (cited per entry).
ABI fragments hold only the functions trimtab encodes; web3 encodes and decodes calldata from
them (``Web3().eth.contract(address, abi).encode_abi(name, args)``).

Amounts on chain are integers in the token's base units: ``amount x 10**decimals``
(USDT 6 decimals, every other token here 18).
"""
from __future__ import annotations

CHAIN_ID = 1  # Ethereum mainnet
ZERO = "0x0000000000000000000000000000000000000000"
MAX_UINT = 2**256 - 1  # "use the whole balance" in Instadapp connectors (uint256(-1))

# -- addresses -------------------------------------------------------------------------
# The contracts each venue's adapter calls (Aave v3 Pool, EtherFi LiquidityPool, Lido stETH,
# the LST wrappers) are venue facts: the ``live:`` block of venues/<venue>.yaml, sources there.
#: Morpho Blue singleton (flashLoan(token, assets, data), fee-free). Morpho Blue docs; the
#: catalog's flash source. Not called directly: see ``bundle.py`` for why.
MORPHO_BLUE = "0xBBBBBbbBBb9cC5e90e3b3Af64bdAF62C37EEFFCb"

#: ERC-20 tokens: symbol -> (address, decimals).
#: WETH, weETH, wstETH, USDT: the brief's list, cross-checked with kyberswap-dex-lib
#: (etherfi constants), 0xVanfer/ethaddr (etherfi.go) and virgoproject/tokens (wstETH, 18).
#: eETH: defisaver MainnetEtherFiAddresses.sol EETH_ADDR. USDT has 6 decimals (Tether).
TOKENS: dict[str, tuple[str, int]] = {
    "WETH": ("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", 18),
    "weETH": ("0xCd5fE23C85820F7B72D0926FC9b05b43E359b7ee", 18),
    "wstETH": ("0x7f39C581F595B53c5cb19bD0b3f8dA6c935E2Ca0", 18),
    "USDT": ("0xdAC17F958D2ee523a2206206994597C13D831ec7", 6),
    "eETH": ("0x35fA164735182de50811E8e2E824cFb9B6118ac2", 18),
    "stETH": ("0xae7ab96520DE3A18E5e111B5EaAb095312D7fE84", 18),  # Lido stETH (docs.lido.fi, "Lido tokens integration guide")
    # Swap-only tokens (DEX swaps outside bundles): WBTC (8 decimals) holds the wallet's BTC
    # on chain (venues/uniswap_v3_router.yaml); EIGEN and ETHFI are reward tokens sold as dust.
    # Addresses as listed by public token registries (e.g. Veda boring-vault ChainValues.sol
    # "ETHFI"; Etherscan token pages); all three checked with more than one public listing.
    "WBTC": ("0x2260FAC5E5542a773Aa44fBCfeDf7C193bc2C599", 8),
    "EIGEN": ("0xec53bF9167f50cDEB3Ae105f56099aaaB9061F83", 18),
    "ETHFI": ("0xFe0c30065B384F05761f15d0CC899D4F9F9Cc0eB", 18),
}
#: trimtab asset -> the ERC-20 that carries it on chain, for swaps and wallet reads (native ETH
#: trades as WETH through the router; the wallet's BTC is WBTC).
CHAIN_SYMBOL = {"ETH": "WETH", "BTC": "WBTC"}

#: SwapRouter02 ``Constants.ADDRESS_THIS`` (Uniswap swap-router-contracts
#: contracts/libraries/Constants.sol): recipient "the router itself", so a later
#: ``unwrapWETH9`` in the same multicall can pay out native ETH.
ROUTER_ADDRESS_THIS = "0x0000000000000000000000000000000000000002"
ETH_DECIMALS = 18


def _fn(name: str, inputs: list[tuple[str, str]], payable: bool = False, outputs: list[tuple[str, str]] = (),
        view: bool = False) -> dict:
    mut = "view" if view else ("payable" if payable else "nonpayable")
    return {"type": "function", "name": name, "stateMutability": mut,
            "inputs": [{"name": n, "type": t} for t, n in inputs],
            "outputs": [{"name": n, "type": t} for t, n in outputs]}


# -- ABI fragments ---------------------------------------------------------------------
#: Aave v3 IPool (aave.com/docs/aave-v3/smart-contracts/pool). The call arguments trimtab fixes
#: (interestRateMode, referralCode) are in venues/aave_v3.yaml ``live.call_args``.
AAVE_POOL_ABI = [
    _fn("supply", [("address", "asset"), ("uint256", "amount"), ("address", "onBehalfOf"), ("uint16", "referralCode")]),
    _fn("withdraw", [("address", "asset"), ("uint256", "amount"), ("address", "to")], outputs=[("uint256", "")]),
    _fn("borrow", [("address", "asset"), ("uint256", "amount"), ("uint256", "interestRateMode"),
                   ("uint16", "referralCode"), ("address", "onBehalfOf")]),
    _fn("repay", [("address", "asset"), ("uint256", "amount"), ("uint256", "interestRateMode"), ("address", "onBehalfOf")],
        outputs=[("uint256", "")]),
]
#: Aave interest rate mode 2 = variable, as the Instadapp AAVE-V3-A connector's ``rateMode``
#: in bundles (aave/v3/main.sol; stable borrowing is disabled on Ethereum).
VARIABLE_RATE = 2

#: ERC-20 (EIP-20).
ERC20_ABI = [
    _fn("approve", [("address", "spender"), ("uint256", "amount")], outputs=[("bool", "")]),
    _fn("allowance", [("address", "owner"), ("address", "spender")], outputs=[("uint256", "")], view=True),
    _fn("balanceOf", [("address", "account")], outputs=[("uint256", "")], view=True),
    _fn("transfer", [("address", "to"), ("uint256", "amount")], outputs=[("bool", "")]),
]
#: ERC-20 ``Transfer(address indexed from, address indexed to, uint256 value)`` event topic.
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"

#: SwapRouter02 (Uniswap swap-router-contracts, IV3SwapRouter / IPeripheryPaymentsWithFeeExtended /
#: IMulticallExtended): ExactInputSingleParams has no deadline field in SwapRouter02.
SWAP_ROUTER02_ABI = [
    {"type": "function", "name": "exactInputSingle", "stateMutability": "payable",
     "inputs": [{"name": "params", "type": "tuple", "components": [
         {"name": "tokenIn", "type": "address"}, {"name": "tokenOut", "type": "address"}, {"name": "fee", "type": "uint24"},
         {"name": "recipient", "type": "address"}, {"name": "amountIn", "type": "uint256"},
         {"name": "amountOutMinimum", "type": "uint256"}, {"name": "sqrtPriceLimitX96", "type": "uint160"}]}],
     "outputs": [{"name": "amountOut", "type": "uint256"}]},
    _fn("unwrapWETH9", [("uint256", "amountMinimum"), ("address", "recipient")], payable=True),
    _fn("multicall", [("bytes[]", "data")], payable=True, outputs=[("bytes[]", "results")]),
]

#: EtherFi LiquidityPool.deposit() payable returns eETH shares; weETH.wrap(uint256 _eETHAmount)
#: (etherfi-protocol ILiquidityPool / IWeETH, as quoted by integrators' interfaces).
ETHERFI_POOL_ABI = [_fn("deposit", [], payable=True, outputs=[("uint256", "")])]
WEETH_ABI = [_fn("wrap", [("uint256", "_eETHAmount")], outputs=[("uint256", "")]),
             _fn("unwrap", [("uint256", "_weETHAmount")], outputs=[("uint256", "")])]

#: Lido stETH.submit(address _referral) payable returns uint256; wstETH.wrap(uint256 _stETHAmount)
#: (lidofinance/core WstETH.sol; docs.lido.fi/contracts/wsteth; Sablier IStETH/IWstETH docs).
LIDO_ABI = [_fn("submit", [("address", "_referral")], payable=True, outputs=[("uint256", "")])]
WSTETH_ABI = [_fn("wrap", [("uint256", "_stETHAmount")], outputs=[("uint256", "")]),
              _fn("unwrap", [("uint256", "_wstETHAmount")], outputs=[("uint256", "")])]

#: Instadapp DSA v2 account: cast(string[] _targetNames, bytes[] _datas, address _origin)
#: payable returns (bytes32) (Instadapp dsa-contracts InstaImplementationM1; dsa-connect).
DSA_ABI = [_fn("cast", [("string[]", "_targetNames"), ("bytes[]", "_datas"), ("address", "_origin")],
               payable=True, outputs=[("bytes32", "")])]

_EV = [("string", "_eventName"), ("bytes", "_eventParam")]
#: Instadapp connector functions (Instadapp/dsa-connectors, contracts/mainnet/connectors/...).
#: Each returns (string _eventName, bytes _eventParam); getId/setId pass amounts between spells
#: through InstaMemory (0 = unused).
CONNECTOR_ABIS: dict[str, list[dict]] = {
    # instapool_v4/main.sol, ConnectV2InstaPoolV4 ("INSTAPOOL-C").
    "INSTAPOOL-C": [
        _fn("flashBorrowAndCast", [("address", "token"), ("uint256", "amt"), ("uint256", "route"), ("bytes", "data"),
                                   ("bytes", "extraData")], payable=True, outputs=_EV),
        _fn("flashPayback", [("address", "token"), ("uint256", "amt"), ("uint256", "getId"), ("uint256", "setId")],
            payable=True, outputs=_EV),
    ],
    # aave/v3/main.sol, ConnectV2AaveV3 ("AAVE-V3-A").
    "AAVE-V3-A": [
        _fn("deposit", [("address", "token"), ("uint256", "amt"), ("uint256", "getId"), ("uint256", "setId")], payable=True, outputs=_EV),
        _fn("withdraw", [("address", "token"), ("uint256", "amt"), ("uint256", "getId"), ("uint256", "setId")], payable=True, outputs=_EV),
        _fn("borrow", [("address", "token"), ("uint256", "amt"), ("uint256", "rateMode"), ("uint256", "getId"), ("uint256", "setId")],
            payable=True, outputs=_EV),
        _fn("payback", [("address", "token"), ("uint256", "amt"), ("uint256", "rateMode"), ("uint256", "getId"), ("uint256", "setId")],
            payable=True, outputs=_EV),
    ],
    # weth/main.sol, ConnectV2WETH: withdraw unwraps WETH to ETH.
    "WETH-A": [
        _fn("deposit", [("uint256", "amt"), ("uint256", "getId"), ("uint256", "setId")], payable=True, outputs=_EV),
        _fn("withdraw", [("uint256", "amt"), ("uint256", "getId"), ("uint256", "setId")], payable=True, outputs=_EV),
    ],
    # lido (ConnectV2LidoStEth): deposit stakes ETH for stETH.
    "LIDO-STETH-A": [_fn("deposit", [("uint256", "amt"), ("uint256", "getId"), ("uint256", "setId")], payable=True, outputs=_EV)],
    # ConnectV2WSTETH: deposit wraps stETH into wstETH.
    "WSTETH-A": [_fn("deposit", [("uint256", "stethAmt"), ("uint256", "getId"), ("uint256", "setId")], outputs=_EV)],
    # ConnectV2EETH: deposit stakes ETH with EtherFi for eETH.
    "EETH-A": [_fn("deposit", [("uint256", "amount"), ("uint256", "getId"), ("uint256", "setId")], payable=True, outputs=_EV)],
    # ConnectV2WEETH: deposit wraps eETH into weETH.
    "WEETH-A": [_fn("deposit", [("uint256", "eETHAmount"), ("uint256", "getId"), ("uint256", "setId")], outputs=_EV)],
    # uniswap/v3_swap/main.sol, ConnectV2UniswapV3Swap ("UNISWAP-V3-SWAP-A").
    "UNISWAP-V3-SWAP-A": [
        _fn("sell", [("address", "_buyAddr"), ("address", "_sellAddr"), ("uint24", "_fee"), ("uint256", "_unitAmt"),
                     ("uint256", "_sellAmt"), ("uint256", "_getId"), ("uint256", "_setId")], payable=True, outputs=_EV),
    ],
}


#: ABI fragments by the name a venue file's ``live.contracts.<role>.abi`` gives.
ABIS: dict[str, list[dict]] = {
    "erc20": ERC20_ABI,
    "aave_pool": AAVE_POOL_ABI,
    "etherfi_pool": ETHERFI_POOL_ABI,
    "weeth": WEETH_ABI,
    "lido": LIDO_ABI,
    "wsteth": WSTETH_ABI,
    "swap_router02": SWAP_ROUTER02_ABI,
    "dsa": DSA_ABI,
}
