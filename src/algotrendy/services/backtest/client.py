"""``BacktestClient``: the ``BacktestApi`` over HTTP, for processes that do not host it.

Same method names, keyword-only arguments and DTOs as ``BacktestService``. The owner is the
bearer token's user: acting for anyone else is refused locally with ``Forbidden``. Problem+json
errors come back as the matching ``core.errors`` class with ``code``, ``detail`` and ``field``;
a transport failure or a 5xx is ``TemporaryError`` (``gateway.remote``).
"""

from __future__ import annotations

import builtins
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from algotrendy.gateway.remote import RemoteApi
from algotrendy.services.backtest.interface import (
    BacktestApi,
    BacktestCreate,
    CompareRead,
    CompareRequest,
    MonteCarloCreate,
    OptimizeCreate,
    RunAccepted,
    RunKind,
    RunResults,
    RunStatusRead,
    RunSummary,
    StrategyBacktestCreate,
    StrategyOptimizeCreate,
    WalkForwardCreate,
)

PREFIX = "/api/v1/backtest"
STRATEGIES = "/api/v1/strategies"
_ACCEPTED = TypeAdapter(RunAccepted)
_STATUS = TypeAdapter(RunStatusRead)
_RESULTS = TypeAdapter(RunResults)
_SUMMARIES = TypeAdapter(list[RunSummary])
_COMPARE = TypeAdapter(CompareRead)


class BacktestClient(RemoteApi):
    """``BacktestApi`` over an ``httpx.AsyncClient`` (a real transport or ``httpx.ASGITransport``)."""

    service = "backtest"

    def with_token(self, token: str) -> BacktestClient:
        return BacktestClient(self._http, token=token)

    # ---- starting runs ----------------------------------------------------------------------------

    async def backtest(self, *, owner: uuid.UUID, request: BacktestCreate) -> RunAccepted:
        self._own(owner)
        return self._parse(await self._send("POST", PREFIX, json=self._body(request)), _ACCEPTED)

    async def backtest_strategy(
        self, *, owner: uuid.UUID, strategy_id: uuid.UUID, request: StrategyBacktestCreate
    ) -> RunAccepted:
        self._own(owner)
        response = await self._send("POST", f"{STRATEGIES}/{strategy_id}/backtest", json=self._body(request))
        return self._parse(response, _ACCEPTED)

    async def optimize(self, *, owner: uuid.UUID, request: OptimizeCreate) -> RunAccepted:
        self._own(owner)
        response = await self._send("POST", f"{PREFIX}/optimize", json=self._body(request))
        return self._parse(response, _ACCEPTED)

    async def optimize_strategy(
        self, *, owner: uuid.UUID, strategy_id: uuid.UUID, request: StrategyOptimizeCreate
    ) -> RunAccepted:
        self._own(owner)
        response = await self._send("POST", f"{STRATEGIES}/{strategy_id}/optimize", json=self._body(request))
        return self._parse(response, _ACCEPTED)

    async def walk_forward(self, *, owner: uuid.UUID, request: WalkForwardCreate) -> RunAccepted:
        self._own(owner)
        response = await self._send("POST", f"{PREFIX}/walk-forward", json=self._body(request))
        return self._parse(response, _ACCEPTED)

    async def monte_carlo(self, *, owner: uuid.UUID, request: MonteCarloCreate) -> RunAccepted:
        self._own(owner)
        response = await self._send("POST", f"{PREFIX}/monte-carlo", json=self._body(request))
        return self._parse(response, _ACCEPTED)

    # ---- reading and managing runs ---------------------------------------------------------------

    async def status(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> RunStatusRead:
        self._own(owner)
        return self._parse(await self._send("GET", f"{PREFIX}/{backtest_id}/status"), _STATUS)

    async def results(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> RunResults:
        self._own(owner)
        return self._parse(await self._send("GET", f"{PREFIX}/{backtest_id}/results"), _RESULTS)

    async def report_html(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> str:
        """The run's self-contained HTML report (``Conflict`` ``not_finished`` until it has results)."""
        self._own(owner)
        return (await self._send("GET", f"{PREFIX}/{backtest_id}/report")).text

    async def list(
        self,
        *,
        owner: uuid.UUID,
        kind: RunKind | None = None,
        strategy_id: uuid.UUID | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[RunSummary]:
        self._own(owner)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if kind is not None:
            params["kind"] = RunKind(kind).value
        if strategy_id is not None:
            params["strategy_id"] = str(strategy_id)
        return self._parse(await self._send("GET", PREFIX, params=params), _SUMMARIES)

    async def cancel(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> RunStatusRead:
        self._own(owner)
        return self._parse(await self._send("POST", f"{PREFIX}/{backtest_id}/cancel"), _STATUS)

    async def delete(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> None:
        self._own(owner)
        await self._send("DELETE", f"{PREFIX}/{backtest_id}")

    async def compare(self, *, owner: uuid.UUID, request: CompareRequest) -> CompareRead:
        self._own(owner)
        response = await self._send("POST", f"{PREFIX}/compare", json=self._body(request))
        return self._parse(response, _COMPARE)


if TYPE_CHECKING:  # mypy proves the client offers exactly the Protocol

    def _conforms(client: BacktestClient) -> BacktestApi:
        return client
