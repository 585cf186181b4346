"""The feature language: feature kinds and their parameters, spec strings, named feature sets.

A spec string is ``kind[_p1[_p2...]]`` with positional parameters in the kind's declared order
(left-out ones keep their defaults), optionally lagged:

    ret_5            log return over 5 bars               rsi            = rsi_14 (default period)
    macd_hist_pct    = macd_hist_pct_12_26_9              bb_pctb_20_2.5 period 20, nbdev 2.5
    ret_1_lag3       ret_1 as it was 3 bars earlier       lag(ret_1,1..3) = ret_1_lag1, _lag2, _lag3

Names are case-insensitive. The column name is the canonical spec: every parameter written out
(``rsi`` -> ``rsi_14``, ``bb_pctb`` -> ``bb_pctb_20_2``; floats in shortest form, ``2.0`` -> ``2``).
An item may also name a feature set (``"standard"``). Duplicates keep their first position.
Anything else raises ``FeatureError`` (a ``ValueError``) whose message quotes the bad item.

Each spec knows its ``warmup`` (leading NaN rows of the batch result on complete data) and its
``window``: the bars ``compute_last`` reads. For finite-memory features ``window = warmup + 1``.
Features built on exponential/Wilder smoothing (rsi, macd_*, atr_pct, adx, ema_dist) depend on
*all* earlier bars (never on later ones), so a finite window only approximates the full-history
value; their window adds ``settle`` bars, enough for the seed's influence to decay below
``SETTLE_EPS`` (1e-8; ``k * d**k`` when two smoothings are stacked), which keeps ``compute_last``
within 1e-6 (relative, absolute below 1) of the full-history value (measured in the tests).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from algotrendy.indicators.catalog import IndicatorError, get_spec
from algotrendy.indicators.schema import Number, ParamSpec

__all__ = [
    "FEATURE_SETS",
    "KINDS",
    "MAX_LAG",
    "SETTLE_EPS",
    "FeatureError",
    "FeaturePlan",
    "FeatureSpec",
    "Kind",
    "parse",
]

SETTLE_EPS = 1e-8
MAX_LAG = 1000

Warmup = Callable[[tuple[Number, ...]], int]


class FeatureError(ValueError):
    """A feature list that cannot be parsed; ``item`` is the offending entry as written."""

    def __init__(self, message: str, *, item: str) -> None:
        super().__init__(message)
        self.item = item


def settle_bars(decay: float, *, stacked: bool = False) -> int:
    """Bars until ``decay**k`` (``k * decay**k`` if ``stacked``) is at most ``SETTLE_EPS``."""
    if decay <= 0.0:
        return 0
    k = math.ceil(math.log(SETTLE_EPS) / math.log(decay))
    while stacked and k * decay**k > SETTLE_EPS:
        k += 1
    return k


def _wilder(p: Number) -> float:
    return 1.0 - 1.0 / float(p)


def _ema(p: Number) -> float:
    return 1.0 - 2.0 / (float(p) + 1.0)


def _none(_: tuple[Number, ...]) -> int:
    return 0


@dataclass(frozen=True, slots=True)
class Kind:
    """A feature kind: its parameters (positional), warm-up, settle bars and meaning.

    ``indicator`` names the catalog indicator it is computed from (parameters and their checks are
    the catalog's), or is None for features computed here.
    """

    name: str
    group: str
    params: tuple[ParamSpec, ...]
    warmup: Warmup
    description: str
    indicator: str | None = None
    settle: Warmup = _none

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "group": self.group,
            "params": [p.to_dict() for p in self.params],
            "description": self.description,
            "infinite_memory": self.settle(tuple(p.default for p in self.params)) > 0,
        }


def _p(name: str, default: int, minimum: int, what: str) -> ParamSpec:
    return ParamSpec(name, "int", default, minimum, 100_000, what)


def _own(name: str, group: str, params: tuple[ParamSpec, ...], warmup: Warmup, what: str) -> Kind:
    return Kind(name, group, params, warmup, what)


def _ind(name: str, indicator: str, what: str, settle: Warmup = _none) -> Kind:
    spec = get_spec(indicator)

    def warmup(p: tuple[Number, ...]) -> int:
        return spec.warmup(dict(zip((q.name for q in spec.params), p, strict=True)))

    return Kind(name, "indicator", spec.params, warmup, what, indicator, settle)


_K = _p("k", 1, 1, "bars back")
_N = _p("n", 20, 2, "bars in the window")
_N1 = _p("n", 20, 1, "bars in the window")
_CAL = "from the bar's ts (open time, UTC); angle 2*pi*x/period"

_KINDS: tuple[Kind, ...] = (
    _own("ret", "returns", (_K,), lambda p: int(p[0]), "ln(close_t / close_{t-k})"),
    _own("gap", "returns", (), lambda p: 1, "ln(open_t / close_{t-1})"),
    _own("co_ret", "bar", (), _none, "ln(close / open), the bar's own move"),
    _own("hl_range", "bar", (), _none, "ln(high / low)"),
    _own("clv", "bar", (), _none, "(close - low) / (high - low), 0.5 when high == low"),
    _own("vol", "volatility", (_N,), lambda p: int(p[0]), "population std of the last n 1-bar log returns"),
    _own(
        "park",
        "volatility",
        (_N1,),
        lambda p: int(p[0]) - 1,
        "Parkinson volatility: sqrt(mean of ln(high/low)^2 over n bars / (4 ln 2))",
    ),
    _ind("rsi", "rsi", "TA-Lib RSI, 0..100", lambda p: settle_bars(_wilder(p[0]))),
    _ind("macd_pct", "macd", "MACD line in % of close", lambda p: settle_bars(_ema(p[1]), stacked=True)),
    _ind(
        "macd_signal_pct",
        "macd",
        "MACD signal line in % of close",
        lambda p: settle_bars(_ema(p[1]), stacked=True),
    ),
    _ind(
        "macd_hist_pct",
        "macd",
        "MACD histogram in % of close",
        lambda p: settle_bars(_ema(p[1]), stacked=True),
    ),
    _ind("atr_pct", "natr", "ATR in % of close (TA-Lib NATR)", lambda p: settle_bars(_wilder(p[0]))),
    _ind("adx", "adx", "TA-Lib ADX, 0..100", lambda p: settle_bars(_wilder(p[0]), stacked=True)),
    _ind("cci", "cci", "TA-Lib CCI"),
    _ind("willr", "willr", "TA-Lib Williams' %R, -100..0"),
    _ind("mfi", "mfi", "TA-Lib money flow index, 0..100"),
    _ind("stoch_k", "stoch", "TA-Lib slow stochastic %K, 0..100"),
    _ind("stoch_d", "stoch", "TA-Lib slow stochastic %D, 0..100"),
    _ind("bb_pctb", "bbands", "Bollinger %B: (close - lower) / (upper - lower), 0.5 when the bands meet"),
    _ind("bb_width", "bbands", "Bollinger band width (upper - lower) in % of the middle band"),
    _ind("sma_dist", "sma", "distance of close from its SMA, in % (100 * (close / sma - 1))"),
    _ind(
        "ema_dist",
        "ema",
        "distance of close from its EMA, in % (100 * (close / ema - 1))",
        lambda p: settle_bars(_ema(p[0])),
    ),
    _own(
        "volume_z",
        "volume",
        (_N,),
        lambda p: int(p[0]) - 1,
        "z-score of ln(1 + volume) against its last n values (this bar included; population "
        "std), 0 when they are all equal",
    ),
    _own(
        "dollar_vol",
        "volume",
        (_N1,),
        lambda p: int(p[0]) - 1,
        "ln(1 + mean of close * volume over n bars): the liquidity level (in the quote "
        "currency, so not scale-free on purpose)",
    ),
    _own(
        "obv_slope",
        "volume",
        (_N1,),
        lambda p: int(p[0]),
        "(OBV_t - OBV_{t-n}) / (volume of those n bars), -1..1; 0 without volume",
    ),
    _own("dow_sin", "calendar", (), _none, f"sin of the weekday (Monday 0, period 7) {_CAL}"),
    _own("dow_cos", "calendar", (), _none, f"cos of the weekday (Monday 0, period 7) {_CAL}"),
    _own("hour_sin", "calendar", (), _none, f"sin of the time of day (period 24 h) {_CAL}"),
    _own("hour_cos", "calendar", (), _none, f"cos of the time of day (period 24 h) {_CAL}"),
    _own("month_sin", "calendar", (), _none, f"sin of the month (January 0, period 12) {_CAL}"),
    _own("month_cos", "calendar", (), _none, f"cos of the month (January 0, period 12) {_CAL}"),
)
KINDS: dict[str, Kind] = {k.name: k for k in _KINDS}

_CALENDAR = ("dow_sin", "dow_cos", "hour_sin", "hour_cos", "month_sin", "month_cos")
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "minimal": ("ret_1", "ret_5", "ret_20", "vol_20", "rsi_14", "atr_pct_14", "sma_dist_20", "volume_z_20"),
    "standard": (
        *("ret_1", "ret_5", "ret_10", "ret_20", "vol_5", "vol_20", "vol_60", "park_20"),
        *("hl_range", "co_ret", "clv"),
        *("rsi_14", "macd_pct", "macd_hist_pct", "atr_pct_14", "bb_pctb_20", "bb_width_20", "adx_14"),
        *("cci_20", "willr_14", "stoch_k_14_3_3", "mfi_14", "sma_dist_20", "sma_dist_50", "ema_dist_20"),
        *("volume_z_20", "dollar_vol_20", "obv_slope_20"),
        *_CALENDAR,
        *("ret_1_lag1", "ret_1_lag2"),
    ),
    "extended": (
        "standard",
        *("ret_2", "ret_3", "ret_60", "ret_120", "gap", "vol_10", "vol_120", "park_5", "park_60"),
        *("rsi_7", "rsi_28", "macd_signal_pct", "atr_pct_7", "adx_28", "cci_14", "mfi_28"),
        *("stoch_d_14_3_3", "bb_pctb_50", "sma_dist_10", "sma_dist_100", "sma_dist_200", "ema_dist_50"),
        *("volume_z_5", "volume_z_60", "obv_slope_5", "obv_slope_60", "dollar_vol_60"),
        *("lag(ret_1,3..5)", "vol_20_lag1", "rsi_14_lag1", "volume_z_20_lag1"),
    ),
}


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One parsed feature: canonical ``name``, ``kind``, all ``params`` (declared order), ``lag``;
    ``warmup`` leading NaN rows, ``window`` bars ``compute_last`` needs."""

    name: str
    kind: str
    params: tuple[Number, ...]
    lag: int
    warmup: int
    window: int


@dataclass(frozen=True, slots=True)
class FeaturePlan:
    """A parsed, de-duplicated feature list (hashable: compile it once, compute it many times)."""

    specs: tuple[FeatureSpec, ...]
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(self.specs))

    def __hash__(self) -> int:  # cached: a plan is a cache key on the single-row path
        return self._hash

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def warmup(self) -> int:
        return max(s.warmup for s in self.specs)

    @property
    def window(self) -> int:
        return max(s.window for s in self.specs)


