"""The live shell: a deployed ``Strategy`` run bar by bar, with the backtester's decision path.

``LiveShell`` is the ``Context`` a strategy sees when it trades on the paper broker or live. It is
pure and synchronous: the trading service does all the I/O (bar feed, broker, persistence) and
calls in with what happened; the shell answers with the ``Command``s the strategy issued. The
strategy code is the very code ``EventBacktest`` runs, called in the same order, so the same bars
and the same account give the same orders (``tests/unit/engine/test_live_parity.py`` replays real
sample bars through both and compares them order by order)::

    shell = LiveShell(strategy, ("BTCUSDT",), history={"BTCUSDT": closed_bars})
    commands = shell.start(account)                      # on_data(history), on_start
    commands = shell.on_bar("BTCUSDT", ts, o, h, l, c, v, account)   # each closed bar
    commands = shell.on_fill(fill, tag, account)         # each execution (brackets come from here)
    commands = shell.on_reject(local_id, reason, account)

What the service owes the shell:

- ``account`` (``AccountState``) on every call: equity, cash, signed positions and every order of
  this deployment that is not final, by local id (including ones submitted but not yet
  acknowledged). ``ctx.position``/``equity``/``cash`` answer from it; ``ctx.cancel`` and
  ``ctx.cancel_all`` only cancel what it lists (or what was submitted earlier in the same call).
- Commands executed in the order returned. ``Submit.fraction`` is sized at the fill price as the
  simulated venue does (``engine.execution.size_fraction`` on the equity at the fill); a
  ``Submit`` with ``reduce_only`` never adds exposure.
- Local ids (``"L1"``, ``"L2"`` ...) are deterministic: a shell rebuilt from the same history and
  fed the same calls issues the same ids, so the service maps them to its platform orders. A
  shell that replaces one after a restart continues the numbering (``next_id``).

The time-step rule. One call to ``on_bars`` (``on_bar`` for one symbol) is one time step at
``ts``, the open time of the bars that just closed (bars are labelled by their open time, as
everywhere in the platform). The step appends each symbol's bar to its history, calls
``on_data(symbol, bars)`` for every symbol whose bars changed (in the shell's symbol order), then
``on_bar(ctx)`` once, just as ``EventBacktest`` does for one timestamp of its timeline.
``ctx.has_bar(s)`` is true for the symbols whose latest bar has this ``ts``, so a multi-symbol
strategy sees the same holes as in a backtest provided the service hands over every bar of one
timestamp in one ``on_bars`` call. A bar of a symbol that arrives later for the same ``ts`` (a
straggler) is still taken: it makes another step at that ``ts``, in which the earlier symbols
still have ``has_bar`` true.

A bar is stale, refused (``[]``, nothing called) and counted in ``stale``, when its ``ts`` is not
after that symbol's last bar (a duplicate or a replay) or is before the current step's ``ts``
(time never goes back). History is kept to the last ``max_bars`` bars per symbol, the oldest
dropped first; ``on_data`` always gets the window as it is after the append and
``ctx.index(s)`` is the last position in that window (``len - 1``), so an index a strategy
computed from ``on_data`` is always valid. Windows are read-only views into a buffer that is
reallocated, never overwritten, when full: bars a strategy kept from an earlier call stay intact.

Where live differs from a backtest, by nature: ``on_data`` gets the bars up to now (the
backtest gives the whole series once: the same thing for causal indicators; once the window is
trimmed to ``max_bars``, only for indicators whose lookback it covers, as an EMA's seed moves
with the window's start); state a strategy keeps in itself (a step counter) starts when the shell
starts; in ``on_start`` the history is already there (``index`` is its last bar, the backtest's
is -1); during ``on_fill`` the current bar is the last closed one (the backtest has already
advanced to the bar being filled, whose close lies in the future). A trailing stop's starting
best price is the one the simulated venue would use (``Submit.trail_from``); a venue that trails
from its own market may differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np

from algotrendy.core.market import Bars
from algotrendy.engine.orders import Fill, Order, OrderSide, OrderType, TimeInForce
from algotrendy.engine.strategy import Strategy, check_order_args, close_order


@dataclass(frozen=True, slots=True)
class AccountState:
    """The account as the service knows it when it calls: what ``ctx.position``, ``ctx.equity``
    and ``ctx.cash`` answer. ``open_orders`` maps each local id not yet final to
    ``(symbol, tag)``."""

    equity: float
    cash: float
    positions: Mapping[str, float] = field(default_factory=dict)
    open_orders: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def flat(cls, cash: float) -> AccountState:
        """No positions, no orders: equity is the cash."""
        return cls(equity=cash, cash=cash)


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed bar of one symbol (its open time is the step's ``ts``)."""

    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


