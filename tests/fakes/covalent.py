"""Fake CovalentHQ (GoldRush) pricing and balances APIs.

Covalent has no sample file here; its daily token prices are derived from real sample data:
WBTC's price on a date is the close of the last BTCUSDT 1h bar of that UTC date, WETH's the
same from ETHUSDT. Balances are fixed for ``WALLET`` (native ETH, WBTC, and a spam token).

* ``GET /v1/pricing/historical_by_addresses_v2/{chain}/{quote}/{address}/?from=&to=&prices-at-asc=``
  (dates inclusive; newest first unless ``prices-at-asc=true``, as at Covalent);
* ``GET /v1/{chain}/address/{wallet}/balances_v2/``.

``chain`` is a chain id (``1``) or name (``eth-mainnet``). The key: ``Authorization: Bearer``
or basic auth with the key as user name; otherwise 401 in Covalent's envelope
``{"data": null, "error": true, "error_message": ..., "error_code": 401}``.
"""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from aiohttp import web

from tests.fakes.data import NS_PER_S, sample
from tests.fakes.server import FakeServer

API_KEY = "cqt_fake_key"
CHAINS = {"1": (1, "eth-mainnet"), "eth-mainnet": (1, "eth-mainnet")}
WBTC = "0x2260fac5e5542a773aa44fbcfedf7c193bc2c599"
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
NATIVE = "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
SPAM = "0x1111111111111111111111111111111111111111"
WALLET = "0x742d35cc6634c0532925a3b844bc454e4438f44e"
TOKENS = {
    WBTC: ("Wrapped BTC", "WBTC", 8, "BTCUSDT_1h_binance"),
    WETH: ("Wrapped Ether", "WETH", 18, "ETHUSDT_1h_binance"),
}


