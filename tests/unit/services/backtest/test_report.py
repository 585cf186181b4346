"""The HTML report: one self-contained page for a backtest, an optimization and a walk-forward."""

from __future__ import annotations

import base64
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import algotrendy
from algotrendy.adapters.bars.files import read_bar_file
from algotrendy.core.market import Bars
from algotrendy.engine.backtest import BacktestConfig
from algotrendy.engine.builtin import BUILTIN_TEMPLATES
from algotrendy.services.backtest import compute, robustness
from algotrendy.services.backtest.report import MAX_TRADE_ROWS, fmt, render_html

SAMPLES = Path(algotrendy.__file__).parent / "sample_data"
EVIL = '<script>alert("x")</script>'
SPACE = {
    "space": {
        "fast": {"min_value": 5, "max_value": 50, "step": 15},
        "slow": {"min_value": 20, "max_value": 200, "step": 60},
    },
    "constraints": ["fast < slow"],
}


def _quiet(_fraction: float, _message: str) -> None:
    return None


@cache
def _bars(name: str) -> Bars:
    return read_bar_file(SAMPLES / name)


def _plan() -> compute.Plan:
    return compute.Plan(
        template=BUILTIN_TEMPLATES["sma_crossover"],
        params={"fast": 10, "slow": 30},
        symbols=("AAPL",),
        config=BacktestConfig(initial_capital=100_000.0, fee_rate=0.001),
    )


@cache
def _run() -> dict[str, Any]:
    return compute.backtest(_plan(), {"AAPL": _bars("AAPL_1d.csv")}, _bars("SPY_1d.csv"), _quiet)


@cache
def _page() -> str:
    return render_html(
        {**_run(), "title": f"AAPL {EVIL}", "strategy_name": EVIL, "config": {"fee_rate": 0.001}}
    )


def _traces(page: str, div_id: str) -> list[dict[str, Any]]:
    """The data array of the ``Plotly.newPlot`` call of ``div_id``."""
    at = page.index(f'Plotly.newPlot(                        "{div_id}",')
    start = page.index("[", at)
    data, _ = json.JSONDecoder().raw_decode(page[start:])
    return list(data)


def _array(v: Any) -> np.ndarray:
    """A plotly JSON array: a list, or a base64 typed array ``{"dtype", "bdata"}``."""
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v, dtype=np.float64)


def test_backtest_page_is_one_self_contained_document() -> None:
    page = _page()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<html") == 1 and page.rstrip().endswith("</html>")
    # no external script, stylesheet or image: nothing is fetched when the page is viewed
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, flags=re.IGNORECASE)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?https?:", page, flags=re.IGNORECASE)
    assert not re.search(r"<img[^>]*\bsrc\s*=\s*[\"']?https?:", page, flags=re.IGNORECASE)
    # plotly.js is embedded exactly once
    import plotly.offline

    js = plotly.offline.get_plotlyjs()
    assert page.count(js[:300]) == 1
    assert page.count("Plotly.newPlot(") == 2


def test_user_text_is_escaped() -> None:
    page = _page()
    assert EVIL not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<title>AAPL &lt;script&gt;" in page


def test_header_and_metrics_are_formatted() -> None:
    run, page = _run(), _page()
    m = run["metrics"]
    assert "AAPL" in page and "2004-08-19 → 2018-01-19" in page and "vectorized" in page
    assert "fast=10, slow=30" in page
    assert f"{m['total_return'] * 100:,.2f}%" in page
    assert f"{m['max_drawdown'] * 100:,.2f}%" in page
    assert f"{m['win_rate'] * 100:,.2f}%" in page
    assert f"<td>{m['sharpe_ratio']:.2f}</td>" in page
    assert f"<td>{m['sortino_ratio']:.2f}</td>" in page
    assert f"{m['final_equity']:,.2f}" in page
    assert m["beta"] is not None and f"<td>{m['beta']:.2f}</td>" in page


def test_equity_chart_has_benchmark_and_trade_markers_on_the_curve() -> None:
    run, page = _run(), _page()
    traces = {t["name"]: t for t in _traces(page, "equity-chart")}
    assert {"Strategy", "Benchmark (buy and hold)", "Entry ▲", "Exit ▼"} <= set(traces)
    trades = run["trades"]
    assert len(trades) > 20
    eq = run["equity"]
    assert len(eq["timestamp"]) == run["bars"]  # not downsampled: markers sit on the exact bars
    equity = np.asarray(eq["equity"], dtype=np.float64)
    entry, exit_ = traces["Entry ▲"], traces["Exit ▼"]
    assert entry["marker"]["symbol"] == "triangle-up" and exit_["marker"]["symbol"] == "triangle-down"
    np.testing.assert_allclose(_array(entry["y"]), equity[[t["entry_index"] for t in trades]])
    np.testing.assert_allclose(_array(exit_["y"]), equity[[t["exit_index"] for t in trades]])
    assert entry["x"][0] == trades[0]["entry_time"].replace("T", " ").rstrip("Z")
    np.testing.assert_allclose(_array(traces["Benchmark (buy and hold)"]["y"]), eq["benchmark"])
    (dd,) = _traces(page, "drawdown-chart")
    assert dd["fill"] == "tozeroy"
    np.testing.assert_allclose(_array(dd["y"]), np.asarray(eq["drawdown"]) * 100)


