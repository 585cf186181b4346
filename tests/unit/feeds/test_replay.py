"""ReplayFeed: order, pacing on a ManualClock, intra-bar path, chunked reads, subscribers, close."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator

import numpy as np
import pytest

from algotrendy.adapters.feeds.replay import ReplayFeed
from algotrendy.core.clock import ManualClock
from algotrendy.core.errors import NotFound
from algotrendy.core.market import Bars, BarUpdate, SeriesKey
from tests.unit.feeds.memstore import H1, M1, M5, MINUTE_NS, T0, MemoryBarStore, make_bars

BTC = SeriesKey("BTCUSDT", "binance", M1)
BTC5 = SeriesKey("BTCUSDT", "binance", M5)
ETH = SeriesKey("ETHUSDT", "binance", M1)

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


class SleepRecorder:
    """A ``sleep`` that moves a ManualClock instead of waiting."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)


async def take(it: AsyncIterator[BarUpdate], n: int | None = None) -> list[BarUpdate]:
    out: list[BarUpdate] = []
    async for update in it:
        out.append(update)
        if n is not None and len(out) == n:
            break
    return out


def store_with(**series: Bars) -> MemoryBarStore:
    store = MemoryBarStore()
    keys = {"btc": BTC, "btc5": BTC5, "eth": ETH}
    for name, bars in series.items():
        store.put(keys[name], bars)
    return store


async def test_every_stored_bar_arrives_once_as_a_closed_update() -> None:
    bars = make_bars(50)
    feed = ReplayFeed(store_with(btc=bars), speed=0)
    got = await take(feed.bars([BTC]))
    assert [u.ts for u in got] == bars.ts.tolist()
    assert all(u.closed and u.key == BTC for u in got)
    assert [(u.open, u.high, u.low, u.close, u.volume) for u in got] == list(
        zip(
            bars.open.tolist(),
            bars.high.tolist(),
            bars.low.tolist(),
            bars.close.tolist(),
            bars.volume.tolist(),
        )
    )


