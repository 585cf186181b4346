"""Strategy deployment: a strategy from the strategy engine trading live, on the paper broker or a
connected venue, through the same order path as a manual order (risk checks, reservations,
idempotency, reconciliation).

The strategy object is the one the backtester runs (``engine.templated``), driven by
``engine.live.LiveShell``, the backtester's decision path bar by bar (parity is tested in
``tests/unit/engine/test_live_parity.py``). This module is its I/O shell:

- it starts only after the trading service has reconciled every account (``reconciled``), and
  resumes ``running`` deployments after a restart;
- it reads closed bars of the deployment's interval from the bar feed; the warm-up history is
  the stored bars *before* the first live bar, so no bar is seen twice;
- a ``Submit`` becomes an order with ``client_order_id = dp<deployment>-<local id>``: the local
  ids are deterministic and persisted (``next_id``), so a step replayed after a crash maps to
  the same client order id and the order path answers the existing order instead of placing a
  second one. ``fraction`` orders are sized on the allocation's equity at the last close and
  rounded down to the venue's quantity step;
- fills and rejections of its orders come back from the execution layer and go to the strategy
  (``on_fill`` places its protective brackets, as in the backtest);
- a failure stops the deployment with the reason (``failed``), never silently.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import math
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import ROUND_DOWN, Decimal
from typing import Any, Protocol

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import ConfigurationError, Invalid, NotFound
from algotrendy.core.market import Bars, BarUpdate, Timeframe
from algotrendy.core.venue import VenueFill
from algotrendy.db.outbox import Outbox
from algotrendy.engine.live import AccountState, Bar, Cancel, CancelAll, Command, LiveShell, Submit
from algotrendy.engine.orders import Fill, OrderSide, OrderStatus
from algotrendy.engine.signals import resolve_params
from algotrendy.engine.strategy import Strategy
from algotrendy.engine.template import StrategyTemplate, TemplateError
from algotrendy.engine.templated import Enrich, RotationStrategy, TemplateStrategy
from algotrendy.services.ml.interface import ModelScores
from algotrendy.services.strategies.interface import StrategiesApi
from algotrendy.services.trading import store
from algotrendy.services.trading.interface import (
    DeploymentChanged,
    DeploymentCreate,
    DeploymentRead,
    DeploymentStatus,
    OrderCreate,
    OrderRead,
    TradingApi,
)

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


def _read(row: dict[str, Any], orders: int) -> DeploymentRead:
    return DeploymentRead(
        deployment_id=row["id"],
        strategy_id=row["strategy_id"],
        version=row["version"],
        portfolio_id=row["portfolio_id"],
        symbols=list(row["symbols"]),
        interval=row["interval"],
        allocation=row["allocation"],
        parameters=dict(row["parameters"]),
        status=row["status"],
        reason=row["reason"],
        bars_seen=row["bars_seen"],
        orders_placed=orders,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


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


class Deployments:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        outbox: Outbox,
        trading: TradingApi,
        strategies: Callable[[], StrategiesApi | None],
        feed: BarFeed | None,
        reconciled: asyncio.Event,
        buy_haircut: float = 1.0,
        models: Callable[[], ModelScores | None] = lambda: None,
    ) -> None:
        self._models = models
        self._sessions = sessions
        self._clock = clock
        self._outbox = outbox
        self._trading = trading
        self._strategies = strategies
        self._feed = feed
        self._reconciled = reconciled
        self._runners: dict[uuid.UUID, _Runner] = {}
        self._haircut = buy_haircut
        """A fraction-sized buy is divided by this (the cash the order path sets aside per unit of
        notional), so "100 % of equity" is affordable: the backtest sizes at the fill price, live
        must size before it."""

    # ---- API -----------------------------------------------------------------------------------

    async def deploy(
        self, *, owner_id: uuid.UUID, strategy_id: uuid.UUID, request: DeploymentCreate
    ) -> DeploymentRead:
        strategies = self._strategies()
        if strategies is None or self._feed is None:
            raise ConfigurationError(
                "deployments need the strategies and marketdata services in this process"
            )
        await self._trading.account(owner_id=owner_id, portfolio_id=request.portfolio_id)  # 404 unless yours
        strategy = await strategies.get(owner=owner_id, strategy_id=strategy_id)
        symbols = request.symbols or [u.symbol for u in strategy.symbols]
        if not symbols:
            raise Invalid("the strategy has no default symbols: give symbols", field="symbols")
        interval = request.interval or (strategy.symbols[0].interval if strategy.symbols else "1d")
        try:
            params = resolve_params(strategy.template, request.parameters)
        except TemplateError as exc:
            raise Invalid(
                str(exc), field=(exc.field or "parameters").replace("params.", "parameters.")
            ) from exc
        seconds = Timeframe.parse(interval).seconds
        build_strategy(strategy.template, params, symbols, seconds)  # refuses what cannot run
        await model_enrich(self._models(), owner_id, strategy.template, interval)  # and unknown models
        for symbol in symbols:
            if not await self._feed.has(symbol, interval):
                raise Invalid(f"no {interval} bars are stored or streamed for {symbol}", field="symbols")
        now = self._clock.now()
        row = {
            "id": uuid.uuid4(),
            "owner_id": owner_id,
            "portfolio_id": request.portfolio_id,
            "strategy_id": strategy_id,
            "version": strategy.version,
            "template": strategy.template.model_dump(mode="json"),
            "parameters": params,
            "symbols": symbols,
            "interval": interval,
            "allocation": request.allocation,
            "warmup_bars": request.warmup_bars,
            "status": DeploymentStatus.STARTING.value,
            "reason": None,
            "next_id": 1,
            "bars_seen": 0,
            "last_bar_ts": None,
            "created_at": now,
            "updated_at": now,
        }
        async with self._sessions() as session, session.begin():
            await session.execute(insert(store.deployments).values(**row))
            await self._event(session, row)
        self._launch(row)
        return _read(row, 0)

    async def list(self, *, owner_id: uuid.UUID) -> builtins.list[DeploymentRead]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(store.deployments)
                .where(store.deployments.c.owner_id == owner_id)
                .order_by(store.deployments.c.created_at)
            )
            out = []
            for r in rows.mappings():
                out.append(_read(dict(r), await self._order_count(session, r["id"])))
            return out

    async def get(self, *, owner_id: uuid.UUID, deployment_id: uuid.UUID) -> DeploymentRead:
        async with self._sessions() as session:
            row = await self._row(session, deployment_id)
            if row is None or row["owner_id"] != owner_id:
                raise NotFound(f"deployment {deployment_id} not found")
            runner = self._runners.get(deployment_id)
            if runner is not None:  # progress not yet saved
                row = dict(row, bars_seen=runner.bars_seen, last_bar_ts=runner.last_bar_ts)
            return _read(row, await self._order_count(session, deployment_id))

    async def stop(self, *, owner_id: uuid.UUID, deployment_id: uuid.UUID) -> DeploymentRead:
        """Stop placing orders (open orders stay; cancel or close them as you see fit)."""
        await self.get(owner_id=owner_id, deployment_id=deployment_id)
        runner = self._runners.pop(deployment_id, None)
        if runner is not None and runner.task is not None:
            runner.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner.task
            if runner.shell is not None:
                await self._save(runner)
        await self._set(deployment_id, DeploymentStatus.STOPPED, "stopped by user")
        return await self.get(owner_id=owner_id, deployment_id=deployment_id)

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume what was running before a restart (each waits for reconciliation)."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(store.deployments).where(
                    store.deployments.c.status.in_(
                        (DeploymentStatus.STARTING.value, DeploymentStatus.RUNNING.value)
                    )
                )
            )
            for r in rows.mappings():
                self._launch(dict(r))

    async def close(self) -> None:
        runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            if runner.task is not None:
                runner.task.cancel()
        for runner in runners:
            if runner.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await runner.task
            if runner.shell is not None:
                with contextlib.suppress(Exception):
                    await self._save(runner)

    def _launch(self, row: dict[str, Any]) -> None:
        runner = _Runner(self, row)
        self._runners[runner.id] = runner
        runner.task = asyncio.get_running_loop().create_task(self._run(runner))

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
                    o.status.in_(("created", "validated", "submitted", "partial_fill")),
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

    async def _order_count(self, session: AsyncSession, deployment_id: uuid.UUID) -> int:
        rows = await session.execute(
            select(store.orders.c.id).where(store.orders.c.deployment_id == deployment_id)
        )
        return len(rows.all())

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


__all__ = ["BarFeed", "Deployments", "build_strategy"]