def _canonical(value: Number) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _number(token: str) -> Number | None:
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _unknown(item: str, name: str) -> FeatureError:
    choices = [*KINDS, *FEATURE_SETS]
    close = difflib.get_close_matches(name, choices, n=3) or difflib.get_close_matches(
        name.split("_", maxsplit=1)[0], choices, n=3
    )
    hint = f"; did you mean {', '.join(close)}?" if close else "; known kinds: " + ", ".join(KINDS)
    return FeatureError(f"features: unknown feature {item!r}{hint}", item=item)


def _base(item: str, text: str, lag: int) -> FeatureSpec:
    tokens = text.split("_")
    for i in range(len(tokens), 0, -1):
        kind = KINDS.get("_".join(tokens[:i]))
        if kind is not None:
            break
    else:
        raise _unknown(item, text)
    given = tokens[i:]
    if len(given) > len(kind.params):
        names = ", ".join(p.name for p in kind.params) or "none"
        raise FeatureError(
            f"features: {item!r}: {kind.name} takes {len(kind.params)} parameter(s) ({names}), "
            f"got {len(given)}",
            item=item,
        )
    values: list[Number] = []
    for spec, token in zip(kind.params, given, strict=False):
        number = _number(token)
        if number is None:
            raise FeatureError(
                f"features: {item!r}: parameter {spec.name} of {kind.name} must be a number, got {token!r}",
                item=item,
            )
        values.append(number)
    try:
        if kind.indicator is not None:
            ind = get_spec(kind.indicator)
            raw = dict(zip((p.name for p in ind.params), values, strict=False))
            params = tuple(ind.resolve(raw).values())
        else:
            params = tuple(
                p.check(kind.name, values[j]) if j < len(values) else p.default
                for j, p in enumerate(kind.params)
            )
    except IndicatorError as e:
        raise FeatureError(f"features: {item!r}: {e}", item=item) from None
    name = "_".join([kind.name, *(_canonical(v) for v in params)])
    warmup = kind.warmup(params)
    window = warmup + 1 + kind.settle(params) + lag
    return FeatureSpec(f"{name}_lag{lag}" if lag else name, kind.name, params, lag, warmup + lag, window)


