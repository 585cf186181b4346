"""What a backtest produces, whichever engine ran it: the equity curve and the round-trip trades.

Both engines (event-driven ``engine.backtest`` and vectorized ``engine.vector``) return a
``RunResult``; ``engine.metrics`` turns it into numbers. Arrays, not objects: a sweep keeps
thousands of these.

Conventions: ``equity[i]`` is cash plus positions marked at bar ``i``'s close, after everything
that happened during bar ``i`` (fills on its open, stops inside it). A trade is one round trip
of one symbol: from the fill that opened a position to the fill that closed it (a partial close
makes a trade for the part closed). ``pnl`` is net of both sides' fees; ``ret`` is ``pnl``
divided by the entry notional.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from algotrendy.core.market import F64, I64

B8 = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Trades:
    """Round trips as columns (all the same length). ``side`` is +1 long, -1 short; ``symbol``
    indexes ``RunResult.symbols``; indices are bar indices into the run's timeline."""

    symbol: I64
    side: I64
    quantity: F64
    entry_index: I64
    exit_index: I64
    entry_price: F64
    exit_price: F64
    fees: F64
    pnl: F64
    ret: F64
    exit_reason: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pnl)

    @classmethod
    def empty(cls) -> Trades:
        i = np.empty(0, dtype=np.int64)
        f = np.empty(0, dtype=np.float64)
        return cls(i, i.copy(), f, i.copy(), i.copy(), f.copy(), f.copy(), f.copy(), f.copy(), f.copy(), [])


@dataclass(frozen=True, slots=True)
class RunResult:
    """One backtest run on a common timeline ``ts`` (int64 ns UTC)."""

    symbols: tuple[str, ...]
    ts: I64
    equity: F64
    cash: F64
    exposure: F64
    """Gross position value / equity at each bar's close (0 when flat, 1 when all in)."""
    trades: Trades
    initial_capital: float
    fees_paid: float
    turnover: float
    """Traded notional over the run divided by the mean equity."""
    orders: int = 0
    warmup: int = 0
    """Leading bars before the strategy could first act (indicator warm-up)."""