@cache
def daily_prices(address: str) -> dict[date, float]:
    """Close of the last 1h bar of each UTC date of the token's sample."""
    data = sample(TOKENS[address][3])
    out: dict[date, float] = {}
    for t, row in zip(data.ts, data.rows, strict=True):
        out[datetime.fromtimestamp(int(t) // NS_PER_S, UTC).date()] = float(row[3])
    return out


class FakeCovalent(FakeServer):
    vendor = "covalent"

    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__()
        self.api_key = api_key

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/pricing/historical_by_addresses_v2/{chain}/{quote}/{address}/", self.prices),
            web.get("/v1/{chain}/address/{wallet}/balances_v2/", self.balances),
        ]

    def error_body(self, status: int, message: str) -> Any:
        return {"data": None, "error": True, "error_message": message, "error_code": status}

    def _authorized(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:] == self.api_key
        if auth.startswith("Basic "):
            user = base64.b64decode(auth[6:]).decode(errors="replace").partition(":")[0]
            return user == self.api_key
        return request.query.get("key") == self.api_key

    def _fail(self, status: int, message: str) -> web.Response:
        return web.json_response(self.error_body(status, message), status=status)

    def _meta(self, address: str) -> dict[str, Any]:
        name, ticker, decimals, _ = TOKENS[address]
        return {
            "contract_decimals": decimals,
            "contract_name": name,
            "contract_ticker_symbol": ticker,
            "contract_address": address,
            "supports_erc": ["erc20"],
            "logo_url": f"https://logos.example/{ticker.lower()}.png",
        }

    async def prices(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._fail(401, "Authentication failed. Please check your API key.")
        m = request.match_info
        if m["chain"] not in CHAINS:
            return self._fail(400, f"Chain {m['chain']!r} is not supported.")
        address = m["address"].lower()
        try:
            first = date.fromisoformat(request.query["from"])
            last = date.fromisoformat(request.query["to"])
        except (KeyError, ValueError):
            return self._fail(400, "Malformed 'from' or 'to' date.")
        item: dict[str, Any] = {
            "contract_decimals": None,
            "contract_name": None,
            "contract_ticker_symbol": None,
            "contract_address": address,
            "supports_erc": None,
            "logo_url": None,
            "update_at": "2024-04-21T14:05:00Z",
            "quote_currency": m["quote"],
            "prices": [],
        }
        if address in TOKENS:
            meta = self._meta(address)
            item.update(meta)
            prices = [
                {
                    "contract_metadata": meta,
                    "date": day.isoformat(),
                    "price": price,
                    "pretty_price": f"${price:,.2f}",
                }
                for day, price in sorted(daily_prices(address).items())
                if first <= day <= last
            ]
            if request.query.get("prices-at-asc") != "true":
                prices.reverse()
            fault = self.malformed(request)
            if fault is not None and prices:
                entry = prices[min(fault.row, len(prices) - 1)]
                entry["price"] = {"nan": float("nan"), "negative": -3.0, "zero": 0.0}.get(fault.how)
                if fault.how == "missing":
                    del entry["date"]
            item["prices"] = prices
        return web.json_response({"data": [item], "error": False, "error_message": None, "error_code": None})

    async def balances(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._fail(401, "Authentication failed. Please check your API key.")
        m = request.match_info
        if m["chain"] not in CHAINS:
            return self._fail(400, f"Chain {m['chain']!r} is not supported.")
        chain_id, chain_name = CHAINS[m["chain"]]
        wallet = m["wallet"].lower()
        if not (wallet.startswith("0x") and len(wallet) == 42):
            return self._fail(400, f"Malformed address provided: {m['wallet']}")
        items: list[dict[str, Any]] = []
        if wallet == WALLET:
            eth = daily_prices(WETH)[max(daily_prices(WETH))]
            btc = daily_prices(WBTC)[max(daily_prices(WBTC))]
            items = [
                self._item(NATIVE, "Ether", "ETH", 18, "1500000000000000000", eth, native=True),
                self._item(WBTC, "Wrapped BTC", "WBTC", 8, "25000000", btc),
                self._item(
                    SPAM,
                    "Claim rewards at scam.example",
                    "SCAM",
                    18,
                    "1000000000000000000000",
                    None,
                    spam=True,
                ),
            ]
            fault = self.malformed(request)
            if fault is not None:
                items[min(fault.row, len(items) - 1)]["balance"] = {"negative": "-5", "nan": "NaN"}.get(
                    fault.how
                )
        return web.json_response(
            {
                "data": {
                    "address": wallet,
                    "updated_at": "2024-04-21T14:05:00Z",
                    "next_update_at": "2024-04-21T14:10:00Z",
                    "quote_currency": "USD",
                    "chain_id": chain_id,
                    "chain_name": chain_name,
                    "items": items,
                    "pagination": None,
                },
                "error": False,
                "error_message": None,
                "error_code": None,
            }
        )

    @staticmethod
    def _item(
        address: str,
        name: str,
        ticker: str,
        decimals: int,
        balance: str,
        rate: float | None,
        *,
        native: bool = False,
        spam: bool = False,
    ) -> dict[str, Any]:
        amount = int(balance) / 10**decimals
        quote = None if rate is None else amount * rate
        return {
            "contract_decimals": decimals,
            "contract_name": name,
            "contract_ticker_symbol": ticker,
            "contract_address": address,
            "supports_erc": None if native else ["erc20"],
            "logo_url": f"https://logos.example/{ticker.lower()}.png",
            "last_transferred_at": "2024-04-20T09:12:11Z",
            "native_token": native,
            "type": "dust" if spam else "cryptocurrency",
            "is_spam": spam,
            "balance": balance,
            "balance_24h": balance,
            "quote_rate": rate,
            "quote_rate_24h": rate,
            "quote": quote,
            "pretty_quote": None if quote is None else f"${quote:,.2f}",
            "quote_24h": quote,
            "pretty_quote_24h": None if quote is None else f"${quote:,.2f}",
            "nft_data": None,
        }
