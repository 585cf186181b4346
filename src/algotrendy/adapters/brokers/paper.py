"""The paper broker: the embedded default venue, a simulated exchange on live or replayed prices.

``PaperExchange`` (one per process) is the simulation every paper account shares: one order book,
one price tape per symbol, one lock. ``await exchange.account(id, initial_cash=...)`` gives the
account's ``PaperVenue`` (``paper_venue``), which implements ``core.venue.Venue`` (name ``"paper"``).

Matching is the engine's, never a copy: every order is an ``engine.orders.Order[Decimal]`` and is
matched by ``engine.execution.match_bar`` (sorted by ``priority``, with ``Costs`` for slippage and
commission, and its time-in-force rules), exactly as in the backtester. What the paper exchange
adds is where the "bar" comes from and how much of it an order may take:

- At submission (``latency_ns == 0``) the order meets a one-price bar at the latest quote
  (``QuoteSource.last``): MARKET orders fill there with slippage, marketable limits at the quote,
  stops already through their level trigger, a trailing stop starts its best price, IOC/FOK
  orders expire if they cannot fill. With ``latency_ns > 0`` an order reaches the book only at
  ``submitted + latency_ns`` (the injected clock) and first meets the bar update after that.
- After that, orders rest and meet each price segment of ``QuoteSource.stream(symbol)``; one
  stream task per symbol with open orders, started on demand and stopped when none are left.
- Forming bars: each update is matched only on its part that is new since the previous update of
  the same bar, so a high is met once, never twice (``paper_streams`` states the rule).
- Volume participation: with ``max_participation`` set and the volume known, one order takes at
  most ``max_participation * volume`` per match, where volume is the quote's at submission, a
  new bar's volume, or a forming bar's volume growth since the previous update (so over a whole
  bar at most that fraction of the bar). The rest keeps working (a triggered stop as a market
  order); IOC expires the rest, FOK fills all or nothing. Unknown volume does not cap.
- DAY orders live through the UTC day (of the venue's clock) they were submitted on: the first bar
  matched on a later day expires them (``match_bar``'s ``first_day`` rule, seeded at submission).
- Reduce-only orders are refused when they would not reduce the position, and are capped to it
  (cancelled once it is flat) when they fill. Buys are refused when their cost (limit price, or the
  last price with slippage, plus fees) exceeds ``free`` cash; shorts are allowed without a margin check.
  Every symbol is priced in the account's currency.

Durability (RELIABILITY.md G1/G3/G8): every state change (an acknowledged order, a fill, a
cancellation, an expiry, a trailing stop's best price) commits in one transaction through the
injected sessions *before* ``submit``/``cancel`` returns or its events are published; a failed
commit restores the in-memory orders as they were. A new exchange on the same database reloads the
accounts (cash and positions are recomputed from the fills) and the open orders, and resumes
matching them. Fill ids are ``paper-<uuid>``: unique and stable.

Concurrency: one ``asyncio.Lock`` serializes every state change and read of the book (submits,
cancels, bar matching), so concurrent submits neither double-fill nor lose updates. Events:
``PaperVenue.events()`` yields, in commit order, a ``VenueOrder`` for every status change (and
every fill) and a ``VenueFill`` for every fill of that account (the fill before the order update
it causes); any number of consumers, each from when it subscribed (``paper_streams.Reports``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import structlog
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.adapters.brokers import paper_store as store
from algotrendy.adapters.brokers.paper_open import OpenOrders
from algotrendy.adapters.brokers.paper_store import PaperAccount, PaperOrder
from algotrendy.adapters.brokers.paper_streams import Segment, Tape, usable_quote
from algotrendy.adapters.brokers.paper_venue import PaperVenue
from algotrendy.core.clock import Clock
from algotrendy.core.market import BarUpdate, to_ns
from algotrendy.core.venue import (
    OrderRequest,
    Quote,
    QuoteSource,
    VenueAmbiguous,
    VenueDataError,
    VenueEvent,
    VenueFill,
    VenueOrder,
    VenueRejected,
    VenueUnavailable,
)
from algotrendy.engine.execution import NS_PER_DAY, Costs, match_bar, priority
from algotrendy.engine.orders import Fill, Order, OrderSide, OrderStatus, OrderType, TimeInForce

log = structlog.get_logger(__name__)

RETRY_SECONDS = (1.0, 30.0)
"""First and longest pause before resubscribing to a symbol's stream that failed or ended."""
_ZERO = Decimal(0)
_BECOME_MARKET = frozenset({OrderType.STOP, OrderType.TRAILING_STOP})


