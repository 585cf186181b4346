"""Streaming indicators: one object per indicator, fed one closed bar at a time, O(1) work per bar.

For everything TA-Lib computes, the state is a ``talib.stream`` handle (TA-Lib >= 0.8): TA-Lib's
own incremental form of the same C function, bit-identical to the batch function. The first bars
are buffered until the handle can open (the indicator's warm-up + 1 bars; a one-off cost), then
each bar is a single C call. Our own indicators (``streaming_own``) keep running sums, ring
buffers and monotonic deques, doing the same float operations as their numba batch twins.

Every object returns what ``catalog.compute`` returns at the same bar: NaN (or a tuple of NaNs)
during the warm-up, then the same values, bit for bit. The contract around missing data matches
the batch one: bars before the first one with every input present are skipped (NaN out, nothing
counted); after that a bar with a NaN or infinite input raises ``ValueError`` and leaves the
state as it was (feed the next good bar).

Use a class directly for the fastest path (``RSI(14).update(close)`` returns a float; multi-output
ones return a tuple in catalog output order), or ``stream(name, **params)`` for any catalog entry,
whose ``update_bar(ts, open, high, low, close, volume)`` always returns a tuple.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import talib
from talib import stream as talib_stream

from algotrendy.indicators.catalog import IndicatorSpec, Number, get_spec

NAN = math.nan
_INSUFFICIENT: type[Exception] = talib.InsufficientHistory  # type: ignore[attr-defined]
_COLUMN_INDEX = {"ts": 0, "open": 1, "high": 2, "low": 3, "close": 4, "volume": 5}


class StreamingIndicator(ABC):
    """Common face of every streaming indicator."""

    spec: IndicatorSpec
    params: dict[str, Number]

    def _setup(self, name: str, params: dict[str, object]) -> None:
        self.spec = get_spec(name)
        self.params = self.spec.resolve(params)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.spec.outputs

    @property
    def warmup(self) -> int:
        return self.spec.warmup(self.params)

    @abstractmethod
    def update_bar(
        self, ts: int, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        """Feed one closed bar; the outputs at that bar, in ``outputs`` order."""

    def peek_bar(
        self, ts: int, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        """What ``update_bar`` would return for this bar, committing nothing: for a bar still
        forming (call it on every revision, then ``update_bar`` once when it closes). This
        generic form works on a copy of the state (constant size: a window at most)."""
        return copy.deepcopy(self).update_bar(ts, open, high, low, close, volume)


def rejected(name: str, values: tuple[float, ...]) -> ValueError:
    return ValueError(
        f"{name}: bar rejected, every input must be finite after the first complete bar "
        f"(got {values}); the state is unchanged"
    )


class _TalibStream(StreamingIndicator):
    """A ``talib.stream`` handle plus the warm-up buffer that precedes it."""

    def __init__(self, name: str, **params: object) -> None:
        self._setup(name, params)
        spec = self.spec
        self._fn: Any = getattr(talib_stream, spec.talib_name or "")
        self._args = spec.args(self.params)
        self._need = spec.warmup(self.params) + 1
        self._width = len(spec.outputs)
        self._empty: tuple[float, ...] = (NAN,) * self._width
        self._pick = tuple(_COLUMN_INDEX[c] for c in spec.inputs)
        self._buffer: list[tuple[float, ...]] = []
        self._handle: Any = None

    def _warm(self, values: tuple[float, ...]) -> tuple[float, ...]:
        """Buffer a warm-up bar; open the TA-Lib handle once there are enough."""
        if not all(math.isfinite(v) for v in values):
            if not self._buffer and any(math.isnan(v) for v in values):
                return self._empty  # before the first complete bar: skipped, as batch skips it
            raise rejected(self.spec.name, values)
        self._buffer.append(values)
        if len(self._buffer) < self._need:
            return self._empty
        columns = [np.array(col, dtype=np.float64) for col in zip(*self._buffer, strict=True)]
        try:
            handle = self._fn(*columns, *self._args)
        except _INSUFFICIENT:
            return self._empty
        self._handle = handle
        self._buffer = []
        return self._as_tuple(handle.value)

    def _as_tuple(self, value: Any) -> tuple[float, ...]:
        if self._width == 1:
            return (float(value),)
        return tuple(float(v) for v in value)

    def _push(self, values: tuple[float, ...]) -> tuple[float, ...]:
        handle = self._handle
        if handle is None:
            return self._warm(values)
        try:
            out = handle.update(*values)
        except Exception as exc:  # TA-Lib refuses a non-finite bar and keeps its state
            raise rejected(self.spec.name, values) from exc
        return self._as_tuple(out)

    def update_bar(
        self, ts: int, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        bar = (ts, open, high, low, close, volume)
        return self._push(tuple(float(bar[i]) for i in self._pick))

    def peek_bar(
        self, ts: int, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        handle = self._handle
        if handle is None:
            return super().peek_bar(ts, open, high, low, close, volume)
        bar = (ts, open, high, low, close, volume)
        values = tuple(float(bar[i]) for i in self._pick)
        try:
            out = handle.peek(*values)  # TA-Lib's own O(1) look-ahead: the handle is unchanged
        except Exception as exc:
            raise rejected(self.spec.name, values) from exc
        return self._as_tuple(out)


class _CloseLine(_TalibStream):
    def update(self, close: float) -> float:
        handle = self._handle
        if handle is None:
            return self._warm((close,))[0]
        try:
            out: float = handle.update(close)
        except Exception as exc:
            raise rejected(self.spec.name, (close,)) from exc
        return out


class _CloseBands(_TalibStream):
    def update(self, close: float) -> tuple[float, ...]:
        handle = self._handle
        if handle is None:
            return self._warm((close,))
        try:
            out: tuple[float, ...] = handle.update(close)
        except Exception as exc:
            raise rejected(self.spec.name, (close,)) from exc
        return out


class _HLCLine(_TalibStream):
    def update(self, high: float, low: float, close: float) -> float:
        handle = self._handle
        if handle is None:
            return self._warm((high, low, close))[0]
        try:
            out: float = handle.update(high, low, close)
        except Exception as exc:
            raise rejected(self.spec.name, (high, low, close)) from exc
        return out


class SMA(_CloseLine):
    def __init__(self, period: int = 20) -> None:
        super().__init__("sma", period=period)


class EMA(_CloseLine):
    def __init__(self, period: int = 20) -> None:
        super().__init__("ema", period=period)


class WMA(_CloseLine):
    def __init__(self, period: int = 20) -> None:
        super().__init__("wma", period=period)


class DEMA(_CloseLine):
    def __init__(self, period: int = 20) -> None:
        super().__init__("dema", period=period)


class TEMA(_CloseLine):
    def __init__(self, period: int = 20) -> None:
        super().__init__("tema", period=period)


class RSI(_CloseLine):
    def __init__(self, period: int = 14) -> None:
        super().__init__("rsi", period=period)


class ROC(_CloseLine):
    def __init__(self, period: int = 10) -> None:
        super().__init__("roc", period=period)


class MOM(_CloseLine):
    def __init__(self, period: int = 10) -> None:
        super().__init__("mom", period=period)


class MACD(_CloseBands):
    """``update(close) -> (macd, macd_signal, macd_hist)``."""

    def __init__(self, fast_period: int = 12, slow_period: int = 26, signal_period: int = 9) -> None:
        super().__init__(
            "macd", fast_period=fast_period, slow_period=slow_period, signal_period=signal_period
        )


class BBANDS(_CloseBands):
    """``update(close) -> (bb_upper, bb_middle, bb_lower)``."""

    def __init__(self, period: int = 20, nbdev: float = 2.0) -> None:
        super().__init__("bbands", period=period, nbdev=nbdev)


class STOCHRSI(_CloseBands):
    """``update(close) -> (stochrsi_k, stochrsi_d)``."""

    def __init__(self, period: int = 14, fastk_period: int = 5, fastd_period: int = 3) -> None:
        super().__init__("stochrsi", period=period, fastk_period=fastk_period, fastd_period=fastd_period)


class ATR(_HLCLine):
    def __init__(self, period: int = 14) -> None:
        super().__init__("atr", period=period)


class NATR(_HLCLine):
    def __init__(self, period: int = 14) -> None:
        super().__init__("natr", period=period)


class ADX(_HLCLine):
    def __init__(self, period: int = 14) -> None:
        super().__init__("adx", period=period)


class CCI(_HLCLine):
    def __init__(self, period: int = 14) -> None:
        super().__init__("cci", period=period)


class WILLR(_HLCLine):
    def __init__(self, period: int = 14) -> None:
        super().__init__("willr", period=period)


class STOCH(_TalibStream):
    """``update(high, low, close) -> (stoch_k, stoch_d)``."""

    def __init__(self, fastk_period: int = 5, slowk_period: int = 3, slowd_period: int = 3) -> None:
        super().__init__(
            "stoch", fastk_period=fastk_period, slowk_period=slowk_period, slowd_period=slowd_period
        )

    def update(self, high: float, low: float, close: float) -> tuple[float, ...]:
        return self._push((high, low, close))


class MFI(_TalibStream):
    def __init__(self, period: int = 14) -> None:
        super().__init__("mfi", period=period)

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        return self._push((high, low, close, volume))[0]


class OBV(_TalibStream):
    def __init__(self) -> None:
        super().__init__("obv")

    def update(self, close: float, volume: float) -> float:
        return self._push((close, volume))[0]


class SAR(_TalibStream):
    def __init__(self, acceleration: float = 0.02, maximum: float = 0.2) -> None:
        super().__init__("sar", acceleration=acceleration, maximum=maximum)

    def update(self, high: float, low: float) -> float:
        return self._push((high, low))[0]


class CandlePattern(_TalibStream):
    """Any TA-Lib candlestick pattern, e.g. ``CandlePattern("cdl_engulfing")``:
    ``update(open, high, low, close) -> +-100 / +-200 / 0`` as a float (NaN during warm-up)."""

    def __init__(self, name: str, **params: object) -> None:
        super().__init__(name, **params)
        if self.spec.group != "pattern":
            raise ValueError(f"{name} is not a candlestick pattern")

    def update(self, open: float, high: float, low: float, close: float) -> float:
        return self._push((open, high, low, close))[0]


_CLASSES: dict[str, Callable[..., StreamingIndicator]] = {
    "sma": SMA,
    "ema": EMA,
    "wma": WMA,
    "dema": DEMA,
    "tema": TEMA,
    "rsi": RSI,
    "roc": ROC,
    "mom": MOM,
    "macd": MACD,
    "bbands": BBANDS,
    "stochrsi": STOCHRSI,
    "atr": ATR,
    "natr": NATR,
    "adx": ADX,
    "cci": CCI,
    "willr": WILLR,
    "stoch": STOCH,
    "mfi": MFI,
    "obv": OBV,
    "sar": SAR,
}


def stream(name: str, **params: object) -> StreamingIndicator:
    """A fresh streaming object for catalog entry ``name`` with these parameters."""
    from algotrendy.indicators import streaming_own

    spec = get_spec(name)
    if spec.group == "pattern":
        return CandlePattern(spec.name, **params)
    own = streaming_own.CLASSES.get(spec.name)
    if own is not None:
        return own(**params)
    return _CLASSES[spec.name](**params)
