"""The vectorized engine: one numba pass over the bars per parameter combination.

For signal-based templates (one symbol; long/short entry and exit signals; stop-loss,
take-profit and trailing stop as fractions of the entry price; sizing by a fraction of equity or a
fixed quantity) this kernel produces the same fills, trades and equity as the event-driven
engine running ``TemplateStrategy`` (``engine.backtest`` + ``engine.templated``), to 1e-9: it is
the same conventions written as one loop, and a golden test holds the two together. Why our own
kernel and not vectorbt: the conventions must be exactly the event engine's (so a sweep's winner
behaves the same when deployed), and a loop specialised to them is several times faster.

Per bar ``i`` (see ``engine.execution`` for the matching rules):

1. orders decided at bar ``i - 1``'s close fill at bar ``i``'s open: the close first, then the
   entry (sized on the equity left after the close);
2. an entry's brackets (stop-loss, trailing stop, take-profit, in that order) are matched against
   the rest of bar ``i``, and against later bars from their open;
3. equity is marked at the close;
4. the decision: long -> close on a long exit or a short entry (and reverse); short mirrors;
   flat -> long entry, else short entry. An entry signal with its own exit signal is ignored.

``sweep`` runs many combinations on worker threads (the kernel releases the GIL), keeping one
equity buffer per thread, so a 1,000-combination sweep on 1M bars needs megabytes, not gigabytes.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import numba as nb
import numpy as np
import numpy.typing as npt

from algotrendy.core.market import F64, Bars
from algotrendy.engine.result import RunResult, Trades

B8 = npt.NDArray[np.bool_]
NAN = math.nan
TRADE_COLUMNS = 11
"""side, qty, entry_i, exit_i, entry_px, exit_px, fees, pnl, ret, reason, entry_fee."""
REASONS = ("exit", "stop_loss", "trailing_stop", "take_profit")
STAT_NAMES = (
    "total_return",
    "annualized_return",
    "volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "calmar_ratio",
    "number_of_trades",
    "win_rate",
    "profit_factor",
    "exposure",
    "final_equity",
)


@dataclass(frozen=True, slots=True)
class VectorConfig:
    """Costs and risk for the kernel (floats; NaN = not used)."""

    initial_capital: float = 100_000.0
    fee_rate: float = 0.0
    slippage: float = 0.0
    fee_fixed: float = 0.0
    lot_size: float = 0.0
    leverage: float = 1.0
    fixed_quantity: float = NAN
    """Units per entry; NaN: size by the ``fraction`` array instead."""
    stop_loss: float = NAN
    take_profit: float = NAN
    trailing_stop: float = NAN


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _floor_lot(q: float, lot: float) -> float:
    if lot <= 0.0:
        return q
    return math.floor(q / lot + 1e-9) * lot


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _kernel(
    o: F64, h: F64, lo: F64, c: F64,
    le: B8, lx: B8, se: B8, sx: B8, frac: F64,
    fixed_qty: float, fee_rate: float, slip: float, fee_fixed: float, lot: float, lev: float,
    cash0: float, sl: float, tp: float, trail: float,
    eq_out: F64, cash_out: F64, expo_out: F64, tr: F64, stats: bool,
) -> tuple[int, float, float, int, float, float, float, float, int]:  # fmt: skip
    n = len(c)
    # running sums for the sweep's statistics (see ``curve_stats``): no second pass over equity
    acc_s = 0.0
    acc_s2 = 0.0
    acc_down = 0.0
    acc_mdd = 0.0
    acc_held = 0
    prev_eq = cash0
    peak = cash0
    cash = cash0
    pos = 0.0
    avg = 0.0
    entry_fees = 0.0
    entry_i = -1
    fees = 0.0
    traded = 0.0
    n_tr = 0
    n_orders = 0
    p_close = False
    p_entry = 0  # +1 long, -1 short
    p_frac = 0.0
    sl_px = NAN
    tp_px = NAN
    best = NAN
    for i in range(n):
        fresh = False
        # 1. market orders from the previous close
        if p_close and pos != 0.0:
            raw = o[i]
            px = raw - raw * slip if pos > 0.0 else raw + raw * slip
            q = abs(pos)
            fee = q * px * fee_rate + fee_fixed
            notional = q * px
            if pos > 0.0:
                cash += notional - fee
            else:
                cash -= notional + fee
            fees += fee
            traded += notional
            n_tr = _record(tr, n_tr, pos, avg, entry_fees, entry_i, i, px, fee, q, 0)
            pos = 0.0
            avg = 0.0
            entry_fees = 0.0
            sl_px = NAN
            tp_px = NAN
            best = NAN
        p_close = False
        if p_entry != 0:
            raw = o[i]
            px = raw + raw * slip if p_entry > 0 else raw - raw * slip
            equity = cash + pos * raw if pos != 0.0 else cash
            if math.isnan(fixed_qty):
                q = 0.0
                if equity > 0.0 and px > 0.0 and p_frac > 0.0:
                    q = _floor_lot(p_frac * equity / (px * (1.0 + fee_rate)), lot)
            else:
                q = fixed_qty
            if p_entry > 0:
                limit = (cash + (lev - 1.0) * equity - fee_fixed) / (px * (1.0 + fee_rate))
            else:
                limit = (lev * equity - 0.0) / px
            if q > limit:
                q = max(0.0, _floor_lot(limit, lot))
            if q > 0.0:
                fee = q * px * fee_rate + fee_fixed
                notional = q * px
                if p_entry > 0:
                    cash -= notional + fee
                else:
                    cash += notional - fee
                fees += fee
                traded += notional
                avg = (0.0 * 0.0 + px * q) / q
                pos = q if p_entry > 0 else -q
                entry_fees = 0.0 + fee
                entry_i = i
                fresh = True
                if p_entry > 0:
                    sl_px = px - px * sl
                    tp_px = px + px * tp
                else:
                    sl_px = px + px * sl
                    tp_px = px - px * tp
                best = px
                n_orders += (not math.isnan(sl)) + (not math.isnan(tp)) + (not math.isnan(trail))
            p_entry = 0
        # 2. brackets: stop-loss, trailing stop, take-profit
        if pos != 0.0:
            at_open = not fresh
            long = pos > 0.0
            hit = False
            raw = 0.0
            reason = 0
            if not math.isnan(sl):
                if long:
                    if at_open and o[i] <= sl_px:
                        raw, hit = o[i], True
                    elif lo[i] <= sl_px:
                        raw, hit = sl_px, True
                elif at_open and o[i] >= sl_px:
                    raw, hit = o[i], True
                elif h[i] >= sl_px:
                    raw, hit = sl_px, True
                if hit:
                    reason = 1
            if not hit and not math.isnan(trail):
                level = best - best * trail if long else best + best * trail
                if long:
                    if at_open and o[i] <= level:
                        raw, hit = o[i], True
                    elif lo[i] <= level:
                        raw, hit = level, True
                elif at_open and o[i] >= level:
                    raw, hit = o[i], True
                elif h[i] >= level:
                    raw, hit = level, True
                if hit:
                    reason = 2
                elif long:
                    best = max(best, h[i])
                else:
                    best = min(best, lo[i])
            px = 0.0
            if hit:
                px = raw - raw * slip if long else raw + raw * slip
            elif not math.isnan(tp):
                if long:
                    if at_open and o[i] >= tp_px:
                        px, hit = o[i], True
                    elif h[i] >= tp_px:
                        px, hit = tp_px, True
                elif at_open and o[i] <= tp_px:
                    px, hit = o[i], True
                elif lo[i] <= tp_px:
                    px, hit = tp_px, True
                if hit:
                    reason = 3
            if hit:
                q = abs(pos)
                fee = q * px * fee_rate + fee_fixed
                notional = q * px
                if long:
                    cash += notional - fee
                else:
                    cash -= notional + fee
                fees += fee
                traded += notional
                n_tr = _record(tr, n_tr, pos, avg, entry_fees, entry_i, i, px, fee, q, reason)
                pos = 0.0
                avg = 0.0
                entry_fees = 0.0
        # 3. mark to the close
        value = 0.0
        gross = 0.0
        if pos != 0.0:
            value = pos * c[i]
            gross = abs(value)
        eq = cash + value
        eq_out[i] = eq
        cash_out[i] = cash
        expo_out[i] = gross / eq if eq > 0.0 else 0.0
        if stats:  # a sweep's running sums (a single run computes metrics from the curve)
            if gross > 0.0 and eq > 0.0:
                acc_held += 1
            if eq != prev_eq:  # flat and unchanged: a zero return changes none of the sums
                r = eq / prev_eq - 1.0 if prev_eq != 0.0 else 0.0
                prev_eq = eq
                acc_s += r
                acc_s2 += r * r
                neg = min(r, 0.0)  # branch-free: a return's sign is a coin flip for the predictor
                acc_down += neg * neg
                if eq > peak:
                    peak = eq
                elif eq < peak * (1.0 + acc_mdd) and peak > 0.0:  # deeper: divide only then
                    acc_mdd = eq / peak - 1.0
        # 4. decide
        if pos > 0.0:
            if lx[i] or se[i]:
                p_close = True
                n_orders += 1
                if se[i]:
                    p_entry = -1
        elif pos < 0.0:
            if sx[i] or le[i]:
                p_close = True
                n_orders += 1
                if le[i]:
                    p_entry = 1
        elif le[i]:
            p_entry = 1
        elif se[i]:
            p_entry = -1
        if p_entry != 0:
            p_frac = frac[i]
            if math.isnan(fixed_qty) and not p_frac > 0.0:
                p_entry = 0  # no size (volatility not defined yet): no order
            else:
                n_orders += 1
    return n_tr, fees, traded, n_orders, acc_s, acc_s2, acc_down, acc_mdd, acc_held


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _record(
    tr: F64, k: int, pos: float, avg: float, entry_fees: float, entry_i: int, i: int,
    px: float, fee: float, q: float, reason: int,
) -> int:  # fmt: skip
    closing = q
    exit_fee = fee * closing / q
    entry_fee = entry_fees * closing / abs(pos)
    gross = (px - avg) * closing
    pnl = (gross if pos > 0.0 else -gross) - entry_fee - exit_fee
    if k < tr.shape[0]:
        tr[k, 0] = 1.0 if pos > 0.0 else -1.0
        tr[k, 1] = closing
        tr[k, 2] = entry_i
        tr[k, 3] = i
        tr[k, 4] = avg
        tr[k, 5] = px
        tr[k, 6] = entry_fee + exit_fee
        tr[k, 7] = pnl
        notional = avg * closing
        tr[k, 8] = pnl / notional if notional != 0.0 else 0.0
        tr[k, 9] = reason
        tr[k, 10] = entry_fee
    return k + 1


def run(
    bars: Bars,
    long_entry: B8,
    long_exit: B8,
    short_entry: B8,
    short_exit: B8,
    fraction: F64,
    config: VectorConfig,
    *,
    symbol: str = "",
    warmup: int = 0,
) -> RunResult:
    """One vectorized backtest with its trade list. Signal arrays are bar-aligned booleans."""
    n = len(bars)
    le, lx, se, sx = _clean_signals(long_entry, long_exit, short_entry, short_exit, n)
    frac = np.ascontiguousarray(fraction, dtype=np.float64)
    eq = np.empty(n, dtype=np.float64)
    cash = np.empty(n, dtype=np.float64)
    expo = np.empty(n, dtype=np.float64)
    capacity = int(np.count_nonzero(le | se)) + 1
    tr = np.empty((capacity, TRADE_COLUMNS), dtype=np.float64)
    cfg = config
    n_tr, fees, traded, n_orders, *_ = _kernel(
        *_ohlc(bars), le, lx, se, sx, frac,
        cfg.fixed_quantity, cfg.fee_rate, cfg.slippage, cfg.fee_fixed, cfg.lot_size, cfg.leverage,
        cfg.initial_capital, cfg.stop_loss, cfg.take_profit, cfg.trailing_stop,
        eq, cash, expo, tr, False,
    )  # fmt: skip
    t = tr[:n_tr]
    trades = Trades(
        symbol=np.zeros(n_tr, dtype=np.int64),
        side=t[:, 0].astype(np.int64),
        quantity=t[:, 1].copy(),
        entry_index=t[:, 2].astype(np.int64),
        exit_index=t[:, 3].astype(np.int64),
        entry_price=t[:, 4].copy(),
        exit_price=t[:, 5].copy(),
        fees=t[:, 6].copy(),
        pnl=t[:, 7].copy(),
        ret=t[:, 8].copy(),
        exit_reason=[REASONS[int(r)] for r in t[:, 9]],
    )
    mean_eq = float(np.mean(eq)) if n else 0.0
    return RunResult(
        symbols=(symbol,),
        ts=bars.ts,
        equity=eq,
        cash=cash,
        exposure=expo,
        trades=trades,
        initial_capital=cfg.initial_capital,
        fees_paid=fees,
        turnover=traded / mean_eq if mean_eq > 0 else 0.0,
        orders=n_orders,
        warmup=warmup,
    )


def _ohlc(bars: Bars) -> tuple[F64, F64, F64, F64]:
    return (
        np.ascontiguousarray(bars.open, dtype=np.float64),
        np.ascontiguousarray(bars.high, dtype=np.float64),
        np.ascontiguousarray(bars.low, dtype=np.float64),
        np.ascontiguousarray(bars.close, dtype=np.float64),
    )


def _clean_signals(le: B8, lx: B8, se: B8, sx: B8, n: int) -> tuple[B8, B8, B8, B8]:
    """Entries that coincide with their own exit are dropped (see the module docstring)."""
    for name, a in (("long_entry", le), ("long_exit", lx), ("short_entry", se), ("short_exit", sx)):
        if len(a) != n:
            raise ValueError(f"{name} has {len(a)} values, the bars have {n}")
    lx_ = np.ascontiguousarray(lx, dtype=np.bool_)
    sx_ = np.ascontiguousarray(sx, dtype=np.bool_)
    le_ = np.ascontiguousarray(le, dtype=np.bool_) & ~lx_
    se_ = np.ascontiguousarray(se, dtype=np.bool_) & ~sx_
    return le_, lx_, se_, sx_


# ---- sweeps ----------------------------------------------------------------------------------


@nb.njit(cache=True, nogil=True, error_model="numpy")
def curve_stats(eq: F64, tr: F64, n_tr: int, expo: F64, cash0: float, ppy: float, years: float) -> F64:
    """The ``STAT_NAMES`` of one run, from its equity curve and trade rows (NaN: undefined).

    Same definitions as ``engine.metrics``: one return per bar counted from the capital, sample
    std with ddof=1, Sortino's downside deviation the root mean square of the negative returns
    over all bars. The kernel keeps the same running sums itself, so a sweep skips this pass."""
    n = len(eq)
    if n == 0:
        return np.full(len(STAT_NAMES), np.nan)
    s = 0.0
    s2 = 0.0
    down = 0.0
    prev = cash0
    peak = cash0
    mdd = 0.0
    held = 0
    for i in range(n):
        r = eq[i] / prev - 1.0 if prev != 0.0 else 0.0
        prev = eq[i]
        s += r
        s2 += r * r
        neg = min(r, 0.0)
        down += neg * neg
        if eq[i] > peak:
            peak = eq[i]
        elif peak > 0.0:
            mdd = min(mdd, eq[i] / peak - 1.0)
        if expo[i] > 0.0:
            held += 1
    return _stats(eq[n - 1], n, s, s2, down, mdd, held, tr, n_tr, cash0, ppy, years)


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _stats(
    final: float, n: int, s: float, s2: float, down: float, mdd: float, held: int,
    tr: F64, n_tr: int, cash0: float, ppy: float, years: float,
) -> F64:  # fmt: skip
    out = np.full(len(STAT_NAMES), np.nan)
    out[0] = final / cash0 - 1.0
    if years > 0.0 and final > 0.0:
        out[1] = (final / cash0) ** (1.0 / years) - 1.0
    mean = s / n
    if n > 1:
        var = (s2 - n * mean * mean) / (n - 1)
        if var > 1e-30:
            out[2] = math.sqrt(var) * math.sqrt(ppy)
            out[3] = mean / math.sqrt(var) * math.sqrt(ppy)
    if down > 0.0:
        out[4] = mean / math.sqrt(down / n) * math.sqrt(ppy)
    out[5] = mdd
    if mdd < 0.0 and not math.isnan(out[1]):
        out[6] = out[1] / abs(mdd)
    out[7] = n_tr
    if n_tr > 0:
        wins = 0
        gp = 0.0
        gl = 0.0
        for k in range(n_tr):
            p = tr[k, 7]
            if p > 0.0:
                wins += 1
                gp += p
            else:
                gl -= p
        out[8] = wins / n_tr
        if gl > 0.0:
            out[9] = gp / gl
    out[10] = held / n
    out[11] = final
    return out


SweepInput = tuple[B8, B8, B8, B8, F64, VectorConfig]
"""What ``make(k)`` returns for combination ``k``: the four signal arrays, the sizing fractions
and the costs/risk."""


def sweep(
    bars: Bars,
    count: int,
    make: Callable[[int], SweepInput],
    *,
    periods_per_year: float,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
    out: F64 | None = None,
) -> F64:
    """Run ``count`` combinations; returns a ``(count, len(STAT_NAMES))`` array of stats
    (``out`` when given: a caller that keeps it has the rows finished before an exception).

    ``make(k)`` builds combination ``k``'s signals (numpy, from cached indicators); it and the
    kernel run on ``workers`` threads (default: one per core), each with its own buffers.
    ``progress(done)`` is called from the calling thread as combinations finish; an exception it
    raises (a cancelled job) stops the sweep.
    """
    n = len(bars)
    years = n / periods_per_year  # as engine.metrics: one return per bar, counted from the capital
    ohlc = _ohlc(bars)
    table: F64 = np.full((count, len(STAT_NAMES)), np.nan) if out is None else out
    workers = workers or os.cpu_count() or 1
    local = threading.local()

    def one(k: int) -> int:
        if not hasattr(local, "eq"):
            local.eq = np.empty(n, dtype=np.float64)
            local.cash = np.empty(n, dtype=np.float64)
            local.expo = np.empty(n, dtype=np.float64)
            local.tr = np.empty((0, TRADE_COLUMNS), dtype=np.float64)
        le, lx, se, sx, frac, cfg = make(k)
        le, lx, se, sx = _clean_signals(le, lx, se, sx, n)
        need = int(np.count_nonzero(le | se)) + 1
        if local.tr.shape[0] < need:
            local.tr = np.empty((need, TRADE_COLUMNS), dtype=np.float64)
        n_tr, _, _, _, acc_s, acc_s2, acc_down, acc_mdd, acc_held = _kernel(
            *ohlc, le, lx, se, sx, np.ascontiguousarray(frac, dtype=np.float64),
            cfg.fixed_quantity, cfg.fee_rate, cfg.slippage, cfg.fee_fixed, cfg.lot_size, cfg.leverage,
            cfg.initial_capital, cfg.stop_loss, cfg.take_profit, cfg.trailing_stop,
            local.eq, local.cash, local.expo, local.tr, True,
        )  # fmt: skip
        table[k] = _stats(
            local.eq[n - 1], n, acc_s, acc_s2, acc_down, acc_mdd, acc_held, local.tr, n_tr,
            cfg.initial_capital, periods_per_year, years,
        )  # fmt: skip
        return k

    if workers <= 1 or count <= 1:
        for k in range(count):
            one(k)
            if progress is not None:
                progress(k + 1)
        return table
    done = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sweep") as pool:
        futures = [pool.submit(one, k) for k in range(count)]
        try:
            for f in as_completed(futures):
                f.result()
                done += 1
                if progress is not None:
                    progress(done)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return table