class _Taken(Exception):
    """The store already has an order under this account's client order id."""


def _again(existing: PaperOrder, r: OrderRequest) -> VenueOrder:
    """The answer to a submission whose client order id the account already used."""
    if not existing.same_as(r):
        raise VenueRejected(
            f"client_order_id {r.client_order_id!r} was already used for another order",
            code="duplicate_client_order_id",
        )
    return existing.view()


class PaperExchange:
    """The shared simulation: ``start()``, then ``account(...)`` per account, ``close()`` at the end."""

    name = "paper"

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        quotes: QuoteSource,
        clock: Clock,
        fee_rate: Decimal,
        fee_fixed: Decimal,
        slippage: Decimal,
        max_participation: Decimal | None = None,
        latency_ns: int = 0,
    ) -> None:
        for what, value in (("fee_rate", fee_rate), ("fee_fixed", fee_fixed), ("slippage", slippage)):
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ValueError(f"{what} must be a finite, non-negative Decimal")
        if slippage >= 1 or fee_rate >= 1:
            raise ValueError("fee_rate and slippage are fractions below 1")
        if max_participation is not None and not (_ZERO < max_participation <= 1):
            raise ValueError("max_participation is a fraction in (0, 1] or None")
        if latency_ns < 0:
            raise ValueError("latency_ns must not be negative")
        self._sessions = sessions
        self._quotes = quotes
        self._clock = clock
        self._costs = Costs(fee_rate, slippage, fee_fixed)
        self._max_part = max_participation
        self._latency_ns = latency_ns
        self._lock = asyncio.Lock()
        self._accounts: dict[str, PaperAccount] = {}
        self._venues: dict[str, PaperVenue] = {}
        self._open = OpenOrders(lambda po: po.cost(self._costs, _ZERO))
        self._first_day: dict[str, int] = {}
        self._streams: dict[str, asyncio.Task[None]] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._started = False

    async def start(self) -> None:
        """Load accounts and open orders from the database and resume matching them."""
        async with self._lock:
            if self._started:
                return
            self._accounts.clear()
            self._open.clear()
            self._first_day.clear()
            async with self._sessions() as s:
                for account_id, currency, initial in await store.load_accounts(s):
                    account = PaperAccount(account_id, currency, initial, initial)
                    for f in await store.load_fills(s, account_id=account_id):
                        account.book(store.engine_fill(f))
                    self._accounts[account_id] = account
                    self._venues.setdefault(account_id, PaperVenue(self, account_id)).reports.reopen()
                for po in await store.load_open_orders(s):
                    self._open.add(po)
                    if po.first_day is not None:
                        self._first_day[po.order.id] = po.first_day
            self._started = True
            for symbol in self._open.symbols():
                self._ensure_stream(symbol, await self._seed(symbol))
        log.info("paper.started", accounts=len(self._accounts), open_orders=len(self._open))

    async def close(self) -> None:
        """Stop matching and end every account's event streams; the book stays in the database."""
        async with self._lock:
            self._started = False
            tasks = [*self._streams.values(), *self._retiring]
            self._streams.clear()
            for task in tasks:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for venue in self._venues.values():
            venue.reports.end()

    async def account(self, account_id: str, currency: str = "USD", *, initial_cash: Decimal) -> PaperVenue:
        """The account's venue, created with ``currency`` and ``initial_cash`` on first use (an
        existing account keeps what it was created with)."""
        if not account_id or len(account_id) > 100 or not currency or len(currency) > 16:
            raise ValueError("account_id must be 1 to 100 characters and currency 1 to 16")
        if not isinstance(initial_cash, Decimal) or not initial_cash.is_finite() or initial_cash < 0:
            raise ValueError("initial_cash must be a finite, non-negative Decimal")
        async with self._lock:
            self._require_started()
            if account_id not in self._accounts:
                try:
                    async with self._sessions.begin() as s:
                        await store.insert_account(
                            s,
                            account_id=account_id,
                            currency=currency,
                            initial_cash=initial_cash,
                            at=self._clock.now(),
                        )
                except SQLAlchemyError as exc:
                    raise VenueUnavailable("the paper store could not create the account") from exc
                self._accounts[account_id] = PaperAccount(account_id, currency, initial_cash, initial_cash)
            return self._venues.setdefault(account_id, PaperVenue(self, account_id))

    # -- the order path ---------------------------------------------------------------------

    async def _submit(self, account_id: str, r: OrderRequest) -> VenueOrder:
        async with self._lock:
            self._require_started()
            existing = self._open.get((account_id, r.client_order_id))
            if existing is not None:
                return _again(existing, r)
            try:
                return await self._place(account_id, r)
            except (VenueRejected, VenueUnavailable, _Taken) as exc:
                # An order this account already has under the client order id answers a retried
                # submission, whatever else would refuse it. Only the open ones are in memory;
                # the rest are read here, when a refusal or the unique key says one may exist,
                # rather than before every order.
                existing = await self._find(account_id, r.client_order_id)
                if existing is not None:
                    return _again(existing, r)
                if isinstance(exc, _Taken):
                    raise VenueAmbiguous("the paper store refused the order and has no such order") from exc
                raise

    async def _place(self, account_id: str, r: OrderRequest) -> VenueOrder:
        """Accept a new order (call under the lock): refuse it, or store it with what it met."""
        account = self._accounts[account_id]
        order = store.build_order(r, f"paper-o-{uuid.uuid4().hex}")
        quote = await self._last(r.symbol)
        if quote is None:
            raise VenueRejected(f"unknown symbol {r.symbol!r}", code="unknown_symbol")
        held = account.held(r.symbol)
        if order.reduce_only and held * order.side.sign >= 0:
            raise VenueRejected("reduce-only order would not reduce a position", code="reduce_only")
        now = self._now_ns()
        po = PaperOrder(0, account_id, r.client_order_id, order.type, order, now, now + self._latency_ns, now)
        if order.side is OrderSide.BUY:
            need, free = await self._cost(po, quote.price), await self._free(account)
            if need > free:
                raise VenueRejected(
                    f"insufficient funds: needs {need}, free {free}", code="insufficient_funds"
                )
        order.transition(OrderStatus.VALIDATED)
        order.transition(OrderStatus.SUBMITTED)
        if order.time_in_force is TimeInForce.DAY:
            po.first_day = now // NS_PER_DAY
        fills: list[VenueFill] = []
        if self._latency_ns == 0:
            # The order meets the latest quote at once and is stored with that outcome in
            # one commit (acknowledgement and fills together).
            price = quote.price
            try:
                fills = await self._step(
                    r.symbol, [po], Segment(price, price, price, quote.volume), now, new=po
                )
            except IntegrityError as exc:  # the client order id is taken: _submit decides
                raise _Taken from exc
            except SQLAlchemyError as exc:
                raise VenueAmbiguous("the paper store failed while recording the order") from exc
            except Exception:  # acknowledged all the same: the order rests for the next bar
                log.exception("paper.match_failed", symbol=r.symbol)
                await self._store_new(po)
        else:
            await self._store_new(po)
        if order.status.is_open:
            self._ensure_stream(r.symbol, quote)
        # Like a real venue's answer to a market order (Binance's FULL response): the order
        # as it stands after the immediate match, with its fills, so they are booked at once.
        return dataclasses.replace(po.view(), fills=tuple(fills))

    async def _store_new(self, po: PaperOrder) -> None:
        """Record an acknowledged order that has not met a price yet (call under the lock)."""
        try:
            async with self._sessions.begin() as s:
                po.seq = await store.insert_order(s, po, at=self._clock.now())
        except IntegrityError as exc:  # the client order id is taken: _submit decides
            raise _Taken from exc
        except SQLAlchemyError as exc:
            raise VenueAmbiguous("the paper store failed while recording the order") from exc
        self._accept(po)
        self._venues[po.account_id].reports.publish(po.view())

    def _accept(self, po: PaperOrder) -> None:
        self._open.add(po)
        if po.first_day is not None:
            self._first_day[po.order.id] = po.first_day

    async def _cancel(self, account_id: str, client_order_id: str, symbol: str) -> VenueOrder:
        async with self._lock:
            self._require_started()
            po = self._open.get((account_id, client_order_id))
            if po is None or po.order.symbol != symbol:
                found = po or await self._find(account_id, client_order_id)
                if found is None or found.order.symbol != symbol:
                    raise VenueRejected(
                        f"unknown order {client_order_id!r} on {symbol}", code="unknown_order"
                    )
                return found.view()
            saved = po.saved()
            po.order.transition(OrderStatus.CANCELLED, "cancelled on request")
            po.updated_ns = self._now_ns()
            try:
                async with self._sessions.begin() as s:
                    await store.update_order(s, po)
            except SQLAlchemyError as exc:
                po.restore(saved)
                raise VenueUnavailable("the paper store failed; the order is unchanged") from exc
            self._forget(po)
            view = po.view()
            self._venues[account_id].reports.publish(view)
            self._retire(symbol)
            return view

    async def _step(
        self, symbol: str, batch: list[PaperOrder], seg: Segment, now: int, new: PaperOrder | None = None
    ) -> list[VenueFill]:
        """Match ``batch`` (open orders of ``symbol``) against one segment; commit; then publish.

        ``new`` is an order of the batch not stored yet: it is inserted in the same commit, as it
        stands after the match, and its acknowledgement is published first. Returns the fills."""
        batch.sort(key=lambda p: (priority(p.order), p.seq))
        acknowledged = None if new is None else new.view()
        saved = {p.order.id: p.saved() for p in batch}
        by_id = {p.order.id: p for p in batch}
        fills: list[tuple[PaperOrder, Fill[Decimal]]] = []
        events: list[tuple[str, VenueEvent]] = []
        reported: dict[str, tuple[OrderStatus, Decimal | None]] = {}
        working: dict[str, Decimal] = {}  # account -> position in ``symbol`` during this step
        cap = None if self._max_part is None or seg.volume is None else self._max_part * seg.volume

        def execute(order: Order[Decimal], price: Decimal) -> None:
            po = by_id[order.id]
            po.updated_ns = now
            if po.type in _BECOME_MARKET:  # a triggered stop is a market order until it is done
                order.triggered, order.type = True, OrderType.MARKET
            account = self._accounts[po.account_id]
            qty = order.remaining if cap is None else min(order.remaining, cap)
            if order.reduce_only:
                held = working.get(po.account_id, account.held(symbol))
                if held * order.side.sign >= 0:
                    order.transition(OrderStatus.CANCELLED, "reduce-only: nothing left to reduce")
                    return
                qty = min(qty, abs(held))
            if order.time_in_force is TimeInForce.FOK and qty < order.remaining:
                order.transition(OrderStatus.EXPIRED, "fill or kill: not enough volume to fill it all")
                return
            if qty > 0:
                fill = Fill(
                    f"paper-{uuid.uuid4().hex}",
                    order.id,
                    symbol,
                    order.side,
                    qty,
                    price,
                    self._costs.fee(qty, price),
                    ts=now,
                )
                order.apply_fill(fill)
                fills.append((po, fill))
                held = working.get(po.account_id, account.held(symbol))
                working[po.account_id] = held + order.side.sign * qty
                events.append((po.account_id, po.fill_view(fill, account.currency)))
                events.append((po.account_id, po.view()))
                reported[order.id] = (order.status, order.filled_quantity)
                if order.reduce_only and order.status.is_open and working[po.account_id] == 0:
                    order.transition(OrderStatus.CANCELLED, "reduce-only: position closed")
            if order.time_in_force is TimeInForce.IOC and order.status.is_open:
                order.transition(OrderStatus.EXPIRED, "immediate or cancel: the rest was not filled")

        try:
            match_bar(
                [p.order for p in batch],
                symbol,
                seg.open,
                seg.high,
                seg.low,
                now_ns=now,
                first_day=self._first_day,
                costs=self._costs,
                execute=execute,
            )
            changed = [p for p in batch if p.saved()[:-1] != saved[p.order.id][:-1]]  # updated_ns aside
            if not changed and new is None:
                return []
            for p in changed:
                p.updated_ns = now
                was = saved[p.order.id]
                if reported.get(p.order.id, (was[1], was[2])) != (p.order.status, p.order.filled_quantity):
                    events.append((p.account_id, p.view()))
            async with self._sessions.begin() as s:
                if new is not None:
                    new.seq = await store.insert_order(s, new, at=self._clock.now())
                for p in changed:
                    if p is not new:
                        await store.update_order(s, p)
                for p, f in fills:
                    currency = self._accounts[p.account_id].currency
                    await store.insert_fill(
                        s, p.fill_view(f, currency), account_id=p.account_id, at=self._clock.now()
                    )
        except BaseException:  # nothing committed: the book stays as it was (cancellation included)
            for p in batch:
                p.restore(saved[p.order.id])
            raise
        for p, f in fills:
            self._accounts[p.account_id].book(f)
        if new is not None:
            if new.order.status.is_open:
                self._accept(new)
            assert acknowledged is not None
            events.insert(0, (new.account_id, acknowledged))
        for p in changed:
            if not p.order.status.is_open:
                self._forget(p)
            elif p is not new:
                self._open.refresh(p)  # filled in part: what it would still cost changed
        for account_id, event in events:
            self._venues[account_id].reports.publish(event)
        return [e for _, e in events if isinstance(e, VenueFill)]

    # -- streams --------------------------------------------------------------------------------

    def _ensure_stream(self, symbol: str, seed: Quote | None) -> None:
        if symbol not in self._streams:
            self._streams[symbol] = asyncio.create_task(self._run(symbol, seed), name=f"paper-{symbol}")

    def _retire(self, symbol: str) -> None:
        """Stop ``symbol``'s stream when it has no open orders left (call under the lock)."""
        if self._open.has_symbol(symbol):
            return
        task = self._streams.pop(symbol, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _run(self, symbol: str, seed: Quote | None) -> None:
        me = asyncio.current_task()
        tape = Tape(seed)
        pause = RETRY_SECONDS[0]
        while True:
            updates: AsyncIterator[BarUpdate] | None = None
            try:
                updates = self._quotes.stream(symbol)
                async for update in updates:
                    pause = RETRY_SECONDS[0]
                    async with self._lock:
                        if self._streams.get(symbol) is not me:
                            return
                        await self._on_update(symbol, tape, update)
                        if not self._open.has_symbol(symbol):
                            del self._streams[symbol]
                            return
                log.warning("paper.stream_ended", symbol=symbol)
            except Exception:
                log.exception("paper.stream_failed", symbol=symbol)
            finally:
                aclose = getattr(updates, "aclose", None)  # None also when stream() raised
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await aclose()
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_SECONDS[1])
            async with self._lock:
                if self._streams.get(symbol) is not me:
                    return
                if not self._open.has_symbol(symbol):
                    del self._streams[symbol]
                    return
            tape = Tape(await self._seed(symbol))  # a gap: seed again from the latest quote

    async def _on_update(self, symbol: str, tape: Tape, update: BarUpdate) -> None:
        try:
            seg = tape.advance(update)
        except VenueDataError as exc:
            log.warning("paper.bar_quarantined", symbol=symbol, ts=update.ts, problem=str(exc))
            return
        if seg is None:
            return
        now = self._now_ns()
        batch = [po for po in self._open.of_symbol(symbol) if po.active_ns <= now]
        if batch:
            try:
                await self._step(symbol, batch, seg, now)
            except Exception:  # undone by _step; the orders meet the next update
                log.exception("paper.match_failed", symbol=symbol, ts=update.ts)

    # -- helpers ----------------------------------------------------------------------------------

    def _require_started(self) -> None:
        if not self._started:
            raise VenueUnavailable("the paper exchange is not running")

    def _now_ns(self) -> int:
        return to_ns(self._clock.now())

    def _forget(self, po: PaperOrder) -> None:
        self._open.pop((po.account_id, po.client_order_id))
        self._first_day.pop(po.order.id, None)

    async def _last(self, symbol: str) -> Quote | None:
        """The latest usable quote of ``symbol`` (``None``: unknown or unusable)."""
        try:
            quote = await self._quotes.last(symbol)
        except Exception as exc:
            raise VenueUnavailable(f"no price source for {symbol}: {exc}") from exc
        usable = None if quote is None else usable_quote(quote)
        if quote is not None and usable is None:
            log.warning("paper.quote_quarantined", symbol=symbol)
        return usable

    async def _seed(self, symbol: str) -> Quote | None:
        """A quote to start ``symbol``'s tape from; ``None`` when the source cannot say now."""
        try:
            return await self._last(symbol)
        except VenueUnavailable:
            log.warning("paper.no_seed", symbol=symbol)
            return None

    async def _find(self, account_id: str, client_order_id: str) -> PaperOrder | None:
        po = self._open.get((account_id, client_order_id))
        if po is not None:
            return po
        try:
            async with self._sessions() as s:
                return await store.find_order(s, account_id=account_id, client_order_id=client_order_id)
        except SQLAlchemyError as exc:
            raise VenueUnavailable("the paper store is unavailable") from exc

    async def _cost(self, po: PaperOrder, last: Decimal | None = None) -> Decimal:
        if last is None and po.order.limit_price is None:
            quote = await self._last(po.order.symbol)
            last = quote.price if quote is not None else po.order.average_price or po.order.stop_price
        return po.cost(self._costs, last or _ZERO)

    async def _free(self, account: PaperAccount) -> Decimal:
        reserved, market_buys = self._open.buys_of(account.account_id)
        for po in market_buys:
            reserved += await self._cost(po)
        return account.cash - reserved
