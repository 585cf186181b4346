"""A strategy that trades bar-aligned signal arrays on one symbol: the event-driven twin of the
vectorized kernel (``engine.vector``), following its rules exactly: decide on the close, fill on
the next open, exits before entries, an entry signal that coincides with its own exit ignored,
and on an entry fill the stop-loss, trailing stop and take-profit become resting reduce-only
orders in one one-cancels-other group. ``engine.templated.TemplateStrategy`` feeds it a
template's signals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from algotrendy.core.market import F64
from algotrendy.engine.orders import Fill, OrderSide, OrderType
from algotrendy.engine.result import B8
from algotrendy.engine.strategy import Context, Strategy


@dataclass(frozen=True, slots=True)
class Brackets:
    """Exits placed when an entry fills, as fractions of the fill price (``None``: not used)."""

    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None


class SignalStrategy(Strategy):
    """Trade bar-aligned signal arrays on one symbol (the rules of ``engine.vector``).

    ``fractions[i]`` sizes an entry decided on bar ``i`` (NaN: no entry); or every entry buys or
    sells ``fixed_quantity`` units."""

    def __init__(
        self,
        symbol: str,
        *,
        brackets: Brackets | None = None,
        fixed_quantity: float | None = None,
    ) -> None:
        self.symbols = (symbol,)
        self._symbol = symbol
        self._brackets = brackets or Brackets()
        self._fixed = fixed_quantity
        self._groups = 0
        self.warmup = 0
        self._le: list[bool] = []
        self._lx: list[bool] = []
        self._se: list[bool] = []
        self._sx: list[bool] = []
        self._frac: list[float] = []

    def set_signals(self, le: B8, lx: B8, se: B8, sx: B8, fractions: F64) -> None:
        """Entries that coincide with their own exit are dropped, as in the kernel."""
        lx = np.asarray(lx, dtype=np.bool_)
        sx = np.asarray(sx, dtype=np.bool_)
        self._le = (np.asarray(le, dtype=np.bool_) & ~lx).tolist()
        self._se = (np.asarray(se, dtype=np.bool_) & ~sx).tolist()
        self._lx = lx.tolist()
        self._sx = sx.tolist()
        self._frac = np.asarray(fractions, dtype=np.float64).tolist()

    def on_bar(self, ctx: Context) -> None:
        s = self._symbol
        i = ctx.index(s)
        if i < 0 or not ctx.has_bar(s):
            return
        pos = ctx.position(s)
        enter = 0
        if pos > 0:
            if self._lx[i] or self._se[i]:
                ctx.close(s)
                enter = -1 if self._se[i] else 0
        elif pos < 0:
            if self._sx[i] or self._le[i]:
                ctx.close(s)
                enter = 1 if self._le[i] else 0
        elif self._le[i]:
            enter = 1
        elif self._se[i]:
            enter = -1
        if enter == 0:
            return
        side = OrderSide.BUY if enter > 0 else OrderSide.SELL
        if self._fixed is not None:
            ctx.submit(s, side, self._fixed, tag="entry")
            return
        frac = self._frac[i]
        if frac > 0:  # NaN (volatility not known yet): no order
            ctx.submit(s, side, fraction=frac, tag="entry")

    def on_fill(self, ctx: Context, fill: Fill[float], tag: str) -> None:
        if tag != "entry":
            return
        risk = self._brackets
        if risk.stop_loss is None and risk.take_profit is None and risk.trailing_stop is None:
            return
        pos = ctx.position(fill.symbol)
        qty = abs(pos)
        px = fill.price
        long = pos > 0
        exit_side = OrderSide.SELL if long else OrderSide.BUY
        self._groups += 1
        group = f"bracket-{self._groups}"
        if risk.stop_loss is not None:
            stop = px - px * risk.stop_loss if long else px + px * risk.stop_loss
            ctx.submit(
                fill.symbol, exit_side, qty, type=OrderType.STOP, stop_price=stop,
                reduce_only=True, tag="stop_loss", group=group,
            )  # fmt: skip
        if risk.trailing_stop is not None:
            ctx.submit(
                fill.symbol, exit_side, qty, type=OrderType.TRAILING_STOP, trail=risk.trailing_stop,
                reduce_only=True, tag="trailing_stop", group=group,
            )  # fmt: skip
        if risk.take_profit is not None:
            target = px + px * risk.take_profit if long else px - px * risk.take_profit
            ctx.submit(
                fill.symbol, exit_side, qty, type=OrderType.TAKE_PROFIT, limit_price=target,
                reduce_only=True, tag="take_profit", group=group,
            )  # fmt: skip
