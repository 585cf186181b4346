"""The run loop of a strategy deployment: the bar feed a deployment reads (``BarFeed``), how its
strategy object is built (``build_strategy``, ``model_enrich``), the per-deployment state
(``_Runner``), and ``DeploymentRunner``, the part of ``Deployments`` that drives one: warm-up and the
bar loop, turning the strategy's commands into orders, handing fills and rejections back to the
strategy, saving progress, and the deployment rows and events it writes.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import math
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Invalid
from algotrendy.core.market import Bars, BarUpdate, Timeframe
from algotrendy.core.venue import VenueFill
from algotrendy.db.outbox import Outbox
from algotrendy.engine.live import AccountState, Bar, Cancel, CancelAll, Command, LiveShell, Submit
from algotrendy.engine.orders import Fill, OrderSide, OrderStatus
from algotrendy.engine.strategy import Strategy
from algotrendy.engine.template import StrategyTemplate
from algotrendy.engine.templated import Enrich, RotationStrategy, TemplateStrategy
from algotrendy.services.ml.interface import ModelScores
from algotrendy.services.trading import store
from algotrendy.services.trading.interface import (
    DeploymentChanged,
    DeploymentStatus,
    OrderCreate,
    OrderRead,
    TradingApi,
)

if TYPE_CHECKING:
    from algotrendy.services.trading.deploy import Deployments

log = structlog.get_logger(__name__)
SAVE_EVERY = 50
MAX_CHAIN = 20
"""Rejections answered by new orders, answered by rejections ...: cut off after this many."""


class BarFeed(Protocol):
    """Closed bars for deployments (the app wires it to the bar store and the live feed)."""

    def closed(self, symbol: str, interval: str) -> AsyncIterator[BarUpdate]: ...

    async def history(self, symbol: str, interval: str, *, before_ns: int, limit: int) -> Bars: ...

    async def has(self, symbol: str, interval: str) -> bool: ...


def build_strategy(
    template: StrategyTemplate,
    params: dict[str, Any],
    symbols: list[str],
    interval_seconds: int,
    enrich: Enrich | None = None,
) -> Strategy:
    if template.rotation is not None:
        return RotationStrategy(template, params, symbols=tuple(symbols), enrich=enrich)
    if len(symbols) != 1:
        raise Invalid("a signal template trades one symbol; give exactly one", field="symbols")
    ppy = 365.25 * 86_400 / interval_seconds if interval_seconds < 86_400 else 252.0
    return TemplateStrategy(template, params, symbol=symbols[0], periods_per_year=ppy, enrich=enrich)


async def model_enrich(
    models: ModelScores | None, owner: uuid.UUID, template: StrategyTemplate, interval: str
) -> Enrich | None:
    """What adds the P(up) series of the template's ``models`` to each live window (None without
    models). Resolving here refuses an unknown or non-serving model before anything runs."""
    if not template.models:
        return None
    if models is None:
        raise Invalid(
            "this template reads ML models; the ml service must run in this process",
            field="template.models",
            code="ml_unavailable",
        )
    score = await models.scorer(owner=owner, models=template.models, interval=interval)
    return lambda bars: bars.with_series(score(bars))


class _Runner:
    def __init__(self, owner: Deployments, row: dict[str, Any]) -> None:
        self.owner = owner
        self.row = row
        self.id: uuid.UUID = row["id"]
        self.lock = asyncio.Lock()
        self.shell: LiveShell | None = None
        self.task: asyncio.Task[None] | None = None
        self.rejected: set[str] = set()
        self.bars_seen: int = row["bars_seen"]
        self.last_bar_ts: int | None = row["last_bar_ts"]
        self.saved = self.bars_seen
        self.inbox: list[tuple[Fill[float], str] | tuple[str, str]] = []
        """Fills (fill, tag) and rejections (local id, reason) waiting for the strategy: they
        may arrive while the runner itself is placing the order that caused them."""


class DeploymentRunner:
    """Runs deployments; ``Deployments`` sets these attributes and adds the API and lifecycle."""

    _models: Callable[[], ModelScores | None]
    _sessions: async_sessionmaker[AsyncSession]
    _clock: Clock
    _outbox: Outbox
    _trading: TradingApi
    _feed: BarFeed | None
    _reconciled: asyncio.Event
    _runners: dict[uuid.UUID, _Runner]
    _haircut: float

    # ---- running -------------------------------------------------------------------------------

    async def _run(self, runner: _Runner) -> None:
        row = runner.row
        try:
            await self._reconciled.wait()
            assert self._feed is not None
            template = StrategyTemplate.model_validate(row["template"])
            seconds = Timeframe.parse(row["interval"]).seconds
            enrich = await model_enrich(self._models(), row["owner_id"], template, row["interval"])
            strategy = build_strategy(
                template, dict(row["parameters"]), list(row["symbols"]), seconds, enrich
            )
            queue: asyncio.Queue[tuple[str, BarUpdate]] = asyncio.Queue()
            pumps = [
                asyncio.get_running_loop().create_task(self._pump(symbol, row["interval"], queue))
                for symbol in row["symbols"]
            ]
            try:
                symbol, first = await queue.get()
                history = {
                    s: await self._feed.history(
                        s, row["interval"], before_ns=first.ts, limit=int(row["warmup_bars"])
                    )
                    for s in row["symbols"]
                }
                runner.shell = LiveShell(
                    strategy, list(row["symbols"]), history=history, next_id=row["next_id"]
                )
                await self._set(runner.id, DeploymentStatus.RUNNING, None)
                async with runner.lock:
                    await self._execute(runner, runner.shell.start(await self._state(runner)))
                    await self._drain(runner)
                pending: tuple[str, BarUpdate] | None = (symbol, first)
                while True:
                    if pending is None:
                        pending = await queue.get()
                    batch = {pending[0]: pending[1]}
                    ts = pending[1].ts
                    pending = None
                    while not queue.empty():  # every bar of this timestamp in one step
                        nxt = queue.get_nowait()
                        if nxt[1].ts == ts and nxt[0] not in batch:
                            batch[nxt[0]] = nxt[1]
                        else:
                            pending = nxt
                            break
                    await self._step(runner, ts, batch)
            finally:
                for pump in pumps:
                    pump.cancel()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("trading.deployment.failed", deployment_id=str(runner.id))
            self._runners.pop(runner.id, None)
            await self._set(runner.id, DeploymentStatus.FAILED, f"{type(exc).__name__}: {exc}"[:500])

    async def _pump(self, symbol: str, interval: str, queue: asyncio.Queue[tuple[str, BarUpdate]]) -> None:
        assert self._feed is not None
        async for bar in self._feed.closed(symbol, interval):
            await queue.put((symbol, bar))

    async def _step(self, runner: _Runner, ts: int, batch: dict[str, BarUpdate]) -> None:
        assert runner.shell is not None
        bars = {s: Bar(u.open, u.high, u.low, u.close, u.volume) for s, u in batch.items()}
        async with runner.lock:
            commands = runner.shell.on_bars(ts, bars, await self._state(runner))
            await self._execute(runner, commands)
            await self._drain(runner)
        await self._drain_later(runner)
        runner.bars_seen += 1
        runner.last_bar_ts = ts
        if commands or runner.bars_seen - runner.saved >= SAVE_EVERY:
            await self._save(runner)

    async def _save(self, runner: _Runner) -> None:
        """Progress is saved when the strategy acted (its next local id matters after a restart:
        a replayed step maps to the same client order ids) and every ``SAVE_EVERY`` bars."""
        assert runner.shell is not None
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(store.deployments)
                .where(store.deployments.c.id == runner.id)
                .values(
                    bars_seen=runner.bars_seen,
                    last_bar_ts=runner.last_bar_ts,
                    next_id=runner.shell.next_id,
                    updated_at=self._clock.now(),
                )
            )
        runner.saved = runner.bars_seen

    async def _execute(self, runner: _Runner, commands: builtins.list[Command], depth: int = 0) -> None:
        assert runner.shell is not None
        row = runner.row
        owner: uuid.UUID = row["owner_id"]
        for command in commands:
            if isinstance(command, Submit):
                order = await self._submit(runner, command)
                if order is None or order.status is OrderStatus.REJECTED:
                    reason = "size rounds to zero" if order is None else order.reason or "rejected"
                    if command.local_id not in runner.rejected and depth < MAX_CHAIN:
                        runner.rejected.add(command.local_id)
                        more = runner.shell.on_reject(command.local_id, reason, await self._state(runner))
                        await self._execute(runner, more, depth + 1)
            elif isinstance(command, Cancel):
                for order_id in await self._orders_of(runner, local_id=command.local_id):
                    with contextlib.suppress(Exception):
                        await self._trading.cancel_order(owner_id=owner, order_id=order_id, reason="strategy")
            elif isinstance(command, CancelAll):
                for order_id in await self._orders_of(runner, symbol=command.symbol):
                    with contextlib.suppress(Exception):
                        await self._trading.cancel_order(owner_id=owner, order_id=order_id, reason="strategy")

    async def _submit(self, runner: _Runner, cmd: Submit) -> OrderRead | None:
        assert runner.shell is not None
        quantity = cmd.quantity
        if quantity is None:
            state = await self._state(runner)
            price = runner.shell.price(cmd.symbol)
            fraction = cmd.fraction or 0.0
            per_unit = price * (self._haircut if cmd.side is OrderSide.BUY else 1.0)
            quantity = fraction * state.equity / per_unit if per_unit > 0 and math.isfinite(per_unit) else 0.0
        qty = Decimal(repr(float(quantity))).quantize(Decimal("1e-8"), rounding=ROUND_DOWN)
        if qty <= 0:
            return None

        def dec(value: float | None) -> Decimal | None:
            return None if value is None else Decimal(repr(float(value))).quantize(Decimal("1e-8"))

        request = OrderCreate(
            portfolio_id=runner.row["portfolio_id"],
            symbol=cmd.symbol,
            side=cmd.side,
            quantity=qty,
            order_type=cmd.type,
            time_in_force=cmd.time_in_force,
            limit_price=dec(cmd.limit_price),
            stop_price=dec(cmd.stop_price),
            trail_percent=dec(cmd.trail),
            reduce_only=cmd.reduce_only,
            client_order_id=f"dp{runner.id.hex[:12]}-{cmd.local_id}",
        )
        order, _ = await self._trading.submit_order(
            owner_id=runner.row["owner_id"],
            request=request,
            deployment_id=runner.id,
            local_id=cmd.local_id,
            tag=cmd.tag[:40],
        )
        return order

    async def _orders_of(
        self, runner: _Runner, *, local_id: str | None = None, symbol: str | None = None
    ) -> builtins.list[uuid.UUID]:
        o = store.orders.c
        q = select(o.id).where(o.deployment_id == runner.id, o.status.in_(("submitted", "partial_fill")))
        if local_id is not None:
            q = q.where(o.local_id == local_id)
        if symbol is not None:
            q = q.where(o.symbol == symbol)
        async with self._sessions() as session:
            return [r[0] for r in await session.execute(q)]

    async def _state(self, runner: _Runner) -> AccountState:
        row = runner.row
        view = await self._trading.account_view(owner_id=row["owner_id"], portfolio_id=row["portfolio_id"])
        share = float(row["allocation"])
        o = store.orders.c
        async with self._sessions() as session:
            open_rows = await session.execute(
                select(o.local_id, o.symbol, o.tag).where(
                    o.deployment_id == runner.id,
                    o.status.in_(store.OPEN_STATUSES),
                )
            )
            open_orders = {lid: (sym, tag or "") for lid, sym, tag in open_rows if lid}
        return AccountState(
            equity=float(view.equity) * share,
            cash=float(view.cash) * share,
            positions={s: float(q) for s, q in view.positions.items() if s in row["symbols"]},
            open_orders=open_orders,
        )

    # ---- what the execution layer reports ------------------------------------------------------

    async def on_fill(self, order: dict[str, Any], vf: VenueFill) -> None:
        runner = self._runners.get(order.get("deployment_id"))  # type: ignore[arg-type]
        if runner is None or runner.shell is None or not order.get("local_id"):
            return
        fill = Fill(
            fill_id=vf.trade_id,
            order_id=str(order["local_id"]),
            symbol=order["symbol"],
            side=OrderSide(order["side"]),
            quantity=float(vf.quantity),
            price=float(vf.price),
            fee=float(vf.fee),
            ts=vf.ts_ns,
        )
        runner.inbox.append((fill, order.get("tag") or ""))
        await self._drain_later(runner)

    async def on_final(self, order: dict[str, Any], status: OrderStatus, reason: str) -> None:
        runner = self._runners.get(order.get("deployment_id"))  # type: ignore[arg-type]
        local_id = order.get("local_id")
        if runner is None or runner.shell is None or not local_id or status is not OrderStatus.REJECTED:
            return
        if local_id in runner.rejected:
            return
        runner.rejected.add(local_id)
        runner.inbox.append((local_id, reason))
        await self._drain_later(runner)

    async def _drain(self, runner: _Runner, depth: int = 0) -> None:
        """Give the strategy what came back (the caller holds the runner's lock)."""
        assert runner.shell is not None
        while runner.inbox and depth < MAX_CHAIN:
            item = runner.inbox.pop(0)
            state = await self._state(runner)
            if isinstance(item[0], Fill):
                fill, tag = item
                commands = runner.shell.on_fill(fill, str(tag), state)
            else:
                local_id, reason = item
                commands = runner.shell.on_reject(str(local_id), str(reason), state)
            await self._execute(runner, commands, depth + 1)
            depth += 1

    async def _drain_later(self, runner: _Runner) -> None:
        """Drain now unless the runner is busy (then it drains before it lets go)."""
        while runner.inbox and not runner.lock.locked():
            async with runner.lock:
                await self._drain(runner)

    # ---- rows ----------------------------------------------------------------------------------

    async def _row(self, session: AsyncSession, deployment_id: uuid.UUID) -> dict[str, Any] | None:
        found = (
            (await session.execute(select(store.deployments).where(store.deployments.c.id == deployment_id)))
            .mappings()
            .first()
        )
        return dict(found) if found is not None else None

    async def _set(self, deployment_id: uuid.UUID, status: DeploymentStatus, reason: str | None) -> None:
        async with self._sessions() as session, session.begin():
            row = await self._row(session, deployment_id)
            if row is None or row["status"] == status.value:
                return
            now = self._clock.now()
            await session.execute(
                update(store.deployments)
                .where(store.deployments.c.id == deployment_id)
                .values(status=status.value, reason=reason, updated_at=now)
            )
            await self._event(session, dict(row, status=status.value, reason=reason))

    async def _event(self, session: AsyncSession, row: dict[str, Any]) -> None:
        await self._outbox.add(
            session,
            DeploymentChanged(
                deployment_id=row["id"],
                portfolio_id=row["portfolio_id"],
                owner_id=row["owner_id"],
                strategy_id=row["strategy_id"],
                status=row["status"],
                reason=row["reason"],
            ),
        )


__all__ = ["MAX_CHAIN", "SAVE_EVERY", "BarFeed", "DeploymentRunner", "build_strategy", "model_enrich"]
