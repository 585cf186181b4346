"""The Python API: ``algotrendy.app.api.backtest`` on a built-in, a template and a Strategy class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from algotrendy.app.api import backtest, write_report
from algotrendy.core.market import Bars
from algotrendy.engine.builtin import BUILTIN_TEMPLATES
from algotrendy.engine.strategy import Context, Strategy
from tests.apphelp import make_settings

pytestmark = pytest.mark.slow


class BuyAndHold(Strategy):
    def on_data(self, symbol: str, bars: Bars) -> None:
        self.n = len(bars)

    def on_bar(self, ctx: Context) -> None:
        if ctx.position("SPY") == 0 and ctx.index("SPY") == 0:
            ctx.buy("SPY", fraction=1.0)


def test_backtest_from_python(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, marketdata={"load_samples": True})
    result = backtest(
        "sma_crossover", "SPY", commission=0.001, params={"fast": 20, "slow": 50}, settings=settings
    )
    assert result["params"]["fast"] == 20 and result["metrics"]["number_of_trades"] > 3
    template = BUILTIN_TEMPLATES["macd_signal"]
    again = backtest(template, "SPY", start="2012-01-01", end="2016-01-01", settings=settings)
    assert again["first"].startswith("2012-01-03") and again["last"] < "2016-01-01"
    held = backtest(BuyAndHold(), "SPY", settings=settings)
    assert held["engine"] == "event" and held["metrics"]["exposure"] > 0.99
    equity = np.array(held["equity"]["equity"])
    assert held["metrics"]["total_return"] == pytest.approx(equity[-1] / 100_000 - 1, rel=1e-9)
    write_report(held, str(tmp_path / "r.html"), title="buy & hold <SPY>")
    page = (tmp_path / "r.html").read_text()
    assert "buy &amp; hold &lt;SPY&gt;" in page and "<SPY>" not in page
    with pytest.raises(ValueError, match="unknown built-in"):
        backtest("nope", "SPY", settings=settings)
