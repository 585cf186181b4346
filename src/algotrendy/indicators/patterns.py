"""The TA-Lib candlestick patterns: API name, TA-Lib function, title and warm-up.

A pattern's column is ``+100`` (bullish), ``-100`` (bearish), ``0`` (absent) and, for the two
Hikkake patterns, ``+-200`` when TA-Lib sees the pattern confirmed. The first
``lookback`` bars are NaN: TA-Lib needs that many earlier bars for its running averages of body and
shadow sizes (its default candle settings; they are not changed here) and reports 0 there, which
would read as "pattern absent" rather than "not known yet".

The lookback does not depend on the ``penetration`` parameter; ``tests/unit/indicators`` checks
every value against TA-Lib's own lookback function.
"""

from __future__ import annotations

from typing import NamedTuple


class Pattern(NamedTuple):
    name: str  # our API name: "cdl_" + TA-Lib's name without "CDL", lower-cased
    talib_name: str
    title: str
    lookback: int
    penetration: float | None  # default of the pattern's penetration parameter, if it has one


PATTERNS: tuple[Pattern, ...] = (
    Pattern("cdl_2crows", "CDL2CROWS", "Two Crows", 12, None),
    Pattern("cdl_3blackcrows", "CDL3BLACKCROWS", "Three Black Crows", 13, None),
    Pattern("cdl_3inside", "CDL3INSIDE", "Three Inside Up/Down", 12, None),
    Pattern("cdl_3linestrike", "CDL3LINESTRIKE", "Three-Line Strike", 8, None),
    Pattern("cdl_3outside", "CDL3OUTSIDE", "Three Outside Up/Down", 3, None),
    Pattern("cdl_3starsinsouth", "CDL3STARSINSOUTH", "Three Stars In The South", 12, None),
    Pattern("cdl_3whitesoldiers", "CDL3WHITESOLDIERS", "Three Advancing White Soldiers", 12, None),
    Pattern("cdl_abandonedbaby", "CDLABANDONEDBABY", "Abandoned Baby", 12, 0.3),
    Pattern("cdl_advanceblock", "CDLADVANCEBLOCK", "Advance Block", 12, None),
    Pattern("cdl_belthold", "CDLBELTHOLD", "Belt-hold", 10, None),
    Pattern("cdl_breakaway", "CDLBREAKAWAY", "Breakaway", 14, None),
    Pattern("cdl_closingmarubozu", "CDLCLOSINGMARUBOZU", "Closing Marubozu", 10, None),
    Pattern("cdl_concealbabyswall", "CDLCONCEALBABYSWALL", "Concealing Baby Swallow", 13, None),
    Pattern("cdl_counterattack", "CDLCOUNTERATTACK", "Counterattack", 11, None),
    Pattern("cdl_darkcloudcover", "CDLDARKCLOUDCOVER", "Dark Cloud Cover", 11, 0.5),
    Pattern("cdl_doji", "CDLDOJI", "Doji", 10, None),
    Pattern("cdl_dojistar", "CDLDOJISTAR", "Doji Star", 11, None),
    Pattern("cdl_dragonflydoji", "CDLDRAGONFLYDOJI", "Dragonfly Doji", 10, None),
    Pattern("cdl_engulfing", "CDLENGULFING", "Engulfing Pattern", 2, None),
    Pattern("cdl_eveningdojistar", "CDLEVENINGDOJISTAR", "Evening Doji Star", 12, 0.3),
    Pattern("cdl_eveningstar", "CDLEVENINGSTAR", "Evening Star", 12, 0.3),
    Pattern("cdl_gapsidesidewhite", "CDLGAPSIDESIDEWHITE", "Up/Down-gap side-by-side white lines", 7, None),
    Pattern("cdl_gravestonedoji", "CDLGRAVESTONEDOJI", "Gravestone Doji", 10, None),
    Pattern("cdl_hammer", "CDLHAMMER", "Hammer", 11, None),
    Pattern("cdl_hangingman", "CDLHANGINGMAN", "Hanging Man", 11, None),
    Pattern("cdl_harami", "CDLHARAMI", "Harami Pattern", 11, None),
    Pattern("cdl_haramicross", "CDLHARAMICROSS", "Harami Cross Pattern", 11, None),
    Pattern("cdl_highwave", "CDLHIGHWAVE", "High-Wave Candle", 10, None),
    Pattern("cdl_hikkake", "CDLHIKKAKE", "Hikkake Pattern", 5, None),
    Pattern("cdl_hikkakemod", "CDLHIKKAKEMOD", "Modified Hikkake Pattern", 10, None),
    Pattern("cdl_homingpigeon", "CDLHOMINGPIGEON", "Homing Pigeon", 11, None),
    Pattern("cdl_identical3crows", "CDLIDENTICAL3CROWS", "Identical Three Crows", 12, None),
    Pattern("cdl_inneck", "CDLINNECK", "In-Neck Pattern", 11, None),
    Pattern("cdl_invertedhammer", "CDLINVERTEDHAMMER", "Inverted Hammer", 11, None),
    Pattern("cdl_kicking", "CDLKICKING", "Kicking", 11, None),
    Pattern(
        "cdl_kickingbylength",
        "CDLKICKINGBYLENGTH",
        "Kicking - bull/bear determined by the longer marubozu",
        11,
        None,
    ),
    Pattern("cdl_ladderbottom", "CDLLADDERBOTTOM", "Ladder Bottom", 14, None),
    Pattern("cdl_longleggeddoji", "CDLLONGLEGGEDDOJI", "Long Legged Doji", 10, None),
    Pattern("cdl_longline", "CDLLONGLINE", "Long Line Candle", 10, None),
    Pattern("cdl_marubozu", "CDLMARUBOZU", "Marubozu", 10, None),
    Pattern("cdl_matchinglow", "CDLMATCHINGLOW", "Matching Low", 6, None),
    Pattern("cdl_mathold", "CDLMATHOLD", "Mat Hold", 14, 0.5),
    Pattern("cdl_morningdojistar", "CDLMORNINGDOJISTAR", "Morning Doji Star", 12, 0.3),
    Pattern("cdl_morningstar", "CDLMORNINGSTAR", "Morning Star", 12, 0.3),
    Pattern("cdl_onneck", "CDLONNECK", "On-Neck Pattern", 11, None),
    Pattern("cdl_piercing", "CDLPIERCING", "Piercing Pattern", 11, None),
    Pattern("cdl_rickshawman", "CDLRICKSHAWMAN", "Rickshaw Man", 10, None),
    Pattern("cdl_risefall3methods", "CDLRISEFALL3METHODS", "Rising/Falling Three Methods", 14, None),
    Pattern("cdl_separatinglines", "CDLSEPARATINGLINES", "Separating Lines", 11, None),
    Pattern("cdl_shootingstar", "CDLSHOOTINGSTAR", "Shooting Star", 11, None),
    Pattern("cdl_shortline", "CDLSHORTLINE", "Short Line Candle", 10, None),
    Pattern("cdl_spinningtop", "CDLSPINNINGTOP", "Spinning Top", 10, None),
    Pattern("cdl_stalledpattern", "CDLSTALLEDPATTERN", "Stalled Pattern", 12, None),
    Pattern("cdl_sticksandwich", "CDLSTICKSANDWICH", "Stick Sandwich", 7, None),
    Pattern("cdl_takuri", "CDLTAKURI", "Takuri (Dragonfly Doji with very long lower shadow)", 10, None),
    Pattern("cdl_tasukigap", "CDLTASUKIGAP", "Tasuki Gap", 7, None),
    Pattern("cdl_thrusting", "CDLTHRUSTING", "Thrusting Pattern", 11, None),
    Pattern("cdl_tristar", "CDLTRISTAR", "Tristar Pattern", 12, None),
    Pattern("cdl_unique3river", "CDLUNIQUE3RIVER", "Unique 3 River", 12, None),
    Pattern("cdl_upsidegap2crows", "CDLUPSIDEGAP2CROWS", "Upside Gap Two Crows", 12, None),
    Pattern("cdl_xsidegap3methods", "CDLXSIDEGAP3METHODS", "Upside/Downside Gap Three Methods", 2, None),
)
