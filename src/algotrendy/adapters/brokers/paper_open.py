"""The paper exchange's open orders in memory, indexed the ways the hot paths ask.

A submit checks the free cash of one account (its open buys), a price update matches the open
orders of one symbol, and a stream ends when its symbol has none left. With one flat dict each of
those scanned every open order of every account: an account resting a thousand limit orders
made every other account's order slower. ``OpenOrders`` keeps the flat map (by account and
client order id) plus one index by account and one by symbol; each keeps insertion order, which
is the order the flat dict gave before.
"""

from __future__ import annotations

from algotrendy.adapters.brokers.paper_store import PaperOrder

Key = tuple[str, str]  # (account id, client order id)


class OpenOrders:
    def __init__(self) -> None:
        self._all: dict[Key, PaperOrder] = {}
        self._by_account: dict[str, dict[Key, PaperOrder]] = {}
        self._by_symbol: dict[str, dict[Key, PaperOrder]] = {}

    def __len__(self) -> int:
        return len(self._all)

    def get(self, key: Key) -> PaperOrder | None:
        return self._all.get(key)

    def add(self, po: PaperOrder) -> None:
        key = (po.account_id, po.client_order_id)
        self.pop(key)  # a replaced order leaves the indexes of its old symbol
        self._all[key] = po
        self._by_account.setdefault(po.account_id, {})[key] = po
        self._by_symbol.setdefault(po.order.symbol, {})[key] = po

    def pop(self, key: Key) -> PaperOrder | None:
        po = self._all.pop(key, None)
        if po is not None:
            for index, name in ((self._by_account, po.account_id), (self._by_symbol, po.order.symbol)):
                group = index[name]
                del group[key]
                if not group:
                    del index[name]
        return po

    def clear(self) -> None:
        self._all.clear()
        self._by_account.clear()
        self._by_symbol.clear()

    def of_account(self, account_id: str) -> list[PaperOrder]:
        return list(self._by_account.get(account_id, {}).values())

    def of_symbol(self, symbol: str) -> list[PaperOrder]:
        return list(self._by_symbol.get(symbol, {}).values())

    def has_symbol(self, symbol: str) -> bool:
        return symbol in self._by_symbol

    def symbols(self) -> list[str]:
        return sorted(self._by_symbol)
