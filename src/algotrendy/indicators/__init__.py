"""Indicators: TA-Lib batch functions, our numba kernels for what TA-Lib lacks, and a streaming
form of every indicator (O(1) per bar, equal to the batch form).

    from algotrendy.indicators import compute, compute_request, catalog, stream

    compute("rsi", bars, period=14)            # {"rsi": float64 column, NaN over the warm-up}
    compute_request("rsi,macd:12:26:9", bars)  # {"rsi", "macd_12_26_9", ...} (naming: requests.py)
    catalog()                                  # [IndicatorSpec], .to_dict() for JSON
    s = stream("atr", period=14); s.update_bar(ts, o, h, l, c, v)

Pure: no I/O, no asyncio; TA-Lib, numpy and numba only.
"""

from algotrendy.indicators.batch import day_sessions, heikin_ashi_bars
from algotrendy.indicators.catalog import (
    IndicatorError,
    IndicatorSpec,
    ParamSpec,
    catalog,
    compute,
    get_spec,
    warmup,
)
from algotrendy.indicators.requests import (
    IndicatorRequest,
    column_names,
    compute_request,
    parse_request,
    parse_spec,
)
from algotrendy.indicators.streaming import StreamingIndicator, stream

__all__ = [
    "IndicatorError",
    "IndicatorRequest",
    "IndicatorSpec",
    "ParamSpec",
    "StreamingIndicator",
    "catalog",
    "column_names",
    "compute",
    "compute_request",
    "day_sessions",
    "get_spec",
    "heikin_ashi_bars",
    "parse_request",
    "parse_spec",
    "stream",
    "warmup",
]