@dataclass(frozen=True, slots=True)
class Submit:
    """Place an order: ``quantity`` units, or ``fraction`` of equity sized at the fill price."""

    local_id: str
    symbol: str
    side: OrderSide
    quantity: float | None
    fraction: float | None
    type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    trail: float | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    tag: str = ""
    group: str | None = None
    trail_from: float | None = None
    """A trailing stop's starting best price, as the simulated venue starts it: the fill price
    when placed from ``on_fill``, else the last close (``None`` for other orders)."""


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel one order (a no-op at the venue if it filled meanwhile)."""

    local_id: str


@dataclass(frozen=True, slots=True)
class CancelAll:
    """Cancel every open order of ``symbol`` placed before this command."""

    symbol: str


Command: TypeAlias = Submit | Cancel | CancelAll


class _Window:
    """One symbol's last ``max_bars`` bars in a buffer of twice that size; appends are O(1)
    amortized, and a full buffer is replaced (not overwritten) so earlier views stay valid."""

    __slots__ = ("_bars", "_cols", "_end", "_max", "_start", "_ts", "last_close", "last_ts")

    def __init__(self, history: Bars, max_bars: int) -> None:
        self._max = max_bars
        n = min(len(history), max_bars)
        cap = 2 * max_bars
        self._ts = np.empty(cap, dtype=np.int64)
        self._cols = np.empty((5, cap), dtype=np.float64)
        first = len(history) - n
        self._ts[:n] = history.ts[first:]
        for k, col in enumerate((history.open, history.high, history.low, history.close, history.volume)):
            self._cols[k, :n] = col[first:]
        if n > 1 and bool(np.any(np.diff(self._ts[:n]) <= 0)):
            raise ValueError("history timestamps must be strictly increasing")
        self._start = 0
        self._end = n
        self.last_ts: int | None = int(self._ts[n - 1]) if n else None
        self.last_close = float(self._cols[3, n - 1]) if n else math.nan
        self._bars: Bars | None = None

    def __len__(self) -> int:
        return self._end - self._start

    def append(self, ts: int, bar: Bar) -> None:
        if self._end == len(self._ts):
            keep = min(self._end - self._start, self._max - 1)
            ts_buf = np.empty_like(self._ts)
            cols = np.empty_like(self._cols)
            ts_buf[:keep] = self._ts[self._end - keep : self._end]
            cols[:, :keep] = self._cols[:, self._end - keep : self._end]
            self._ts, self._cols = ts_buf, cols
            self._start, self._end = 0, keep
        e = self._end
        self._ts[e] = ts
        self._cols[:, e] = (bar.open, bar.high, bar.low, bar.close, bar.volume)
        self._end = e + 1
        if self._end - self._start > self._max:
            self._start = self._end - self._max
        self.last_ts = ts
        self.last_close = float(bar.close)
        self._bars = None

    def bars(self) -> Bars:
        """The window as read-only ``Bars`` (the same object until the next append)."""
        if self._bars is None:
            s, e = self._start, self._end
            ts = self._ts[s:e]
            ts.flags.writeable = False
            cols = [self._cols[k, s:e] for k in range(5)]
            for col in cols:
                col.flags.writeable = False
            self._bars = Bars(ts, *cols)
        return self._bars


class LiveShell:
    """Run ``strategy`` on live bars; each call returns the commands it issued (see the module)."""

    def __init__(
        self,
        strategy: Strategy,
        symbols: Sequence[str],
        *,
        history: Mapping[str, Bars] | None = None,
        max_bars: int = 5000,
        next_id: int = 1,
    ) -> None:
        if not symbols:
            raise ValueError("no symbols: give at least one")
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"symbols repeat: {', '.join(symbols)}")
        if max_bars < 1:
            raise ValueError(f"max_bars must be at least 1, got {max_bars}")
        if next_id < 1:
            raise ValueError(f"next_id must be at least 1, got {next_id}")
        history = history or {}
        unknown = sorted(set(history) - set(symbols))
        if unknown:
            raise ValueError(f"history of symbols the shell does not trade: {', '.join(unknown)}")
        foreign = sorted(set(strategy.symbols) - set(symbols))
        if foreign:
            raise ValueError(f"the strategy trades symbols the shell was not given: {', '.join(foreign)}")
        self.strategy = strategy
        self._symbols = tuple(symbols)
        self._windows = {s: _Window(history.get(s, Bars.empty()), max_bars) for s in self._symbols}
        known = [w.last_ts for w in self._windows.values() if w.last_ts is not None]
        self._now = max(known) if known else 0
        self._account = AccountState.flat(0.0)
        self._issued = next_id - 1
        self._out: list[Command] | None = None
        self._pending: dict[str, str] = {}
        self._cancelled: set[str] = set()
        self._fill_price: float | None = None
        self._started = False
        self.stale = 0
        """Bars refused: not after their symbol's last bar, or before the current step."""
        self.steps = 0
        """Time steps taken (``on_bar`` calls made to the strategy)."""

    @property
    def next_id(self) -> int:
        """The number of the next local id (``L<next_id>``): persist it, and give it back to the
        shell that replaces this one after a restart, so ids never repeat."""
        return self._issued + 1

    # ---- driven by the service ----------------------------------------------------------------

    def start(self, account: AccountState | None = None) -> list[Command]:
        """``on_data`` for every symbol with history, then ``on_start``; once, before any bar."""
        if self._started:
            raise RuntimeError("the shell has already started")
        self._started = True

        def run() -> None:
            for s in self._symbols:
                w = self._windows[s]
                if len(w):
                    self.strategy.on_data(s, w.bars())
            self.strategy.on_start(self)

        return self._collect(account or AccountState.flat(0.0), run)

    def on_bar(
        self,
        symbol: str,
        ts: int,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        account: AccountState,
    ) -> list[Command]:
        """One closed bar of one symbol: a time step at ``ts`` (``[]`` if the bar is stale)."""
        return self.on_bars(ts, {symbol: Bar(open, high, low, close, volume)}, account)

    def on_bars(self, ts: int, bars: Mapping[str, Bar], account: AccountState) -> list[Command]:
        """The bars of every symbol that closed at ``ts``: one time step (stale bars are skipped;
        ``[]`` and no step if all are)."""
        if not self._started:
            raise RuntimeError("call start() before feeding bars")
        ts = int(ts)
        fresh: list[str] = []
        for s in bars:
            last = self._window(s).last_ts
            if ts < self._now or (last is not None and ts <= last):
                self.stale += 1
            else:
                fresh.append(s)
        if not fresh:
            return []
        for s in fresh:
            self._windows[s].append(ts, bars[s])
        self._now = ts
        self.steps += 1
        changed = [s for s in self._symbols if s in fresh]

        def run() -> None:
            for s in changed:
                self.strategy.on_data(s, self._windows[s].bars())
            self.strategy.on_bar(self)

        return self._collect(account, run)

    def on_fill(self, fill: Fill[float], tag: str, account: AccountState) -> list[Command]:
        """An execution of one of this shell's orders (``fill.order_id`` is its local id);
        ``account`` already includes it."""
        self._fill_price = float(fill.price)
        try:
            return self._collect(account, lambda: self.strategy.on_fill(self, fill, tag))
        finally:
            self._fill_price = None

    def on_reject(self, local_id: str, reason: str, account: AccountState) -> list[Command]:
        """An order the venue or risk refused."""
        return self._collect(account, lambda: self.strategy.on_reject(self, local_id, reason))

    def bars(self, symbol: str) -> Bars:
        """``symbol``'s history window as the strategy last saw it (read-only)."""
        return self._window(symbol).bars()

    # ---- Context ------------------------------------------------------------------------------

    @property
    def ts(self) -> int:
        return self._now

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    def index(self, symbol: str) -> int:
        return len(self._window(symbol)) - 1

    def has_bar(self, symbol: str) -> bool:
        last = self._window(symbol).last_ts
        return last is not None and last == self._now

    def price(self, symbol: str) -> float:
        return self._window(symbol).last_close

    def position(self, symbol: str) -> float:
        self._window(symbol)
        return float(self._account.positions.get(symbol, 0.0))

    @property
    def equity(self) -> float:
        return self._account.equity

    @property
    def cash(self) -> float:
        return self._account.cash

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
        out = self._collecting()
        check_order_args(symbol, self._symbols, quantity, fraction)
        local_id = f"L{self._issued + 1}"
        qty = float(quantity) if quantity is not None else None
        # the engine's own order checks (prices a type needs, no negative quantity)
        Order(
            id=local_id,
            symbol=symbol,
            side=side,
            type=type,
            quantity=qty if qty is not None else 0.0,
            limit_price=limit_price,
            stop_price=stop_price,
            trail=trail,
            time_in_force=time_in_force,
            reduce_only=reduce_only,
            tag=tag,
            group=group,
            equity_fraction=fraction,
        )
        self._issued += 1
        trail_from = None
        if type is OrderType.TRAILING_STOP and trail is not None:
            fill_price = self._fill_price
            trail_from = fill_price if fill_price is not None else self.price(symbol)
        out.append(
            Submit(
                local_id=local_id,
                symbol=symbol,
                side=side,
                quantity=qty,
                fraction=fraction,
                type=type,
                limit_price=limit_price,
                stop_price=stop_price,
                trail=trail,
                time_in_force=time_in_force,
                reduce_only=reduce_only,
                tag=tag,
                group=group,
                trail_from=trail_from,
            )
        )
        self._pending[local_id] = symbol
        return local_id

    def buy(
        self, symbol: str, quantity: float | None = None, *, fraction: float | None = None, tag: str = "entry"
    ) -> str:
        return self.submit(symbol, OrderSide.BUY, quantity, fraction=fraction, tag=tag)

    def sell(
        self, symbol: str, quantity: float | None = None, *, fraction: float | None = None, tag: str = "entry"
    ) -> str:
        return self.submit(symbol, OrderSide.SELL, quantity, fraction=fraction, tag=tag)

    def close(self, symbol: str, *, tag: str = "exit") -> str | None:
        order = close_order(self.position(symbol))
        if order is None:
            return None
        side, qty = order
        return self.submit(symbol, side, qty, reduce_only=True, tag=tag)

    def cancel(self, order_id: str) -> None:
        out = self._collecting()
        if order_id in self._cancelled:
            return
        if order_id in self._pending or order_id in self._account.open_orders:
            self._pending.pop(order_id, None)
            self._cancelled.add(order_id)
            out.append(Cancel(order_id))

    def cancel_all(self, symbol: str) -> None:
        out = self._collecting()
        self._window(symbol)
        ids = [i for i, s in self._pending.items() if s == symbol]
        ids += [
            i for i, (s, _) in self._account.open_orders.items() if s == symbol and i not in self._cancelled
        ]
        if not ids:
            return
        for i in ids:
            self._pending.pop(i, None)
            self._cancelled.add(i)
        out.append(CancelAll(symbol))

    # ---- internals ----------------------------------------------------------------------------

    def _window(self, symbol: str) -> _Window:
        w = self._windows.get(symbol)
        if w is None:
            raise ValueError(f"unknown symbol {symbol!r}; this shell trades {', '.join(self._symbols)}")
        return w

    def _collecting(self) -> list[Command]:
        if self._out is None:
            raise RuntimeError("orders are placed from the strategy's callbacks only")
        return self._out

    def _collect(self, account: AccountState, call: Callable[[], None]) -> list[Command]:
        if self._out is not None:
            raise RuntimeError("the shell is already running a callback (re-entrant call)")
        self._account = account
        self._out = []
        self._pending = {}
        self._cancelled = set()
        try:
            call()
            return self._out
        finally:
            self._out = None
