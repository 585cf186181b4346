"""The event-driven backtester: a strategy, a simulated venue and a cash account on a timeline.

It runs the same ``Order`` state machine (``engine.orders``), matching and costs
(``engine.execution``) and ``Position`` accounting (``engine.positions``) that paper and live
trading run; only the venue is simulated. One step per distinct timestamp of the input series:

1. every open order of each symbol that printed a bar is matched against that bar (market
   orders at the open, then stops, then limits; brackets placed by a fill at the open are
   matched against the rest of that bar). A DAY order lives through the UTC day of the first
   bar it meets; IOC and FOK orders expire if their first bar does not fill them;
2. the account is marked to the bar's close (``equity``, ``cash``, ``exposure`` arrays);
3. the strategy's ``on_bar`` runs and may place orders for the next bar.

Money here is ``float`` (research); the live shell runs the same classes on ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from algotrendy.core.market import Bars
from algotrendy.engine.execution import Costs, floor_lot, match_bar, priority, size_fraction
from algotrendy.engine.orders import Fill, Order, OrderSide, OrderStatus, OrderType, TimeInForce
from algotrendy.engine.positions import Closed, Position
from algotrendy.engine.result import RunResult, Trades
from algotrendy.engine.strategy import Strategy, check_order_args, close_order

MAX_BRACKET_ROUNDS = 8


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """Capital and trading costs. ``fee_rate``/``slippage`` are fractions per side;
    ``lot_size`` rounds quantities down (0: fractional units); ``leverage`` caps buying power
    at ``leverage * equity``."""

    initial_capital: float = 100_000.0
    fee_rate: float = 0.0
    slippage: float = 0.0
    fee_fixed: float = 0.0
    lot_size: float = 0.0
    leverage: float = 1.0

    def __post_init__(self) -> None:
        checks = {
            "initial_capital": self.initial_capital > 0,
            "fee_rate": 0 <= self.fee_rate < 1,
            "slippage": 0 <= self.slippage < 1,
            "fee_fixed": self.fee_fixed >= 0,
            "lot_size": self.lot_size >= 0,
            "leverage": self.leverage > 0,
        }
        for name, ok in checks.items():
            if not ok or not np.isfinite(getattr(self, name)):
                raise ValueError(f"{name} is out of range: {getattr(self, name)!r}")


ProgressFn = Callable[[float], None]


class EventBacktest:
    """``EventBacktest(data, strategy, config).run()`` -> ``RunResult``."""

    def __init__(self, data: Mapping[str, Bars], strategy: Strategy, config: BacktestConfig) -> None:
        if not data:
            raise ValueError("no data: give at least one symbol's bars")
        self.config = config
        self.strategy = strategy
        self._symbols = tuple(data)
        self._bars = dict(data)
        self._costs = Costs(config.fee_rate, config.slippage, config.fee_fixed)
        if len(data) == 1:
            self._ts = next(iter(data.values())).ts
            self._rows: dict[str, list[int]] | None = None
        else:
            self._ts = np.unique(np.concatenate([b.ts for b in data.values()]))
            self._rows = {}
            for s, b in data.items():
                rows = np.full(len(self._ts), -1, dtype=np.int64)
                rows[np.searchsorted(self._ts, b.ts)] = np.arange(len(b))
                self._rows[s] = rows.tolist()
        self._o = {s: b.open.tolist() for s, b in data.items()}
        self._h = {s: b.high.tolist() for s, b in data.items()}
        self._l = {s: b.low.tolist() for s, b in data.items()}
        self._c = {s: b.close.tolist() for s, b in data.items()}
        self._cur = dict.fromkeys(self._symbols, -1)
        self._last = dict.fromkeys(self._symbols, float("nan"))
        self._positions = {s: Position.flat(s, 0.0) for s in self._symbols}
        self._active: dict[str, list[Order[float]]] = {s: [] for s in self._symbols}
        self._incoming: list[Order[float]] = []
        self._brackets: list[Order[float]] = []
        self._in_fill = False
        self._fill_price = 0.0
        self._day_of: dict[str, int] = {}
        self._orders: dict[str, Order[float]] = {}
        self._closed: list[tuple[Closed[float], str]] = []
        self._cash = config.initial_capital
        self._step = -1
        self._now = 0
        self._fills = 0
        self._fees = 0.0
        self._traded = 0.0

    # ---- Context ---------------------------------------------------------------------------

    @property
    def ts(self) -> int:
        return self._now

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    def index(self, symbol: str) -> int:
        return self._cur[symbol]

    def has_bar(self, symbol: str) -> bool:
        rows = self._rows
        return rows is None or rows[symbol][self._step] >= 0

    def price(self, symbol: str) -> float:
        return self._last[symbol]

    def position(self, symbol: str) -> float:
        return self._positions[symbol].quantity

    @property
    def equity(self) -> float:
        return self._equity_at(self._last)

    @property
    def cash(self) -> float:
        return self._cash

    def submit(
        self,
        symbol: str,
        side: OrderSide,
        quantity: float | None = None,
        *,
        fraction: float | None = None,
        type: OrderType = OrderType.MARKET,
        limit_price: float | None = None,
        stop_price: float | None = None,
        trail: float | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        reduce_only: bool = False,
        tag: str = "",
        group: str | None = None,
    ) -> str:
        check_order_args(symbol, self._symbols, quantity, fraction)
        oid = f"o{len(self._orders) + 1}"
        order: Order[float] = Order(
            id=oid,
            symbol=symbol,
            side=side,
            type=type,
            quantity=float(quantity) if quantity is not None else 0.0,
            limit_price=limit_price,
            stop_price=stop_price,
            trail=trail,
            time_in_force=time_in_force,
            reduce_only=reduce_only,
            tag=tag,
            group=group,
            equity_fraction=fraction,
            created_index=self._step,
        )
        if type is OrderType.TRAILING_STOP and trail is not None:
            order.best_price = self._fill_price if self._in_fill else self._last[symbol]
        order.transition(OrderStatus.VALIDATED)
        order.transition(OrderStatus.SUBMITTED)
        self._orders[oid] = order
        (self._brackets if self._in_fill else self._incoming).append(order)
        return oid

    def buy(
        self, symbol: str, quantity: float | None = None, *, fraction: float | None = None, tag: str = "entry"
    ) -> str:
        return self.submit(symbol, OrderSide.BUY, quantity, fraction=fraction, tag=tag)

    def sell(
        self, symbol: str, quantity: float | None = None, *, fraction: float | None = None, tag: str = "entry"
    ) -> str:
        return self.submit(symbol, OrderSide.SELL, quantity, fraction=fraction, tag=tag)

    def close(self, symbol: str, *, tag: str = "exit") -> str | None:
        order = close_order(self._positions[symbol].quantity)
        if order is None:
            return None
        side, qty = order
        return self.submit(symbol, side, qty, reduce_only=True, tag=tag)

    def cancel(self, order_id: str) -> None:
        order = self._orders.get(order_id)
        if order is not None and order.status.is_open:
            order.transition(OrderStatus.CANCELLED, "cancelled by strategy")

    def cancel_all(self, symbol: str) -> None:
        for order in (*self._active[symbol], *self._incoming, *self._brackets):
            if order.symbol == symbol and order.status.is_open:
                order.transition(OrderStatus.CANCELLED, "cancelled by strategy")

    # ---- the run ---------------------------------------------------------------------------

    def run(self, *, progress: ProgressFn | None = None, progress_every: int = 50_000) -> RunResult:
        n = len(self._ts)
        ts_list = self._ts.tolist()
        equity = np.empty(n, dtype=np.float64)
        cash = np.empty(n, dtype=np.float64)
        exposure = np.empty(n, dtype=np.float64)
        strategy = self.strategy
        for s in self._symbols:
            strategy.on_data(s, self._bars[s])
        strategy.on_start(self)
        symbols = self._symbols
        rows = self._rows
        active = self._active
        positions = self._positions
        closes = self._c
        cur = self._cur
        last = self._last
        for step in range(n):
            self._step = step
            self._now = ts_list[step]
            if self._incoming:
                for order in self._incoming:
                    if order.status.is_open:
                        active[order.symbol].append(order)
                self._incoming = []
            for s in symbols if rows is None else sorted(symbols, key=self._exits_last):
                row = step if rows is None else rows[s][step]
                if row >= 0:
                    cur[s] = row
                    if active[s]:
                        self._match_symbol(s, row)
            value = 0.0
            gross = 0.0
            for s in symbols:
                row = step if rows is None else rows[s][step]
                if row >= 0:
                    last[s] = closes[s][row]
                q = positions[s].quantity
                if q != 0.0:
                    mv = q * last[s]
                    value += mv
                    gross += abs(mv)
            eq = self._cash + value
            equity[step] = eq
            cash[step] = self._cash
            exposure[step] = gross / eq if eq > 0 else 0.0
            strategy.on_bar(self)
            if progress is not None and step % progress_every == 0:
                progress(step / n)
        return RunResult(
            symbols=symbols,
            ts=self._ts,
            equity=equity,
            cash=cash,
            exposure=exposure,
            trades=self._trades(),
            initial_capital=self.config.initial_capital,
            fees_paid=self._fees,
            turnover=self._traded / float(np.mean(equity)) if n and np.mean(equity) > 0 else 0.0,
            orders=len(self._orders),
            warmup=int(getattr(strategy, "warmup", 0)),
        )

    def _exits_last(self, s: str) -> bool:
        """Sort key: symbols with a market order that reduces their position are matched first,
        so the cash a rebalance frees funds the entries on the same open."""
        q = self._positions[s].quantity
        return not any(o.type is OrderType.MARKET and o.side.sign * q < 0 for o in self._active[s])

    def _match_symbol(self, s: str, row: int) -> None:
        o, h, lo = self._o[s][row], self._h[s][row], self._l[s][row]
        orders = self._active[s]
        if len(orders) > 1:
            orders.sort(key=priority)
        self._match(orders, s, row, o, h, lo, at_open=True)
        for _ in range(MAX_BRACKET_ROUNDS):
            if not self._brackets:
                break
            fresh = [b for b in self._brackets if b.status.is_open]
            self._brackets = []
            # an order for another symbol placed in ``on_fill`` waits for that symbol's next step
            self._incoming.extend(b for b in fresh if b.symbol != s)
            fresh = [b for b in fresh if b.symbol == s]
            fresh.sort(key=priority)
            self._match(fresh, s, row, o, h, lo, at_open=False)
            orders.extend(b for b in fresh if b.status.is_open)
        self._active[s] = [x for x in orders if x.status.is_open]

    def _match(
        self, orders: list[Order[float]], s: str, row: int, o: float, h: float, lo: float, *, at_open: bool
    ) -> None:
        match_bar(
            orders,
            s,
            o,
            h,
            lo,
            now_ns=self._now,
            first_day=self._day_of,
            costs=self._costs,
            execute=lambda order, price: self._execute(order, s, row, price, mark=o),
            at_open=at_open,
        )

    def _execute(self, order: Order[float], s: str, row: int, price: float, *, mark: float) -> None:
        pos = self._positions[s]
        cfg = self.config
        sign = order.side.sign
        if order.reduce_only:
            if pos.quantity * sign >= 0:
                order.transition(OrderStatus.CANCELLED, "reduce-only: nothing to reduce")
                return
            qty = min(order.remaining, abs(pos.quantity))
        elif order.equity_fraction is not None:
            equity = self._equity_at({**self._last, s: mark})
            qty = size_fraction(order.equity_fraction, equity, price, cfg.fee_rate, cfg.lot_size)
        else:
            qty = order.remaining
        if not order.reduce_only:
            qty = self._affordable(pos, sign, qty, price, mark, s)
        if qty <= 0:
            order.transition(OrderStatus.REJECTED, "insufficient buying power")
            self.strategy.on_reject(self, order.id, "insufficient buying power")
            return
        if order.equity_fraction is not None:  # the quantity is known only now
            order.quantity = qty + order.filled_quantity if order.filled_quantity else qty
        fee = self._costs.fee(qty, price)
        self._fills += 1
        fill = Fill(f"f{self._fills}", order.id, s, order.side, qty, price, fee, row, self._now)
        order.apply_fill(fill)
        if order.status is OrderStatus.PARTIAL_FILL:  # capped: the rest cannot fill, it does not rest
            reason = "position closed" if order.reduce_only else "insufficient buying power"
            order.transition(OrderStatus.CANCELLED, reason)
        notional = qty * price
        if sign > 0:
            self._cash -= notional + fee
        else:
            self._cash += notional - fee
        self._fees += fee
        self._traded += notional
        for c in pos.apply(fill):
            self._closed.append((c, order.tag))
        if order.group is not None:
            for other in self._orders.values():
                if other.group == order.group and other is not order and other.status.is_open:
                    other.transition(OrderStatus.CANCELLED, "one-cancels-other")
        if pos.quantity == 0:
            for other in (*self._active[s], *self._brackets):
                if other.reduce_only and other.status.is_open and other is not order and other.symbol == s:
                    other.transition(OrderStatus.CANCELLED, "position closed")
        self._in_fill = True
        self._fill_price = price
        try:
            self.strategy.on_fill(self, fill, order.tag)
        finally:
            self._in_fill = False

    def _affordable(
        self, pos: Position[float], sign: int, qty: float, price: float, mark: float, s: str
    ) -> float:
        """Cap an order that adds exposure at what buying power allows."""
        cfg = self.config
        q = pos.quantity
        closing = abs(q) if q * sign < 0 else 0.0  # reduces first: only the part beyond flat
        if closing and qty <= closing:  # needs buying power
            return qty
        cash = self._cash
        equity = self._equity_at({**self._last, s: mark})
        if closing:  # judged on the account as it will be once the position is closed at ``price``
            cash += q * price - closing * price * cfg.fee_rate
            equity += q * (price - mark) - closing * price * cfg.fee_rate
        if sign > 0:
            power = cash + (cfg.leverage - 1.0) * equity - cfg.fee_fixed
            limit = power / (price * (1.0 + cfg.fee_rate))
        else:
            held = sum(
                abs(p.quantity) * (mark if p.symbol == s else self._last[p.symbol])
                for p in self._positions.values()
                if not (closing and p.symbol == s)
            )
            limit = (cfg.leverage * equity - held) / price
        if qty - closing <= limit:
            return qty
        return closing + max(0.0, floor_lot(limit, cfg.lot_size))

    def _equity_at(self, marks: Mapping[str, float]) -> float:
        value = self._cash
        for s, p in self._positions.items():
            if p.quantity != 0.0:
                value += p.quantity * marks[s]
        return value

    def _trades(self) -> Trades:
        if not self._closed:
            return Trades.empty()
        index = {s: i for i, s in enumerate(self._symbols)}
        cs = [c for c, _ in self._closed]
        pnl = np.array([c.pnl for c in cs], dtype=np.float64)
        notional = np.array([c.entry_price * c.quantity for c in cs], dtype=np.float64)
        return Trades(
            symbol=np.array([index[c.symbol] for c in cs], dtype=np.int64),
            side=np.array([c.side for c in cs], dtype=np.int64),
            quantity=np.array([c.quantity for c in cs], dtype=np.float64),
            entry_index=np.array([c.entry_index for c in cs], dtype=np.int64),
            exit_index=np.array([c.exit_index for c in cs], dtype=np.int64),
            entry_price=np.array([c.entry_price for c in cs], dtype=np.float64),
            exit_price=np.array([c.exit_price for c in cs], dtype=np.float64),
            fees=np.array([c.entry_fee + c.exit_fee for c in cs], dtype=np.float64),
            pnl=pnl,
            ret=np.divide(pnl, notional, out=np.zeros_like(pnl), where=notional != 0),
            exit_reason=[tag or "exit" for _, tag in self._closed],
        )
