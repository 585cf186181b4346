"""``algotrendy backtest ...`` as a user runs it: a real subprocess on its own data directory
(the shipped sample data), a metrics table, an HTML report, and errors that name the problem."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.integration.test_cli import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory for the module: the sample data loads once."""
    return tmp_path_factory.mktemp("cli-home")


def test_backtest_prints_metrics_and_writes_a_report(home: Path, tmp_path: Path) -> None:
    report = tmp_path / "aapl.html"
    r = cli(
        home,
        "backtest",
        "run",
        "--strategy",
        "sma_crossover",
        "--symbol",
        "AAPL",
        "--start",
        "2010-01-01",
        "--commission",
        "0.001",
        "--report",
        str(report),
    )
    assert r.returncode == 0, r.stderr
    for word in ("sharpe_ratio", "max_drawdown", "number_of_trades", "total_return"):
        assert word in r.stdout
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>") or "<html" in page[:500]
    assert "sma_crossover" in page

    r = cli(
        home,
        "backtest",
        "run",
        "--strategy",
        "rsi_mean_reversion",
        "--symbol",
        "SPY",
        "--json",
        "--no-report",
        "--param",
        "oversold=25",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout[r.stdout.index("{") :])
    assert out["params"]["oversold"] == 25 and out["metrics"]["number_of_trades"] == out["trades_total"]


def test_bad_input_names_the_problem(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "entry_conditions": ["rsi(close, 14) <"]}))
    r = cli(home, "backtest", "run", "--template", str(bad), "--symbol", "SPY", "--no-report")
    assert r.returncode != 0 and "entry_conditions[0]" in r.stderr
    r = cli(
        home,
        "backtest",
        "run",
        "--strategy",
        "sma_crossover",
        "--symbol",
        "SPY",
        "--start",
        "1980-01-01",
        "--end",
        "1981-01-01",
        "--no-report",
    )
    assert r.returncode != 0 and "no 1d bars" in r.stderr
    r = cli(home, "backtest", "run", "--strategy", "nope", "--symbol", "SPY")
    assert r.returncode != 0 and "unknown strategy" in r.stderr


def test_a_python_strategy_class_backtests_from_a_file(home: Path, tmp_path: Path) -> None:
    source = tmp_path / "my_strategy.py"
    source.write_text(
        textwrap.dedent(
            """
            import talib
            from algotrendy.engine.strategy import Strategy

            class Momentum(Strategy):
                def __init__(self, lookback=20):
                    self.lookback = int(lookback)

                def on_data(self, symbol, bars):
                    self.roc = talib.ROC(bars.close, self.lookback)

                def on_bar(self, ctx):
                    i = ctx.index("MSFT")
                    if self.roc[i] > 0 and ctx.position("MSFT") == 0:
                        ctx.buy("MSFT", fraction=0.5)
                    elif self.roc[i] < 0 and ctx.position("MSFT") > 0:
                        ctx.close("MSFT")
            """
        )
    )
    r = cli(
        home,
        "backtest",
        "run",
        "--strategy-file",
        f"{source}:Momentum",
        "--symbol",
        "MSFT",
        "--param",
        "lookback=30",
        "--commission",
        "0.0005",
        "--json",
        "--no-report",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout[r.stdout.index("{") :])
    assert out["engine"] == "event" and out["metrics"]["number_of_trades"] > 5
    assert out["metrics"]["average_exposure"] <= 0.51


def test_optimize_and_walk_forward(home: Path, tmp_path: Path) -> None:
    r = cli(
        home,
        "backtest",
        "optimize",
        "--strategy",
        "sma_crossover",
        "--symbol",
        "SPY",
        "--range",
        "fast=5:20:5",
        "--range",
        "slow=30:90:30",
        "--constraint",
        "fast < slow",
        "--top",
        "3",
        "--report",
        str(tmp_path / "opt.html"),
    )
    assert r.returncode == 0, r.stderr
    assert "top 3 of 12" in r.stdout and "deflated Sharpe ratio" in r.stdout
    r = cli(
        home,
        "backtest",
        "walk-forward",
        "--strategy",
        "sma_crossover",
        "--symbol",
        "SPY",
        "--train",
        "504",
        "--test",
        "126",
        "--optimize",
        "fast",
        "--optimize",
        "slow",
        "--constraint",
        "fast < slow",
    )
    assert r.returncode == 0, r.stderr
    assert "window   1" in r.stdout and "walk-forward efficiency" in r.stdout


def test_monte_carlo_from_the_command_line(home: Path) -> None:
    r = cli(
        home,
        "backtest",
        "monte-carlo",
        "--strategy",
        "sma_crossover",
        "--symbol",
        "SPY",
        "-n",
        "300",
        "--seed",
        "4",
        "--commission",
        "0.001",
    )
    assert r.returncode == 0, r.stderr
    assert "trade bootstrap: 300 paths" in r.stdout and "block bootstrap: 300 paths" in r.stdout
    assert "probability of ruin" in r.stdout
    r = cli(home, "backtest", "monte-carlo", "--strategy", "sma_crossover", "--symbol", "SPY", "-n", "5")
    assert r.returncode != 0 and "num_simulations" in r.stderr
