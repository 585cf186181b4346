"""BarTracker / TradeTracker and the message checks: untrusted venue data in, clean updates out."""

from __future__ import annotations

import math

import pytest

from algotrendy.adapters.feeds.tracking import BarTracker, TradeTracker, ohlcv_problem, trade_problem
from algotrendy.core.market import BarUpdate, SeriesKey, Timeframe

KEY = SeriesKey("BTCUSDT", "binance", Timeframe.parse("1m"))
MIN = 60_000
T = 1_700_000_040_000  # a minute boundary, in ms
NOW = T + 5 * MIN


def row(ts: int, close: float, *, high: float = 200.0, volume: float = 1.0) -> list[float]:
    return [ts, 100.0, high, 50.0, close, volume]


def tracker() -> BarTracker:
    return BarTracker(KEY, MIN)


def summary(updates: list[BarUpdate]) -> list[tuple[int, float, bool]]:
    return [((u.ts // 1_000_000 - T) // MIN, u.close, u.closed) for u in updates]


def test_changes_of_the_forming_bar_are_partial_updates() -> None:
    t = tracker()
    assert summary(t.push([row(T, 101)], now_ms=NOW)[0]) == [(0, 101, False)]
    assert summary(t.push([row(T, 102)], now_ms=NOW)[0]) == [(0, 102, False)]


def test_a_newer_bar_closes_the_forming_one_once() -> None:
    t = tracker()
    t.push([row(T, 101)], now_ms=NOW)
    assert summary(t.push([row(T, 101), row(T + MIN, 103)], now_ms=NOW)[0]) == [
        (0, 101, True),
        (1, 103, False),
    ]
    assert summary(t.push([row(T, 101), row(T + MIN, 103)], now_ms=NOW)[0]) == []
    assert summary(t.push([row(T, 99)], now_ms=NOW)[0]) == []  # a revision of a closed bar: ignored


def test_several_new_bars_at_once_close_in_order() -> None:
    t = tracker()
    t.push([row(T, 101)], now_ms=NOW)
    updates, _ = t.push([row(T + 2 * MIN, 105), row(T + MIN, 103), row(T, 102)], now_ms=NOW)
    assert summary(updates) == [
        (0, 102, False),
        (0, 102, True),
        (1, 103, False),
        (1, 103, True),
        (2, 105, False),
    ]


def test_repeated_candle_is_not_emitted_again() -> None:
    t = tracker()
    t.push([row(T, 101)], now_ms=NOW)
    assert t.push([row(T, 101)], now_ms=NOW)[0] == []
    forming = t.forming()
    assert forming is not None and forming.close == 101


def test_primed_history_is_not_news_until_it_changes() -> None:
    t = tracker()
    t.prime([row(T - MIN, 99), row(T, 101)])
    assert t.push([row(T - MIN, 99), row(T, 101)], now_ms=NOW)[0] == []
    assert summary(t.push([row(T - MIN, 99), row(T, 102)], now_ms=NOW)[0]) == [(0, 102, False)]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ([T, math.nan, 200.0, 50.0, 101.0, 1.0], "open missing, NaN or infinite"),
        ([T, 100.0, math.inf, 50.0, 101.0, 1.0], "high missing, NaN or infinite"),
        ([T, 100.0, 200.0, None, 101.0, 1.0], "low missing, NaN or infinite"),
        ([T, 100.0, 200.0, 50.0, "101", 1.0], "close missing, NaN or infinite"),
        ([T, 100.0, 200.0, 50.0, 101.0, True], "volume missing, NaN or infinite"),
        ([T, -100.0, 200.0, 50.0, 101.0, 1.0], "price not positive"),
        ([T, 100.0, 200.0, 50.0, 101.0, -1.0], "volume negative"),
        ([T, 100.0, 90.0, 50.0, 101.0, 1.0], "high/low inconsistent with open/close"),
        ([T, 100.0, 200.0, 150.0, 101.0, 1.0], "high/low inconsistent with open/close"),
        ([None, 100.0, 200.0, 50.0, 101.0, 1.0], "timestamp missing or not an integer"),
        ([-MIN, 100.0, 200.0, 50.0, 101.0, 1.0], "timestamp not positive"),
        ([T + 1, 100.0, 200.0, 50.0, 101.0, 1.0], "timestamp not on a bar boundary"),
        ([NOW + 10 * MIN, 100.0, 200.0, 50.0, 101.0, 1.0], "timestamp in the future"),
        ([T, 100.0, 200.0], "not a [timestamp, open, high, low, close, volume] row"),
        ("garbage", "not a [timestamp, open, high, low, close, volume] row"),
    ],
)
def test_invalid_candles_are_rejected_with_a_reason(bad: object, reason: str) -> None:
    assert ohlcv_problem(bad, now_ms=NOW, timeframe_ms=MIN) == reason
    t = tracker()
    t.push([row(T, 101)], now_ms=NOW)
    updates, rejected = t.push([bad], now_ms=NOW)
    assert updates == []
    assert [r.reason for r in rejected] == [reason]
    assert t.push([bad], now_ms=NOW)[1] == []  # reported once
    forming = t.forming()
    assert forming is not None and forming.close == 101


def test_valid_candles_pass() -> None:
    assert ohlcv_problem(row(T, 101), now_ms=NOW, timeframe_ms=MIN) is None
    assert ohlcv_problem([T, 1, 1, 1, 1, 0], now_ms=NOW, timeframe_ms=MIN) is None  # flat bar, no volume


def trade(trade_id: object, price: object = 100.0, amount: object = 0.5, ts: object = T) -> dict[str, object]:
    return {"id": trade_id, "timestamp": ts, "price": price, "amount": amount, "side": "buy"}


def test_trades_come_out_once_each_in_time_order() -> None:
    t = TradeTracker("BTCUSDT", "binance")
    fresh, _ = t.push([trade("2", ts=T + 5), trade("1", ts=T)], now_ms=NOW)
    assert [(x.trade_id, x.ts) for x in fresh] == [("1", T * 1_000_000), ("2", (T + 5) * 1_000_000)]
    again, _ = t.push([trade("1"), trade("2", ts=T + 5), trade("3", ts=T + 9)], now_ms=NOW)
    assert [x.trade_id for x in again] == ["3"]
    assert again[0].symbol == "BTCUSDT" and again[0].venue == "binance" and again[0].size == 0.5


def test_primed_trades_are_not_news() -> None:
    t = TradeTracker("BTCUSDT", "binance")
    t.prime([trade("1"), trade("2")])
    assert [x.trade_id for x in t.push([trade("1"), trade("2"), trade("3")], now_ms=NOW)[0]] == ["3"]


def test_trades_without_ids_dedup_on_their_content() -> None:
    t = TradeTracker("BTCUSDT", "binance")
    assert len(t.push([trade(None), trade(None)], now_ms=NOW)[0]) == 1
    assert len(t.push([trade(None, price=101.0)], now_ms=NOW)[0]) == 1


@pytest.mark.parametrize(
    "bad",
    [
        trade("x", price=math.nan),
        trade("x", price=-1.0),
        trade("x", amount=0.0),
        trade("x", amount=None),
        trade("x", ts=None),
        trade("x", ts=NOW + 10 * MIN),
        "garbage",
    ],
)
def test_invalid_trades_are_dropped(bad: object) -> None:
    assert trade_problem(bad, now_ms=NOW) is not None
    fresh, rejected = TradeTracker("BTCUSDT", "binance").push([bad], now_ms=NOW)
    assert fresh == [] and len(rejected) == 1
