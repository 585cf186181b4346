"""The paper exchange's streams: which part of each bar update resting orders may still meet,
and the fan-out of execution reports."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from algotrendy.adapters.brokers.paper_streams import Reports, Segment, Tape
from algotrendy.core.market import BarUpdate, SeriesKey, Timeframe
from algotrendy.core.venue import Quote, VenueDataError, VenueOrder

KEY = SeriesKey("BTCUSDT", "paper", Timeframe.parse("1m"))
MIN = 60 * 10**9


def bar(ts: int, o: float, h: float, lo: float, c: float, v: float, closed: bool = False) -> BarUpdate:
    return BarUpdate(KEY, ts, o, h, lo, c, v, closed)


def test_a_new_bar_is_met_whole() -> None:
    tape = Tape(Quote("BTCUSDT", 0, D(100), D(5)))
    assert tape.advance(bar(MIN, 101, 103, 99, 102, 7)) == Segment(D(101), D(103), D(99), D(7))


def test_updates_of_one_bar_are_met_only_on_what_is_new() -> None:
    tape = Tape()
    assert tape.advance(bar(0, 100, 100, 100, 100, 0)) is None  # no seed: the baseline only
    # a new high: met once
    assert tape.advance(bar(0, 100, 106, 100, 104, 2)) == Segment(D(100), D(106), D(100), D(2))
    # the same high again (price fell back): only previous close -> close
    assert tape.advance(bar(0, 100, 106, 100, 103, 4)) == Segment(D(104), D(104), D(103), D(2))
    # a new low
    assert tape.advance(bar(0, 100, 106, 97, 98, 5)) == Segment(D(103), D(103), D(97), D(1))
    # the closing update repeats the bar: nothing new but the last move
    assert tape.advance(bar(0, 100, 106, 97, 99, 5, closed=True)) == Segment(D(98), D(99), D(98), D(0))


def test_a_seeded_tape_does_not_trust_the_bar_extremes_before_it() -> None:
    # the quote came mid-bar at 100; the bar had already printed 106 before it
    tape = Tape(Quote("BTCUSDT", 0, D(100), D(3)))
    assert tape.advance(bar(0, 101, 106, 95, 102, 4)) == Segment(D(100), D(102), D(100), D(1))
    # from then on the extremes are known
    assert tape.advance(bar(0, 101, 107, 95, 105, 6)) == Segment(D(102), D(107), D(102), D(2))


def test_a_seed_without_volume_leaves_the_first_segment_uncapped() -> None:
    tape = Tape(Quote("BTCUSDT", 0, D(100)))
    seg = tape.advance(bar(0, 100, 100, 99, 99, 8))
    assert seg is not None and seg.volume is None


def test_an_older_bar_is_met_whole_as_when_a_replay_starts_over() -> None:
    tape = Tape(Quote("BTCUSDT", 2 * MIN, D(100), D(1)))
    assert tape.advance(bar(MIN, 90, 120, 80, 100, 50)) == Segment(D(90), D(120), D(80), D(50))
    assert tape.advance(bar(MIN, 90, 120, 80, 101, 51, closed=True)) == Segment(D(100), D(101), D(100), D(1))


def test_a_seed_inside_the_bar_counts_as_that_bar() -> None:
    tape = Tape(Quote("BTCUSDT", MIN + 5, D(100), None))  # a trade's time, not the bar's label
    assert tape.advance(bar(MIN, 99, 104, 98, 101, 9)) == Segment(D(100), D(101), D(100), None)


@pytest.mark.parametrize(
    "values",
    [
        (100, 99, 98, 100, 1),  # high below the open
        (100, 101, 100.5, 100, 1),  # low above the close
        (float("nan"), 101, 99, 100, 1),
        (100, 101, 99, 100, -1),
        (100, 101, 0, 100, 1),
    ],
)
def test_bad_bars_raise_and_change_nothing(values: tuple[float, float, float, float, float]) -> None:
    tape = Tape(Quote("BTCUSDT", 0, D(100), D(1)))
    with pytest.raises(VenueDataError):
        tape.advance(bar(MIN, *values))
    assert tape.advance(bar(MIN, 100, 102, 99, 101, 3)) == Segment(D(100), D(102), D(99), D(3))


async def test_reports_fan_out_in_order_until_ended() -> None:
    reports = Reports()
    a, b = reports.subscribe(), reports.subscribe()
    first = VenueOrder("c", "v", "BTCUSDT", "BUY", "MARKET", D(1), D(0), "submitted")
    second = VenueOrder("c", "v", "BTCUSDT", "BUY", "MARKET", D(1), D(1), "filled")
    reports.publish(first)
    await b.aclose()  # b leaves: it keeps what it had, gets nothing more
    reports.publish(second)
    reports.end()
    assert [e async for e in a] == [first, second]
    assert [e async for e in b] == [first]
    late = reports.subscribe()
    assert [e async for e in late] == []
    reports.reopen()
    again: Any = reports.subscribe()
    reports.publish(first)
    assert await anext(again) == first
