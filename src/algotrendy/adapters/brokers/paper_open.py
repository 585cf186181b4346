"""The paper exchange's open orders in memory, indexed the ways the hot paths ask.

A submit checks the free cash of one account (its open buys), a price update matches the open
orders of one symbol, and a stream ends when its symbol has none left. With one flat dict each of
those scanned every open order of every account: an account resting a thousand limit orders
made every other account's order slower. ``OpenOrders`` keeps the flat map (by account and
client order id) plus one index by account and one by symbol; each keeps insertion order, which
is the order the flat dict gave before.

An account's free cash subtracts what its open buys would cost. A limit buy's cost depends on the
order only, so each account keeps their sum, updated as orders come, go and fill (``refresh``
after a fill changed one in place): a submit reads it instead of pricing every resting buy. Buys
without a limit (market, stop) cost what the market says at the time; they are kept apart.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from algotrendy.adapters.brokers.paper_store import PaperOrder
from algotrendy.engine.orders import OrderSide

Key = tuple[str, str]  # (account id, client order id)
_ZERO = Decimal(0)


class OpenOrders:
    def __init__(self, limit_buy_cost: Callable[[PaperOrder], Decimal]) -> None:
        self._all: dict[Key, PaperOrder] = {}
        self._by_account: dict[str, dict[Key, PaperOrder]] = {}
        self._by_symbol: dict[str, dict[Key, PaperOrder]] = {}
        self._cost = limit_buy_cost
        self._counted: dict[Key, Decimal] = {}
        """What each open limit buy adds to its account's sum, as last priced."""
        self._limit_buys: dict[str, tuple[int, Decimal]] = {}
        """Per account: how many open limit buys, and the sum of their costs."""
        self._market_buys: dict[str, dict[Key, PaperOrder]] = {}

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
        self._count(key, po)

    def pop(self, key: Key) -> PaperOrder | None:
        po = self._all.pop(key, None)
        if po is not None:
            self._uncount(key, po)
            for index, name in ((self._by_account, po.account_id), (self._by_symbol, po.order.symbol)):
                group = index[name]
                del group[key]
                if not group:
                    del index[name]
        return po

    def refresh(self, po: PaperOrder) -> None:
        """``po`` (open) changed in place (a fill): its account's sum follows."""
        key = (po.account_id, po.client_order_id)
        if self._all.get(key) is po:
            self._uncount(key, po)
            self._count(key, po)

    def clear(self) -> None:
        self._all.clear()
        self._by_account.clear()
        self._by_symbol.clear()
        self._counted.clear()
        self._limit_buys.clear()
        self._market_buys.clear()

    def buys_of(self, account_id: str) -> tuple[Decimal, list[PaperOrder]]:
        """What the account's open limit buys would cost, and its open buys without a limit."""
        counted = self._limit_buys.get(account_id)
        return (counted[1] if counted else _ZERO), list(self._market_buys.get(account_id, {}).values())

    def _count(self, key: Key, po: PaperOrder) -> None:
        if po.order.side is not OrderSide.BUY:
            return
        if po.order.limit_price is None:
            self._market_buys.setdefault(po.account_id, {})[key] = po
            return
        cost = self._counted[key] = self._cost(po)
        n, total = self._limit_buys.get(po.account_id, (0, _ZERO))
        self._limit_buys[po.account_id] = (n + 1, total + cost)

    def _uncount(self, key: Key, po: PaperOrder) -> None:
        cost = self._counted.pop(key, None)
        if cost is not None:
            n, total = self._limit_buys[po.account_id]
            if n == 1:  # the last one: exactly nothing, whatever the sums rounded on the way
                del self._limit_buys[po.account_id]
            else:
                self._limit_buys[po.account_id] = (n - 1, total - cost)
        market = self._market_buys.get(po.account_id)
        if market is not None and market.pop(key, None) is not None and not market:
            del self._market_buys[po.account_id]

    def of_account(self, account_id: str) -> list[PaperOrder]:
        return list(self._by_account.get(account_id, {}).values())

    def of_symbol(self, symbol: str) -> list[PaperOrder]:
        return list(self._by_symbol.get(symbol, {}).values())

    def has_symbol(self, symbol: str) -> bool:
        return symbol in self._by_symbol

    def symbols(self) -> list[str]:
        return sorted(self._by_symbol)
