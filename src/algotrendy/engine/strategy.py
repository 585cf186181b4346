"""What a strategy is: a small class that gets bars and fills and places orders.

The same ``Strategy`` runs in a backtest (``engine.backtest``), on the paper broker and live: the
shell around it (a simulated venue, or the trading service) implements ``Context`` and calls
``on_data`` / ``on_bar`` / ``on_fill``. A strategy never sees what the shell is::

    class Crossover(Strategy):
        def __init__(self, fast: int = 10, slow: int = 30) -> None:
            self.fast, self.slow = fast, slow

        def on_data(self, symbol: str, bars: Bars) -> None:   # history so far (all of it in a backtest)
            self.f = talib.SMA(bars.close, self.fast)
            self.s = talib.SMA(bars.close, self.slow)

        def on_bar(self, ctx: Context) -> None:
            i = ctx.index("AAPL")
            if self.f[i] > self.s[i] and ctx.position("AAPL") <= 0:
                ctx.close("AAPL")
                ctx.buy("AAPL", fraction=1.0)
            elif self.f[i] < self.s[i] and ctx.position("AAPL") > 0:
                ctx.close("AAPL")

``on_data`` may compute indicators over the whole history it is given: it is only ever given
bars up to the current one (live: the recent window; backtest: the full series, which is the same
thing for causal indicators, and much faster). ``ctx.index(symbol)`` is the current bar's
position in what ``on_data`` got.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from algotrendy.core.market import Bars
from algotrendy.engine.orders import Fill, OrderSide, OrderType, TimeInForce


class Context(Protocol):
    """The shell, as a strategy sees it (quantities and prices are floats here)."""

    @property
    def ts(self) -> int:
        """The current bar's open time, epoch ns UTC."""
        ...

    @property
    def symbols(self) -> tuple[str, ...]: ...

    def index(self, symbol: str) -> int:
        """Position of ``symbol``'s current bar in the bars ``on_data`` received; -1 if none yet."""
        ...

    def has_bar(self, symbol: str) -> bool:
        """Whether ``symbol`` printed a bar at this time (multi-symbol timelines have holes)."""
        ...

    def price(self, symbol: str) -> float:
        """Last close of ``symbol``."""
        ...

    def position(self, symbol: str) -> float:
        """Signed quantity held (negative short)."""
        ...

    @property
    def equity(self) -> float: ...

    @property
    def cash(self) -> float: ...

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
        """Place an order; returns its id. Give ``quantity`` (units) or ``fraction`` (of equity,
        sized at the fill price)."""
        ...

    def buy(
        self, symbol: str, quantity: float | None = None, *, fraction: float | None = None, tag: str = "entry"
    ) -> str:
        """A market buy."""
        ...

    def sell(
        self, symbol: str, quantity: float | None = None, *, fraction: float | None = None, tag: str = "entry"
    ) -> str:
        """A market sell (opens or adds to a short when flat or short)."""
        ...

    def close(self, symbol: str, *, tag: str = "exit") -> str | None:
        """A reduce-only market order for the whole position (``None`` when flat)."""
        ...

    def cancel(self, order_id: str) -> None: ...

    def cancel_all(self, symbol: str) -> None:
        """Cancel every open order of ``symbol``."""
        ...


class Strategy:
    """Base class: override what you need. ``symbols`` may be set by the strategy; the shell
    otherwise trades every symbol it was given."""

    symbols: tuple[str, ...] = ()

    def on_start(self, ctx: Context) -> None:
        """Once, before the first bar."""

    def on_data(self, symbol: str, bars: Bars) -> None:
        """``symbol``'s bars up to now (called before ``on_bar`` whenever they changed)."""

    def on_bar(self, ctx: Context) -> None:
        """Once per time step, after fills at this bar and marking to its close."""

    def on_fill(self, ctx: Context, fill: Fill[float], tag: str) -> None:
        """After each fill; ``tag`` is the filled order's tag."""

    def on_reject(self, ctx: Context, order_id: str, reason: str) -> None:
        """An order the venue or risk refused (insufficient cash, nothing to reduce ...)."""


def check_order_args(
    symbol: str, symbols: Sequence[str], quantity: float | None, fraction: float | None
) -> None:
    """The checks every ``Context.submit`` makes before it builds the order (backtest and live)."""
    if symbol not in symbols:
        raise ValueError(f"unknown symbol {symbol!r}; this strategy trades {', '.join(symbols)}")
    if (quantity is None) == (fraction is None):
        raise ValueError("give exactly one of quantity and fraction")
    if fraction is not None and not (0 < fraction <= 100):
        raise ValueError(f"fraction must be in (0, 100], got {fraction}")


def close_order(position: float) -> tuple[OrderSide, float] | None:
    """The side and quantity of the reduce-only order that flattens ``position`` (``None``: flat)."""
    if position == 0:
        return None
    return (OrderSide.SELL if position > 0 else OrderSide.BUY), abs(position)
