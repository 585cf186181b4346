"""Market data from the command line and from (fake, local) exchanges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.apphelp import make_settings, running
from tests.fakes import FakeBinance


def cli(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "ALGO_DATA_DIR": str(data_dir), "ALGO_MARKETDATA__LOAD_SAMPLES": "false", **env}
    return subprocess.run(
        [sys.executable, "-m", "algotrendy", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=300,
        check=False,
    )


def test_import_show_quality_from_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    csv = tmp_path / "bars.csv"
    lines = ["timestamp,open,high,low,close,volume"] + [
        f"2024-02-{d:02d}T00:00:00Z,{10 + d},{11 + d},{9 + d},{10.5 + d},{100 * d}" for d in range(1, 29)
    ]
    csv.write_text("\n".join(lines) + "\n")
    r = cli(
        data, "data", "import", str(csv), "--symbol", "ACME", "--interval", "1d", "--asset-type", "crypto"
    )
    assert r.returncode == 0, r.stderr
    assert "imported 28 bars of ACME@LOCAL/1d (28 new or changed)" in r.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*lines[:10], "2024-03-01T00:00:00Z,1,2,0.5,1,-5"]) + "\n")
    r = cli(data, "data", "import", str(bad), "--symbol", "ACME2", "--interval", "1d")
    assert r.returncode == 1 and "line 11" in r.stderr, r.stderr
    r = cli(data, "data", "symbols")
    assert "ACME" in r.stdout and "ACME2" not in r.stdout
    r = cli(data, "data", "show", "ACME", "--indicators", "sma:5", "--limit", "3")
    assert r.returncode == 0, r.stderr
    rows = r.stdout.strip().splitlines()
    assert "sma_5" in rows[0] and len(rows) == 4
    r = cli(data, "data", "quality", "ACME")
    report = json.loads(r.stdout)
    assert report["summary"]["bars"] == 28 and report["gaps"]["total"] == 0


def test_download_from_a_ccxt_exchange_resumes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with FakeBinance() as fake:
        env = {"ALGO_MARKETDATA__SOURCE_URLS": json.dumps({"binance": fake.url})}
        args = [
            "data",
            "download",
            "--source",
            "binance",
            "--symbol",
            "BTC/USDT",
            "--timeframe",
            "1h",
            "--since",
            "2021-01-01",
            "--until",
            "2021-01-10",
        ]
        r = cli(data, *args, **env)
        assert r.returncode == 0, r.stderr + r.stdout
        assert "BTCUSDT@BINANCE/1h: 216 bars" in r.stdout
        again = cli(data, *[a if a != "2021-01-10" else "2021-01-11" for a in args], **env)
        assert again.returncode == 0, again.stderr
        assert "resumed from 2021-01-09 23:00:00" in again.stdout
    r = cli(data, "data", "symbols")
    assert "BTCUSDT" in r.stdout and "240 bars" in r.stdout


async def test_order_book_snapshots_are_stored_and_served(tmp_path: Path) -> None:
    with FakeBinance() as fake:
        settings = make_settings(tmp_path, marketdata={"source_urls": {"binance": fake.url}})
        async with running(settings) as api:
            _u, headers, _ = await api.user()
            r = await api.client.post(
                "/api/v1/market-data/orderbook/BTCUSDT/snapshot",
                headers=headers,
                params={"exchange": "binance", "depth": 5},
            )
            assert r.status_code == 201, r.text
            snap = r.json()
            assert len(snap["bids"]) == 5 and snap["bids"][0][0] > snap["bids"][1][0]
            assert snap["asks"][0][0] > snap["bids"][0][0]
            listed = await api.client.get("/api/v1/market-data/orderbook/BTCUSDT", headers=headers)
            assert [s["id"] for s in listed.json()] == [snap["id"]]
            unknown = await api.client.post(
                "/api/v1/market-data/orderbook/BTCUSDT/snapshot",
                headers=headers,
                params={"exchange": "nosuchexchange"},
            )
            assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "source"


@pytest.mark.parametrize("source", ["alpaca", "polygon"])
def test_download_sources_without_keys_say_what_to_set(tmp_path: Path, source: str) -> None:
    r = cli(
        tmp_path / "data", "data", "download", "--source", source, "--symbol", "SPY", "--since", "2020-01-01"
    )
    assert r.returncode == 1 and "ALGO_MARKETDATA__" in r.stderr


async def test_on_chain_prices_and_wallet_balances(tmp_path: Path) -> None:
    from tests.fakes.covalent import API_KEY, WALLET, WBTC, FakeCovalent

    with FakeCovalent() as fake:
        settings = make_settings(
            tmp_path, marketdata={"source_urls": {"covalent": fake.url}, "covalent_api_key": API_KEY}
        )
        async with running(settings) as api:
            _u, headers, _ = await api.user()
            r = await api.client.get(
                f"/api/v1/market-data/blockchain/1/{WBTC}",
                headers=headers,
                params={"start_date": "2021-01-01", "end_date": "2021-01-10"},
            )
            assert r.status_code == 200, r.text
            prices = r.json()["prices"]
            assert [p["date"] for p in prices][:2] == ["2021-01-01", "2021-01-02"] and len(prices) == 10
            assert all(p["price"] > 0 for p in prices)
            w = await api.client.get(f"/api/v1/market-data/wallets/1/{WALLET}", headers=headers)
            assert w.status_code == 200, w.text
            balances = w.json()["balances"]
            assert any(b["native"] for b in balances) and any(b["spam"] for b in balances)
            bad = await api.client.get("/api/v1/market-data/wallets/1/0xnothex", headers=headers)
            assert bad.status_code == 422


async def test_on_chain_data_without_a_key_is_a_clear_error(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as api:
        _u, headers, _ = await api.user()
        r = await api.client.get("/api/v1/market-data/wallets/1/" + "0x" + "1" * 40, headers=headers)
        assert r.status_code == 422 and "COVALENT_API_KEY" in r.json()["detail"]