async def test_series_merge_on_close_time_shorter_timeframe_first() -> None:
    feed = ReplayFeed(store_with(btc=make_bars(10), btc5=make_bars(2, tf=M5), eth=make_bars(10)), speed=0)
    got = await take(feed.bars([BTC5, BTC, ETH]))
    due = [u.ts + u.key.timeframe.nanos for u in got]
    assert due == sorted(due)
    labels = [(u.key.symbol, str(u.key.timeframe), (u.ts - T0) // MINUTE_NS) for u in got]
    # the 5m bar of 00:00-00:05 is due at 00:05, with the 1m bars of 00:04 (which close then) first
    assert labels[8:11] == [("BTCUSDT", "1m", 4), ("ETHUSDT", "1m", 4), ("BTCUSDT", "5m", 0)]
    assert len(got) == 22


async def test_speed_60_releases_one_1m_bar_per_second() -> None:
    clock = ManualClock()
    sleep = SleepRecorder(clock)
    feed = ReplayFeed(store_with(btc=make_bars(6)), speed=60, clock=clock, sleep=sleep)
    got = await take(feed.bars([BTC]))
    assert len(got) == 6
    assert sleep.calls == pytest.approx([1.0] * 5)
    assert clock.monotonic() == pytest.approx(5.0)


@pytest.mark.parametrize(("speed", "gap"), [(1.0, 60.0), (120.0, 0.5), (3600.0, 1 / 60)])
async def test_gaps_between_bars_scale_with_speed(speed: float, gap: float) -> None:
    clock = ManualClock()
    sleep = SleepRecorder(clock)
    feed = ReplayFeed(store_with(btc=make_bars(4)), speed=speed, clock=clock, sleep=sleep)
    await take(feed.bars([BTC]))
    assert sleep.calls == pytest.approx([gap] * 3)


async def test_data_gap_is_waited_out_at_speed() -> None:
    bars = make_bars(3)
    later = make_bars(1, start=T0 + 10 * MINUTE_NS)
    joined = Bars(*(np.concatenate([getattr(bars, c), getattr(later, c)]) for c in COLUMNS))
    clock = ManualClock()
    sleep = SleepRecorder(clock)
    await take(ReplayFeed(store_with(btc=joined), speed=60, clock=clock, sleep=sleep).bars([BTC]))
    assert sleep.calls == pytest.approx([1.0, 1.0, 8.0])


async def test_slow_consumer_gets_late_bars_at_once_then_schedule_resumes() -> None:
    clock = ManualClock()
    sleep = SleepRecorder(clock)
    feed = ReplayFeed(store_with(btc=make_bars(6)), speed=60, clock=clock, sleep=sleep)
    got = []
    async for update in feed.bars([BTC]):
        got.append(update)
        if len(got) == 2:
            clock.advance(3.5)  # the consumer spends 3.5 s on bar 2
    assert len(got) == 6
    # bar 3 due at t=2 and bar 4 at t=3 are already late (t=4.5); bar 5 at t=4 too; bar 6 waits 0.5 s
    assert sleep.calls == pytest.approx([1.0, 0.5])


@pytest.mark.parametrize("speed", [0.0, math.inf])
async def test_speed_zero_or_inf_never_sleeps(speed: float) -> None:
    clock = ManualClock()
    sleep = SleepRecorder(clock)
    got = await take(
        ReplayFeed(store_with(btc=make_bars(600)), speed=speed, clock=clock, sleep=sleep).bars([BTC])
    )
    assert len(got) == 600
    assert sleep.calls == []


async def test_intrabar_updates_walk_open_low_high_close_for_an_up_bar() -> None:
    bars = Bars(
        np.array([T0, T0 + MINUTE_NS], dtype=np.int64),
        np.array([100.0, 100.0]),
        np.array([110.0, 110.0]),
        np.array([95.0, 95.0]),
        np.array([105.0, 97.0]),  # bar 1 closes up, bar 2 closes down
        np.array([30.0, 60.0]),
    )
    clock = ManualClock()
    sleep = SleepRecorder(clock)
    feed = ReplayFeed(store_with(btc=bars), speed=1, clock=clock, sleep=sleep, intrabar=True)
    got = await take(feed.bars([BTC]))
    as_rows = [(u.open, u.high, u.low, u.close, u.volume, u.closed) for u in got]
    assert as_rows == [
        (100.0, 100.0, 100.0, 100.0, 0.0, False),
        (100.0, 100.0, 95.0, 95.0, 10.0, False),  # low first on an up bar
        (100.0, 110.0, 95.0, 110.0, 20.0, False),
        (100.0, 110.0, 95.0, 105.0, 30.0, True),
        (100.0, 100.0, 100.0, 100.0, 0.0, False),
        (100.0, 110.0, 100.0, 110.0, 20.0, False),  # high first on a down bar
        (100.0, 110.0, 95.0, 95.0, 40.0, False),
        (100.0, 110.0, 95.0, 97.0, 60.0, True),
    ]
    assert all(u.ts == T0 for u in got[:4]) and all(u.ts == T0 + MINUTE_NS for u in got[4:])
    # due at open, +20 s, +40 s, close (+60 s); the next bar's opening update right after the close
    assert sleep.calls == pytest.approx([20.0, 20.0, 20.0, 20.0, 20.0, 20.0])


async def test_intrabar_can_be_switched_off() -> None:
    got = await take(ReplayFeed(store_with(btc=make_bars(5)), speed=0, intrabar=False).bars([BTC]))
    assert all(u.closed for u in got)


async def test_reads_in_windows_of_chunk_size_never_the_whole_series() -> None:
    n, chunk = 200_000, 4_096
    store = store_with(btc=make_bars(n))
    feed = ReplayFeed(store, speed=0, chunk_size=chunk)
    count = 0
    last = None
    async for update in feed.bars([BTC]):
        count += 1
        assert last is None or update.ts == last + MINUTE_NS
        last = update.ts
    assert count == n
    data_reads = [r for r in store.reads if r.limit is None]
    assert max(r.rows for r in data_reads) <= chunk
    assert sum(r.rows for r in data_reads) == n  # every bar read exactly once
    assert len(data_reads) == -(-n // chunk)


async def test_first_bars_arrive_after_one_chunk_read() -> None:
    store = store_with(btc=make_bars(1_000_000))
    got = await take(ReplayFeed(store, speed=0, chunk_size=1000).bars([BTC]), 10)
    assert len(got) == 10
    assert [r.rows for r in store.reads] == [1000]


async def test_long_gap_costs_a_few_small_probes() -> None:
    early = make_bars(3)
    late = make_bars(3, start=T0 + 10 * 365 * 24 * 60 * MINUTE_NS)  # ten years later
    joined = Bars(*(np.concatenate([getattr(early, c), getattr(late, c)]) for c in COLUMNS))
    store = store_with(btc=joined)
    got = await take(ReplayFeed(store, speed=0, chunk_size=100).bars([BTC]))
    assert [u.ts for u in got] == joined.ts.tolist()
    probes = [r for r in store.reads if r.limit == 1]
    windows = [r for r in store.reads if r.limit is None]
    assert len(probes) < 60  # galloping over ~5M empty minutes, then bisecting, in windows of 100
    assert len(windows) <= 3  # the first bars, the window that found the gap, the late bars
    assert all(r.rows <= 100 for r in store.reads)


async def test_each_subscriber_has_its_own_cursor() -> None:
    feed = ReplayFeed(store_with(btc=make_bars(30), eth=make_bars(30)), speed=0)
    first = feed.bars([BTC])
    head = await take(first, 10)
    second, rest = await asyncio.gather(take(feed.bars([BTC, ETH])), take(first))
    assert [u.ts for u in head + rest] == [u.ts for u in second if u.key == BTC]
    assert len(second) == 60


async def test_many_concurrent_subscribers_each_get_everything() -> None:
    feed = ReplayFeed(store_with(btc=make_bars(300)), speed=0, chunk_size=64)
    results = await asyncio.gather(*(take(feed.bars([BTC])) for _ in range(20)))
    assert all([u.ts for u in r] == [u.ts for u in results[0]] and len(r) == 300 for r in results)


async def test_close_ends_every_iterator_even_while_it_waits() -> None:
    feed = ReplayFeed(store_with(btc=make_bars(10)), speed=1)  # real sleep: 60 s between bars
    tasks = [asyncio.create_task(take(feed.bars([BTC]))) for _ in range(3)]
    await asyncio.sleep(0.05)
    await feed.close()
    async with asyncio.timeout(2):
        results = await asyncio.gather(*tasks)
    assert [len(r) for r in results] == [1, 1, 1]
    assert await take(feed.bars([BTC])) == []


async def test_loop_forever_starts_over_with_time_moving_forward() -> None:
    feed = ReplayFeed(store_with(btc=make_bars(3), btc5=make_bars(2, tf=M5)), speed=0, loop_forever=True)
    got = await take(feed.bars([BTC, BTC5]), 15)
    btc = [u for u in got if u.key == BTC]
    assert all(b.ts > a.ts for a, b in itertools.pairwise(btc))
    assert [u.close for u in btc[:6]] == [u.close for u in btc[:3]] * 2
    shift = btc[3].ts - btc[0].ts
    assert shift % M5.nanos == 0 and shift >= 10 * MINUTE_NS
    await feed.close()


async def test_start_and_end_select_a_window() -> None:
    feed = ReplayFeed(
        store_with(btc=make_bars(100)), speed=0, start_ns=T0 + 10 * MINUTE_NS, end_ns=T0 + 20 * MINUTE_NS
    )
    got = await take(feed.bars([BTC]))
    assert [(u.ts - T0) // MINUTE_NS for u in got] == list(range(10, 20))


async def test_unknown_series_is_not_found() -> None:
    feed = ReplayFeed(store_with(btc=make_bars(3)), speed=0)
    with pytest.raises(NotFound, match="ETHUSDT"):
        await take(feed.bars([ETH]))


def test_bad_arguments_are_refused() -> None:
    store = MemoryBarStore()
    for kwargs in ({"speed": -1.0}, {"speed": math.nan}, {"chunk_size": 0}, {"start_ns": 10, "end_ns": 5}):
        with pytest.raises(ValueError):
            ReplayFeed(store, **kwargs)


async def test_an_hour_bar_arrives_after_the_minutes_it_spans() -> None:
    store = MemoryBarStore()
    hour = SeriesKey("BTCUSDT", "binance", H1)
    store.put(BTC, make_bars(120))
    store.put(hour, make_bars(2, tf=H1))
    got = await take(ReplayFeed(store, speed=0).bars([hour, BTC]))
    first_hour = next(i for i, u in enumerate(got) if u.key == hour)
    assert first_hour == 60  # after the 60 minutes 00:00..00:59
