"""Wiring of the jobs service: the executor (local process pool, or Ray when
``ALGO_RAY_ADDRESS`` is set), the registry other services add their job kinds to, and the
outbox relay for ``jobs.job.finished``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from algotrendy.db.outbox import Outbox
from algotrendy.services.jobs.registry import JobRegistry
from algotrendy.services.jobs.service import JobsService

if TYPE_CHECKING:
    from algotrendy.app.container import Container
    from algotrendy.services.jobs.interface import Executor


def build_jobs(container: Container) -> None:
    settings = container.settings
    executor: Executor
    if settings.ray_address:
        from algotrendy.adapters.jobs.ray_executor import RayJobExecutor

        executor = RayJobExecutor(address=settings.ray_address)
    else:
        from algotrendy.adapters.jobs.process_pool import ProcessPoolJobExecutor

        executor = ProcessPoolJobExecutor(workers=settings.jobs.workers)
    registry = JobRegistry()  # services register their kinds (e.g. "backtest.run") while being built
    outbox = Outbox(service="jobs", clock=container.clock)
    container.services["jobs.registry"] = registry
    container.services["jobs"] = JobsService(
        container.sessions, executor, registry, container.clock, settings.jobs, outbox
    )
    container.relays.append(container._relay(outbox))
