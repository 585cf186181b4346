"""Streaming forms of our own indicators (vwap, supertrend, ichimoku, keltner, donchian, heikin_ashi).

Each does, per bar, the float operations its numba twin in ``kernels.py`` does, in the same order,
so batch and streaming agree bit for bit. Rolling extremes use monotonic deques (O(1) amortised
per bar); everything else is O(1) per bar. ATR and EMA inside SuperTrend and Keltner are TA-Lib's
own streams, as in the batch form.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from algotrendy.core.market import NS_PER_SECOND
from algotrendy.indicators.streaming import ATR, EMA, NAN, StreamingIndicator, rejected

DAY_NS = 86_400 * NS_PER_SECOND


class _Gate:
    """Skips bars before the first complete one; afterwards refuses non-finite bars."""

    __slots__ = ("_name", "started")

    def __init__(self, name: str) -> None:
        self._name = name
        self.started = False

    def admit(self, values: tuple[float, ...]) -> bool:
        if all(math.isfinite(v) for v in values):
            self.started = True
            return True
        if not self.started and any(math.isnan(v) for v in values):
            return False
        raise rejected(self._name, values)


class _Extreme:
    """Max (or min) of the last ``period`` values, by a monotonic deque of (index, value)."""

    __slots__ = ("_dq", "_i", "_is_max", "_period")

    def __init__(self, period: int, *, is_max: bool) -> None:
        self._dq: deque[tuple[int, float]] = deque()
        self._i = 0
        self._period = period
        self._is_max = is_max

    def push(self, v: float) -> float:
        dq = self._dq
        i = self._i
        if self._is_max:
            while dq and dq[-1][1] <= v:
                dq.pop()
        else:
            while dq and dq[-1][1] >= v:
                dq.pop()
        dq.append((i, v))
        if dq[0][0] <= i - self._period:
            dq.popleft()
        self._i = i + 1
        return dq[0][1] if i >= self._period - 1 else NAN


class VWAP(StreamingIndicator):
    """``update(ts, high, low, close, volume, session=None) -> vwap``. Without ``session`` the
    session is the UTC day shifted by ``offset_minutes``; with it, a change of id starts a new one."""

    def __init__(self, offset_minutes: int = 0) -> None:
        self._setup("vwap", {"offset_minutes": offset_minutes})
        self._offset = int(self.params["offset_minutes"]) * 60 * NS_PER_SECOND
        self._session: int | None = None
        self._pv = 0.0
        self._vol = 0.0
        self._gate = _Gate("vwap")

    def update(
        self, ts: int, high: float, low: float, close: float, volume: float, session: int | None = None
    ) -> float:
        if not self._gate.admit((high, low, close, volume)):
            return NAN
        sid = (int(ts) - self._offset) // DAY_NS if session is None else int(session)
        if sid != self._session:
            self._session = sid
            self._pv = 0.0
            self._vol = 0.0
        tp = (high + low + close) / 3.0
        self._pv += tp * volume
        self._vol += volume
        return self._pv / self._vol if self._vol > 0.0 else NAN

    def update_bar(
        self, ts: int, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        return (self.update(ts, high, low, close, volume),)


class SuperTrend(StreamingIndicator):
    """``update(high, low, close) -> (supertrend, supertrend_dir)``."""

    def __init__(self, period: int = 10, multiplier: float = 3.0) -> None:
        self._setup("supertrend", {"period": period, "multiplier": multiplier})
        self._atr = ATR(int(self.params["period"]))
        self._mult = float(self.params["multiplier"])
        self._started = False
        self._upper = 0.0
        self._lower = 0.0
        self._trend = -1.0
        self._prev_close = NAN

    def update(self, high: float, low: float, close: float) -> tuple[float, float]:
        a = self._atr.update(high, low, close)
        if math.isnan(a):  # warming up (or a leading incomplete bar)
            self._prev_close = close
            return NAN, NAN
        hl2 = (high + low) / 2.0
        basic_upper = hl2 + self._mult * a
        basic_lower = hl2 - self._mult * a
        if not self._started:
            self._started = True
            self._upper, self._lower, self._trend = basic_upper, basic_lower, -1.0
        else:
            prev_close = self._prev_close
            if basic_upper < self._upper or prev_close > self._upper:
                self._upper = basic_upper
            if basic_lower > self._lower or prev_close < self._lower:
                self._lower = basic_lower
            if self._trend < 0.0:
                self._trend = 1.0 if close > self._upper else -1.0
            else:
                self._trend = -1.0 if close < self._lower else 1.0
        self._prev_close = close
        return (self._lower if self._trend > 0.0 else self._upper), self._trend

    def update_bar(
        self, ts: int, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        return self.update(high, low, close)


class Keltner(StreamingIndicator):
    """``update(high, low, close) -> (kc_upper, kc_middle, kc_lower)``."""

    def __init__(self, period: int = 20, multiplier: float = 2.0, atr_period: int = 10) -> None:
        self._setup("keltner", {"period": period, "multiplier": multiplier, "atr_period": atr_period})
        self._ema = EMA(int(self.params["period"]))
        self._atr = ATR(int(self.params["atr_period"]))
        self._mult = float(self.params["multiplier"])
        self._gate = _Gate("keltner")

    def update(self, high: float, low: float, close: float) -> tuple[float, float, float]:
        if not self._gate.admit((high, low, close)):
            return NAN, NAN, NAN
        middle = self._ema.update(close)
        width = self._mult * self._atr.update(high, low, close)
        return middle + width, middle, middle - width

    def update_bar(
        self, ts: int, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        return self.update(high, low, close)


class Donchian(StreamingIndicator):
    """``update(high, low) -> (dc_upper, dc_middle, dc_lower)``."""

    def __init__(self, period: int = 20) -> None:
        self._setup("donchian", {"period": period})
        p = int(self.params["period"])
        self._hi = _Extreme(p, is_max=True)
        self._lo = _Extreme(p, is_max=False)
        self._gate = _Gate("donchian")

    def update(self, high: float, low: float) -> tuple[float, float, float]:
        if not self._gate.admit((high, low)):
            return NAN, NAN, NAN
        upper = self._hi.push(high)
        lower = self._lo.push(low)
        return upper, (upper + lower) / 2.0, lower

    def update_bar(
        self, ts: int, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        return self.update(high, low)


class Ichimoku(StreamingIndicator):
    """``update(high, low, close) -> (tenkan, kijun, senkou_a, senkou_b, chikou)``."""

    def __init__(
        self, tenkan_period: int = 9, kijun_period: int = 26, senkou_period: int = 52, displacement: int = 26
    ) -> None:
        self._setup(
            "ichimoku",
            {
                "tenkan_period": tenkan_period,
                "kijun_period": kijun_period,
                "senkou_period": senkou_period,
                "displacement": displacement,
            },
        )
        p = {k: int(v) for k, v in self.params.items()}
        self._ext = [
            (_Extreme(n, is_max=True), _Extreme(n, is_max=False))
            for n in (p["tenkan_period"], p["kijun_period"], p["senkou_period"])
        ]
        self._lag: deque[tuple[float, float]] = deque(maxlen=p["displacement"] + 1)
        self._gate = _Gate("ichimoku")

    def update(self, high: float, low: float, close: float) -> tuple[float, float, float, float, float]:
        if not self._gate.admit((high, low, close)):
            return NAN, NAN, NAN, NAN, NAN
        tenkan, kijun, span_b = ((hi.push(high) + lo.push(low)) / 2.0 for hi, lo in self._ext)
        lag = self._lag
        lag.append(((tenkan + kijun) / 2.0, span_b))
        senkou_a, senkou_b = lag[0] if len(lag) == lag.maxlen else (NAN, NAN)
        return tenkan, kijun, senkou_a, senkou_b, close

    def update_bar(
        self, ts: int, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        return self.update(high, low, close)


class HeikinAshi(StreamingIndicator):
    """``update(open, high, low, close) -> (ha_open, ha_high, ha_low, ha_close)``."""

    def __init__(self) -> None:
        self._setup("heikin_ashi", {})
        self._prev: tuple[float, float] | None = None
        self._gate = _Gate("heikin_ashi")

    def update(self, open: float, high: float, low: float, close: float) -> tuple[float, float, float, float]:
        if not self._gate.admit((open, high, low, close)):
            return NAN, NAN, NAN, NAN
        c = (open + high + low + close) / 4.0
        o = (open + close) / 2.0 if self._prev is None else (self._prev[0] + self._prev[1]) / 2.0
        hi = max(high, o, c)  # max keeps the first unless a later one is greater: the kernel's ifs
        lo = min(low, o, c)
        self._prev = (o, c)
        return o, hi, lo, c

    def update_bar(
        self, ts: int, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        return self.update(open, high, low, close)


CLASSES: dict[str, Callable[..., StreamingIndicator]] = {
    "vwap": VWAP,
    "supertrend": SuperTrend,
    "ichimoku": Ichimoku,
    "keltner": Keltner,
    "donchian": Donchian,
    "heikin_ashi": HeikinAshi,
}