def test_trade_table_lists_every_trade() -> None:
    run, page = _run(), _page()
    n = len(run["trades"])
    assert f"{n:,} closed trades." in page
    table = page[page.index("<h2>Trades</h2>") :]
    assert table.count("<tr>") == n + 1  # header + one row per trade
    first = run["trades"][0]
    assert first["entry_time"][:10] in table


def test_markers_placed_at_the_nearest_point_of_a_downsampled_curve() -> None:
    ts = ["2024-01-01T00:00:00Z", "2024-01-03T00:00:00Z", "2024-01-10T00:00:00Z"]
    result = {
        "equity": {"timestamp": ts, "equity": [100.0, 110.0, 120.0], "drawdown": [0.0, 0.0, 0.0]},
        "trades": [
            {"entry_time": "2024-01-02T01:00:00Z", "exit_time": "2024-01-09T00:00:00Z", "side": "long"},
        ],
        "trades_total": 1,
    }
    traces = {t["name"]: t for t in _traces(render_html(result), "equity-chart")}
    assert list(_array(traces["Entry ▲"]["y"])) == [110.0]
    assert list(_array(traces["Exit ▼"]["y"])) == [120.0]


def test_long_trade_lists_are_truncated_with_a_note() -> None:
    trade = {
        "symbol": "<b>X</b>",
        "side": "long",
        "quantity": 1.0,
        "entry_time": "2024-01-01T00:00:00Z",
        "exit_time": "2024-01-02T00:00:00Z",
        "entry_price": 1.0,
        "exit_price": 2.0,
        "pnl": 1.0,
        "return": 1.0,
        "fees": 0.0,
        "bars_held": 1,
        "exit_reason": "exit",
    }
    page = render_html({"trades": [trade] * 700, "trades_total": 900, "symbols": ["<b>X</b>"]})
    assert f"Showing the first {MAX_TRADE_ROWS} of 900 closed trades (truncated)." in page
    table = page[page.index("<h2>Trades</h2>") :]
    assert table.count("<tr>") == MAX_TRADE_ROWS + 1
    assert "<b>X</b>" not in page and "&lt;b&gt;X&lt;/b&gt;" in page
    assert "plotly" not in page.lower()  # no chart, no plotly.js


def test_optimization_page_has_top_table_and_deflated_sharpe() -> None:
    plan = _plan()
    out = compute.optimize(plan, {"AAPL": _bars("AAPL_1d.csv")}, None, SPACE, _quiet, max_combinations=1000)
    page = render_html({**out, "title": "sweep", "strategy_name": EVIL})
    assert EVIL not in page
    assert f"top {len(out['top'])} of {out['combinations']} combinations by Sharpe ratio" in page
    dsr = out["deflated_sharpe"]
    assert dsr is not None and f"Deflated Sharpe ratio of the winner: <b>{dsr:.3f}</b>" in page
    best = out["top"][0]
    params = ", ".join(f"{k}={v}" for k, v in best["params"].items())
    assert f'<td class="l">{params}</td>' in page
    assert f"<td>{best['sharpe_ratio']:.2f}</td>" in page
    # the winner's run: metrics, charts, trades
    assert "<h2>Metrics</h2>" in page and page.count("Plotly.newPlot(") == 2
    assert f"{out['best']['metrics']['total_return'] * 100:,.2f}%" in page


def test_walk_forward_page_has_windows_and_stitched_equity() -> None:
    wf = {**SPACE, "training_window": 750, "testing_window": 500}
    out = robustness.walk_forward(_plan(), {"AAPL": _bars("AAPL_1d.csv")}, wf, _quiet, max_combinations=1000)
    page = render_html({**out, "title": "wf"})
    assert f"Walk-forward: {len(out['windows'])} windows" in page
    windows = page[page.index("<h2>Walk-forward") : page.index("<h2>Metrics</h2>")]
    assert windows.count("<tr>") == len(out["windows"]) + 1
    first = out["windows"][0]
    assert f"{first['test_start'][:10]} → {first['test_end'][:10]}" in windows
    assert "Walk-forward efficiency" in page
    traces = _traces(page, "equity-chart")
    assert len(_array(traces[0]["y"])) == len(out["equity"]["equity"])


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("total_return", 0.1234, "12.34%"),
        ("max_drawdown", -0.5, "-50.00%"),
        ("sharpe_ratio", 1.23456, "1.23"),
        ("profit_factor", None, "—"),
        ("final_equity", 1234567.891, "1,234,567.89"),
        ("number_of_trades", 1234, "1,234"),
        ("anything", "<i>", "&lt;i&gt;"),
        ("calmar_ratio", float("nan"), "—"),
    ],
)
def test_fmt(key: str, value: Any, text: str) -> None:
    assert fmt(key, value) == text
