"""Wiring of the backtesting service: its job kinds on the jobs registry, its outbox relay, and
the market data, strategies and jobs APIs it calls (in this process)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from algotrendy.core.errors import ConfigurationError
from algotrendy.db.outbox import Outbox
from algotrendy.services.backtest import jobs as backtest_jobs
from algotrendy.services.backtest.service import BacktestService

if TYPE_CHECKING:
    from algotrendy.app.container import Container

NEEDS = ("jobs", "marketdata", "strategies")


def build_backtest(container: Container) -> None:
    settings = container.settings
    missing = [s for s in NEEDS if s not in container.services]
    if missing:
        raise ConfigurationError(
            f"the backtest service runs in the same process as {', '.join(NEEDS)}; add "
            f"{', '.join(missing)} to ALGO_SERVICES (or --services)"
        )
    backtest_jobs.register(container.services["jobs.registry"])
    outbox = Outbox(service="backtest", clock=container.clock)
    container.services["backtest"] = BacktestService(
        sessions=container.sessions,
        clock=container.clock,
        settings=settings.backtest,
        jobs=container.services["jobs"],
        strategies=container.services["strategies"],
        marketdata=container.services["marketdata"],
        outbox=outbox,
        inputs_dir=settings.backtest.inputs_dir or settings.data_dir / "backtest" / "inputs",
        models=container.services.get("ml"),
    )
    container.relays.append(container._relay(outbox))
