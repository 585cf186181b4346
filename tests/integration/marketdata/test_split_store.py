"""Market data in split shape: bars in PostgreSQL, cache in Redis, events on NATS JetStream."""

from __future__ import annotations

import asyncio
from pathlib import Path

from algotrendy.core.events import Envelope
from tests.apphelp import running, service_settings


async def test_import_query_and_invalidate_on_postgres_redis_nats(tmp_path: Path) -> None:
    async with service_settings(tmp_path) as base:
        settings = base.model_copy(
            update={"marketdata": base.marketdata.model_copy(update={"bar_store_url": base.database_url})}
        )
        async with running(settings) as api:
            assert type(api.container.services["marketdata"].store).__name__ == "PostgresBarStore"
            seen: list[Envelope] = []

            async def on_update(envelope: Envelope) -> None:
                seen.append(envelope)

            await api.container.bus.subscribe("market.data.updated", group="test-md", handler=on_update)
            _u, headers, _ = await api.user()
            header = "timestamp,open,high,low,close,volume\n"
            rows = [
                f"2024-03-{d:02d}T00:00:00Z,{50 + d},{51 + d},{49 + d},{50.5 + d},{10 * d}\n"
                for d in range(1, 31)
            ]
            params = {"symbol": "PGT", "interval": "1d", "asset_type": "crypto"}
            r = await api.client.post(
                "/api/v1/market-data/import",
                headers=headers,
                params=params,
                content=(header + "".join(rows[:20])).encode(),
            )
            assert r.status_code == 201, r.text
            first = (
                await api.client.get(
                    "/api/v1/market-data/PGT", headers=headers, params={"indicators": "sma:5"}
                )
            ).json()
            assert first["count"] == 20 and first["data"]["sma_5"][4] is not None
            r = await api.client.post(
                "/api/v1/market-data/import",
                headers=headers,
                params=params,
                content=(header + "".join(rows)).encode(),
            )
            assert r.json()["written"] == 10
            again = (
                await api.client.get(
                    "/api/v1/market-data/PGT", headers=headers, params={"indicators": "sma:5"}
                )
            ).json()
            assert again["count"] == 30  # the Redis-cached answer was invalidated
            async with asyncio.timeout(15):
                while len(seen) < 2:
                    await asyncio.sleep(0.1)
            assert {e.data["symbol"] for e in seen} == {"PGT"}
