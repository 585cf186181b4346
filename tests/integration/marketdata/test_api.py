"""The market data API on the real sample data shipped in the package."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib

from tests.apphelp import Api

pytestmark = pytest.mark.asyncio(loop_scope="module")
SAMPLES = Path(__file__).resolve().parents[3] / "src" / "algotrendy" / "sample_data"
MD = "/api/v1/market-data"


def _frame(name: str) -> pd.DataFrame:
    return pd.read_csv(SAMPLES / name, parse_dates=["timestamp"]).set_index("timestamp")


async def test_sample_data_is_loaded_on_first_start(md: Api, trader: dict[str, str]) -> None:
    r = await md.client.get(f"{MD}/symbols", headers=trader)
    assert r.status_code == 200
    series = {(s["symbol"], s["interval"]): s for s in r.json()}
    assert (
        series[("BTCUSDT", "1h")]["count"] == 58_419 and series[("BTCUSDT", "1h")]["asset_type"] == "crypto"
    )
    assert series[("SPY", "1d")]["count"] == 5_241
    assert series[("MSFT", "1d")]["asset_type"] == "stock" and series[("EURUSD", "1h")]["asset_type"] == "fx"
    assert len(series) == 10


async def test_bars_with_indicators_match_talib_from_the_first_row(md: Api, trader: dict[str, str]) -> None:
    r = await md.client.get(
        f"{MD}/SPY",
        headers=trader,
        params={"interval": "1d", "period": "1y", "indicators": "rsi,macd,bbands,sma:50"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["columns"][:6] == ["timestamp", "open", "high", "low", "close", "volume"]
    assert {"rsi", "macd", "macd_signal", "macd_hist", "bb_upper", "bb_middle", "bb_lower", "sma_50"} <= set(
        body["columns"]
    )
    assert body["data"]["timestamp"][-1] == "2020-08-28T00:00:00Z"
    assert 245 <= body["count"] <= 260
    # warm-up was read before the window: no leading nulls
    assert body["data"]["rsi"][0] is not None and body["data"]["macd_signal"][0] is not None
    full = _frame("SPY_1d.csv")
    closes = full["close"].to_numpy(dtype=float)
    rsi, sma = talib.RSI(closes, 14), talib.SMA(closes, 50)
    idx = {ts: i for i, ts in enumerate(full.index.strftime("%Y-%m-%dT%H:%M:%SZ"))}
    for k in (0, 100, body["count"] - 1):
        i = idx[body["data"]["timestamp"][k]]
        assert body["data"]["rsi"][k] == pytest.approx(rsi[i], rel=1e-9)
        assert body["data"]["sma_50"][k] == pytest.approx(sma[i], rel=1e-9)


async def test_coarser_interval_is_resampled_from_stored_bars(md: Api, trader: dict[str, str]) -> None:
    r = await md.client.get(
        f"{MD}/BTCUSDT",
        headers=trader,
        params={
            "interval": "4h",
            "start": "2021-03-01T00:00:00Z",
            "end": "2021-03-03T00:00:00Z",
            "venue": "binance",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source_interval"] == "1h" and body["count"] == 12
    h = _frame("BTCUSDT_1h_binance.csv.gz").loc["2021-03-01":"2021-03-02"]
    ref = h.resample("4h").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    assert body["data"]["open"] == pytest.approx(ref["open"].tolist())
    assert body["data"]["high"] == pytest.approx(ref["high"].tolist())
    assert body["data"]["volume"] == pytest.approx(ref["volume"].tolist(), rel=1e-9)
    five = await md.client.get(f"{MD}/ETHUSDT", headers=trader, params={"interval": "5m", "limit": 12})
    assert five.status_code == 200 and five.json()["source_interval"] == "1m" and five.json()["count"] == 12


async def test_chart_style_and_transform(md: Api, trader: dict[str, str]) -> None:
    r = await md.client.get(
        f"{MD}/AAPL",
        headers=trader,
        params={"chart_style": "renko", "chart_params": "brick:2", "period": "1y"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert "direction" in body["columns"] and body["chart_style"] == "renko"
    opens, closes = body["data"]["open"], body["data"]["close"]
    assert body["count"] > 10
    assert all(abs(abs(c - o) - 2) < 1e-9 for o, c in zip(opens, closes, strict=True))  # every brick is 2
    styles = (await md.client.get(f"{MD}/chart-styles", headers=trader)).json()
    assert {
        "time",
        "heikin_ashi",
        "renko",
        "range",
        "three_line_break",
        "kagi",
        "point_figure",
        "volume",
        "dollar",
    } <= {s["name"] for s in styles} | {"range", "volume", "dollar"}
    data = {
        "timestamp": ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"],
        "open": [10, 11, 12],
        "high": [11, 12, 13],
        "low": [9, 10, 11],
        "close": [10.5, 11.5, 12.5],
        "volume": [1, 2, 3],
    }
    t = await md.client.post(
        f"{MD}/transform", headers=trader, json={"data": data, "chart_style": "heikin_ashi"}
    )
    assert t.status_code == 200, t.text
    assert t.json()["data"]["close"][0] == pytest.approx((10 + 11 + 9 + 10.5) / 4)
    bad = await md.client.post(
        f"{MD}/transform",
        headers=trader,
        json={"data": {**data, "close": [1, "x", 2]}, "chart_style": "renko"},
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "data.close"


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("NOPE", {}, 404, "symbol"),
        ("SPY", {"interval": "7x"}, 422, "query.interval"),
        ("SPY", {"interval": "1m"}, 422, "interval"),
        ("SPY", {"indicators": "rsi:0"}, 422, "indicators"),
        ("SPY", {"indicators": "nosuch"}, 422, "indicators"),
        ("SPY", {"chart_style": "pie"}, 422, "query.chart_style"),
        ("SPY", {"period": "13y"}, 422, "query.period"),
        ("SPY", {"start": "2020-01-02T00:00:00Z", "end": "2020-01-01T00:00:00Z"}, 422, "end"),
    ],
)
async def test_bad_requests_name_the_field(
    md: Api, trader: dict[str, str], path: str, params: dict, status: int, field: str
) -> None:
    r = await md.client.get(f"{MD}/{path}", headers=trader, params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["field"] == field, r.json()


async def test_quality_report_finds_the_known_msft_defects(md: Api, trader: dict[str, str]) -> None:
    r = await md.client.get(f"{MD}/quality/MSFT", headers=trader)
    assert r.status_code == 200, r.text
    report = r.json()
    days = [v["ts"][:10] for v in report["violations"]["items"]]
    assert days == ["2007-02-28", "2011-08-02"]
    assert report["summary"]["missing_bars"] == 1
    btc = (await md.client.get(f"{MD}/quality/BTCUSDT", headers=trader, params={"interval": "1h"})).json()
    assert btc["gaps"]["total"] == 28 and btc["summary"]["missing_bars"] == 128


async def test_batch_returns_results_and_per_symbol_errors(md: Api, trader: dict[str, str]) -> None:
    r = await md.client.post(
        f"{MD}/batch",
        headers=trader,
        json={"symbols": ["SPY", "GOOG", "NOPE"], "period": "1mo", "interval": "1d"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["results"]) == {"SPY", "GOOG"} and "NOPE" in body["errors"]


async def test_catalogs(md: Api, trader: dict[str, str]) -> None:
    indicators = {i["name"]: i for i in (await md.client.get(f"{MD}/indicators", headers=trader)).json()}
    assert {"sma", "ema", "rsi", "macd", "bbands", "atr", "vwap", "supertrend", "ichimoku"} <= set(indicators)
    assert indicators["macd"]["outputs"] == ["macd", "macd_signal", "macd_hist"]


async def test_import_is_atomic_idempotent_and_invalidates_the_cache(
    md: Api, trader: dict[str, str], tmp_path: Path
) -> None:
    header = "timestamp,open,high,low,close,volume\n"
    rows = [
        f"2024-01-{d:02d}T00:00:00Z,{100 + d},{101 + d},{99 + d},{100.5 + d},{1000 * d}\n"
        for d in range(1, 9)
    ]
    bad = header + "".join(rows[:3]) + "2024-01-04T00:00:00Z,abc,1,1,1,1\n" + "".join(rows[4:])
    params = {"symbol": "TEST", "interval": "1d", "asset_type": "stock", "venue": "LOCAL"}
    r = await md.client.post(
        f"{MD}/import", headers={**trader, "content-type": "text/csv"}, params=params, content=bad.encode()
    )
    assert r.status_code == 422 and "line 5" in r.json()["detail"], r.text
    assert (await md.client.get(f"{MD}/TEST", headers=trader)).status_code == 404  # nothing imported
    good = header + "".join(rows[:5])
    r = await md.client.post(f"{MD}/import", headers=trader, params=params, content=good.encode())
    assert r.status_code == 201 and r.json()["written"] == 5, r.text
    first = (await md.client.get(f"{MD}/TEST", headers=trader)).json()
    assert first["count"] == 5
    again = await md.client.post(f"{MD}/import", headers=trader, params=params, content=good.encode())
    assert again.json()["written"] == 0
    more = await md.client.post(
        f"{MD}/import",
        headers=trader,
        params=params,
        content=gzip.decompress(gzip.compress((header + "".join(rows)).encode())),
    )
    assert more.json()["written"] == 3
    second = (await md.client.get(f"{MD}/TEST", headers=trader)).json()
    assert second["count"] == 8  # the cached answer was invalidated by the new bars


async def test_viewers_read_but_cannot_import(md: Api) -> None:
    from algotrendy.core.auth import Role

    _u, viewer, _ = await md.user(Role.VIEWER)
    assert (await md.client.get(f"{MD}/SPY", headers=viewer, params={"limit": 5})).status_code == 200
    r = await md.client.post(
        f"{MD}/import",
        headers=viewer,
        params={"symbol": "X", "interval": "1d", "asset_type": "stock"},
        content=b"x",
    )
    assert r.status_code == 403
    assert (await md.client.get(f"{MD}/SPY")).status_code == 401


async def test_cached_answer_is_identical_and_nan_becomes_null(md: Api, trader: dict[str, str]) -> None:
    params = {"interval": "1d", "period": "max", "indicators": "sma:200"}
    a = await md.client.get(f"{MD}/GOOG", headers=trader, params=params)
    b = await md.client.get(f"{MD}/GOOG", headers=trader, params=params)
    assert a.content == b.content
    sma = a.json()["data"]["sma_200"]
    assert sma[0] is None and sma[198] is None and sma[199] is not None
    assert np.isclose(sma[199], np.mean(a.json()["data"]["close"][:200]))