_LAG_CALL = re.compile(r"lag\((?P<base>[^(),]+),(?P<a>\d+)(?:\.\.(?P<b>\d+))?\)")
_LAG_SUFFIX = re.compile(r"(?P<base>.+)_lag(?P<k>\d+)")


def _check_lag(item: str, k: int) -> int:
    if not 1 <= k <= MAX_LAG:
        raise FeatureError(f"features: {item!r}: lag must be in [1, {MAX_LAG}], got {k}", item=item)
    return k


def _item(item: str, depth: int = 0) -> list[FeatureSpec]:
    text = "".join(item.split()).lower()
    if not text:
        raise FeatureError("features: empty feature name", item=item)
    if text in FEATURE_SETS and depth < 3:
        return [s for sub in FEATURE_SETS[text] for s in _item(sub, depth + 1)]
    if m := _LAG_CALL.fullmatch(text):
        a = _check_lag(item, int(m["a"]))
        b = _check_lag(item, int(m["b"])) if m["b"] else a
        if b < a:
            raise FeatureError(f"features: {item!r}: empty lag range {a}..{b}", item=item)
        return [_base(item, m["base"], k) for k in range(a, b + 1)]
    if (m := _LAG_SUFFIX.fullmatch(text)) and not text.startswith("lag("):
        return [_base(item, m["base"], _check_lag(item, int(m["k"])))]
    return [_base(item, text, 0)]


def _split(text: str) -> list[str]:
    """Comma-separated items; commas inside ``lag(...)`` do not split."""
    return [part for part in re.split(r",(?![^(]*\))", text) if part.strip()]


@lru_cache(maxsize=512)
def _parse(items: tuple[str, ...]) -> FeaturePlan:
    seen: dict[str, FeatureSpec] = {}
    for item in items:
        for spec in _item(item):
            seen.setdefault(spec.name, spec)
    if not seen:
        raise FeatureError("features: no features given", item="")
    return FeaturePlan(tuple(seen.values()))


def parse(features: str | Sequence[str] | FeaturePlan) -> FeaturePlan:
    """The plan for ``features``: a set name, a comma-separated string, or a list of items (set
    names or spec strings). Cached: parsing the same list again costs a dictionary lookup."""
    if isinstance(features, FeaturePlan):
        return features
    if isinstance(features, str):
        return _parse(tuple(_split(features)))
    for item in features:
        if not isinstance(item, str):
            raise FeatureError(f"features: every item must be a string, got {item!r}", item=repr(item))
    return _parse(tuple(features))
