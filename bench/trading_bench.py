"""Trading engine benchmarks (issue 5 targets):

1. ``pre-trade``: ``engine.risk.pre_trade_check`` on a 50-position account with every limit set
   (the check on the order path), and the service's full pre-trade check (account snapshot from
   the database + the check). Target: p99 <= 200 us for the check.
2. ``paper``: in-process, ``TradingService.submit_order`` of a paper market order until its fill
   is booked in the position and the ledger (the call returns only then). Target: p99 <= 2 ms.
   Also counts SQL statements, sessions (pool checkouts) and commits per order, the outbox
   relays' included (they share the connection).
3. ``http``: ``POST /api/v1/trading/orders`` against ``algotrendy serve`` (one process, SQLite)
   flooded by ``wrk`` with ``--connections`` concurrent requests for ``--seconds``; resting
   limit orders of one user, so each request is a full order (intent, risk, reservation,
   venue). Meanwhile a second user places and cancels its own orders one at a time, 50 ms apart
   (httpx): the cancel latency while another user floods. Also the server's CPU per request (``/proc``).
   Targets: >= 500 orders/s, p99 <= 30 ms; cancels stay fast.
4. ``resting``: in process, 1,000 paper limit orders of one account resting far from the
   market, one after the other: the p50 of an order near the start, the middle and the end.
5. ``order-floor``: the storage stack's floor for an order of the paper path's shape (three
   transactions, 16 statements, no reads, no logic) on the async engine, and 16 statements in
   one durable transaction through the engine and through bare ``sqlite3``.
6. ``commit``: the disk's floor: one-row SQLite commits (WAL, ``synchronous=FULL``, as the
   records database runs) in the directory the other benchmarks use.
7. ``http-floor``: the HTTP stack's floor: ``GET /api/v1/trading/connections`` (authentication
   and one indexed read) flooded by ``wrk`` (one thread), with the server's CPU per request:
   what no order path can beat on this machine.

    uv run python bench/trading_bench.py [--runs 5] [--only pre-trade|paper|order-floor|http|...]

Loopback only; the client shares the machine's cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.procs import free_port


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def bench_pre_trade(n: int = 20_000) -> dict[str, float]:
    from algotrendy.engine.orders import OrderSide
    from algotrendy.engine.risk import AccountView, Holding, OrderIntent, RiskLimits, pre_trade_check

    d = Decimal
    holdings = {f"S{i}": Holding(d(100 + i), d("50.25"), d(10)) for i in range(50)}
    account = AccountView(
        equity=d(1_000_000), day_start_equity=d(1_010_000), holdings=holdings, recent_orders_ns=[0] * 30
    )
    limits = RiskLimits(
        max_order_notional=d(100_000),
        max_position_quantity=d(10_000),
        max_position_notional=d(500_000),
        max_concentration=d("0.2"),
        max_leverage=d(2),
        daily_loss_limit=d(50_000),
        max_orders_per_minute=100,
    )
    intent = OrderIntent("S7", OrderSide.BUY, d(25), d("50.30"))
    times = []
    for _ in range(n):
        t = time.perf_counter_ns()
        pre_trade_check(intent, account, limits, 10**18)
        times.append((time.perf_counter_ns() - t) / 1000)
    return {"p50_us": pct(times, 0.5), "p99_us": pct(times, 0.99)}


async def _container() -> tuple[object, uuid.UUID, uuid.UUID]:
    from algotrendy.app.container import Container
    from algotrendy.app.settings import Settings
    from algotrendy.services.portfolio.interface import PortfolioCreate

    settings = Settings(
        env="test",
        data_dir=Path(tempfile.mkdtemp(prefix="algo-bench-")),
        services=["users", "marketdata", "portfolio", "risk", "trading"],
        log={"level": "WARNING"},
    )
    container = Container.build(settings)
    await container.start()
    owner = uuid.uuid4()
    p = await container.services["portfolio"].create(
        owner_id=owner, data=PortfolioCreate(name="bench", initial_capital=Decimal(10**9))
    )
    return container, owner, p.portfolio_id


async def bench_paper(n: int = 400, warmup: int = 50) -> dict[str, float]:
    from sqlalchemy import event

    from algotrendy.services.trading.interface import OrderCreate

    container, owner, pid = await _container()
    trading = container.services["trading"]  # type: ignore[attr-defined]
    times = []
    checks = []
    # Statements and sessions (pool checkouts) per order, the outbox relays' included.
    counts = {"statements": 0, "sessions": 0, "commits": 0}

    def count(what: str) -> Any:
        def listener(*_: object) -> None:
            counts[what] += 1

        return listener

    sync_engine = container.engine.sync_engine  # type: ignore[attr-defined]
    listeners = [
        (sync_engine, "before_cursor_execute", count("statements")),
        (sync_engine.pool, "checkout", count("sessions")),
        (sync_engine, "commit", count("commits")),
    ]
    try:
        for i in range(n + warmup):
            if i == warmup:
                for target, name, fn in listeners:
                    event.listen(target, name, fn)
            request = OrderCreate(portfolio_id=pid, symbol="AAPL", side="BUY", quantity=Decimal(1))
            t = time.perf_counter()
            order, _ = await trading.submit_order(owner_id=owner, request=request)
            elapsed = time.perf_counter() - t
            assert order.status.value == "filled", order.status
            if i >= warmup:
                times.append(elapsed * 1000)
        await asyncio.sleep(0.5)  # the relays publish what the last orders committed
        for target, name, fn in listeners:
            event.remove(target, name, fn)
        for _ in range(200):
            t = time.perf_counter()
            await trading.pre_trade_check(owner_id=owner, request=request)
            checks.append((time.perf_counter() - t) * 1000)
    finally:
        await container.stop()  # type: ignore[attr-defined]
    return {
        "p50_ms": pct(times, 0.5),
        "p99_ms": pct(times, 0.99),
        **{f"{k}_per_order": v / n for k, v in counts.items()},
        "service_check_p50_ms": pct(checks, 0.5),
        "service_check_p99_ms": pct(checks, 0.99),
    }


async def bench_resting(n: int = 1000) -> dict[str, float]:
    """In process, one account: ``n`` paper limit orders resting far from the market, one after
    the other. The p50 of orders 20-120, 400-500 and the last 100: how an order's cost grows with
    what the account already has resting."""
    from algotrendy.services.trading.interface import OrderCreate

    container, owner, pid = await _container()
    trading = container.services["trading"]  # type: ignore[attr-defined]
    times = []
    try:
        for _ in range(n):
            request = OrderCreate(
                portfolio_id=pid,
                symbol="AAPL",
                side="BUY",
                quantity=Decimal(1),
                order_type="LIMIT",
                limit_price=Decimal(1),
            )
            t = time.perf_counter()
            order, _ = await trading.submit_order(owner_id=owner, request=request)
            times.append((time.perf_counter() - t) * 1000)
            assert order.status.value == "submitted", order.status
    finally:
        await container.stop()  # type: ignore[attr-defined]
    return {
        "p50_first_ms": pct(times[20:120], 0.5),
        "p50_middle_ms": pct(times[n * 2 // 5 : n // 2], 0.5),
        "p50_last_ms": pct(times[-100:], 0.5),
    }


def _server() -> tuple[subprocess.Popen[bytes], str]:
    tmp = Path(tempfile.mkdtemp(prefix="algo-bench-"))
    port = free_port()
    env = {
        **os.environ,
        "ALGO_DATA_DIR": str(tmp / "data"),
        "ALGO_GATEWAY__IP_BURST": "1e9",
        "ALGO_GATEWAY__IP_RATE_PER_MINUTE": "1e12",
        "ALGO_GATEWAY__USER_BURST": "1e9",
        "ALGO_GATEWAY__USER_RATE_PER_MINUTE": "1e12",
        "ALGO_GATEWAY__AUTH_BURST": "1e9",
        "ALGO_GATEWAY__AUTH_RATE_PER_MINUTE": "1e12",
        "ALGO_LOG__ACCESS_LOG": "false",
        "ALGO_LOG__LEVEL": "WARNING",
        "ALGO_SERVICES": "users,marketdata,portfolio,risk,trading",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "algotrendy", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "server.log").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/ready", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not start")


async def _user(client: httpx.AsyncClient, name: str) -> tuple[dict[str, str], str]:
    password = uuid.uuid4().hex
    await client.post(
        "/api/v1/users/register",
        json={"email": f"{name}@example.com", "username": name, "password": password},
    )
    token = (await client.post("/auth/login", json={"username": name, "password": password})).json()
    h = {"Authorization": f"Bearer {token['access_token']}"}
    r = await client.post(
        "/api/v1/portfolio", json={"name": name, "initial_capital": "1000000000"}, headers=h
    )
    return h, r.json()["portfolio_id"]


def bench_commit(n: int = 500) -> dict[str, float]:
    import sqlite3

    path = Path(tempfile.mkdtemp(prefix="algo-bench-")) / "commit.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    times = []
    for i in range(n):
        t = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (v) VALUES (?)", (str(i),))
        db.execute("COMMIT")
        times.append((time.perf_counter() - t) * 1000)
    db.close()
    return {"p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99)}


async def bench_order_floor(n: int = 1200, warmup: int = 100) -> dict[str, float]:
    """The storage stack's floor for an order of the paper path's shape, with no reads and no
    logic: a durable intent (5 statements), the venue's book (2, not waiting for the disk) and a
    durable booking (9), all SQLAlchemy Core on the async engine's connection (``db.engine``).
    Then 16 statements in one durable transaction, through that engine and through ``sqlite3``."""
    import sqlite3

    from sqlalchemy import text

    from algotrendy.db.engine import make_engine

    path = Path(tempfile.mkdtemp(prefix="algo-bench-")) / "floor.sqlite"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    relaxed = engine.execution_options(durable_commit=False)
    async with engine.begin() as c:
        await c.execute(text("CREATE TABLE o (id BLOB PRIMARY KEY, a TEXT, b TEXT, c REAL, d TEXT)"))
        await c.execute(text("CREATE TABLE ev (id INTEGER PRIMARY KEY, o BLOB, a TEXT, b TEXT)"))
        await c.execute(text("CREATE TABLE bal (acct TEXT PRIMARY KEY, amt TEXT)"))
        await c.execute(text("INSERT INTO bal VALUES ('cash', '100'), ('reserved', '0')"))
    ins_o = text("INSERT INTO o VALUES (:id, :a, :b, :c, :d)")
    upd_o = text("UPDATE o SET a = :a, c = :c WHERE id = :id")
    ins_ev = text("INSERT INTO ev (o, a, b) VALUES (:o, :a, :b)")
    upd_bal = text("UPDATE bal SET amt = :amt WHERE acct = :acct")
    envelope = "x" * 600
    three: list[float] = []
    one: list[float] = []
    for i in range(n + warmup):
        oid = uuid.uuid4().bytes
        t = time.perf_counter()
        async with engine.begin() as c:  # the intent
            await c.execute(ins_o, {"id": oid, "a": "submitted", "b": "AAPL", "c": 1.0, "d": "x"})
            for what in ("created", "validated", "outbox: " + envelope):
                await c.execute(ins_ev, {"o": oid, "a": what, "b": "y"})
            await c.execute(upd_bal, {"amt": str(i), "acct": "reserved"})
        async with relaxed.begin() as c:  # the venue's book
            await c.execute(ins_o, {"id": uuid.uuid4().bytes, "a": "filled", "b": "AAPL", "c": 1.0, "d": "x"})
            await c.execute(ins_ev, {"o": oid, "a": "paper fill", "b": "y"})
        async with engine.begin() as c:  # the booking
            await c.execute(ins_ev, {"o": oid, "a": "fill", "b": "y"})
            await c.execute(upd_o, {"id": oid, "a": "filled", "c": 2.0})
            for acct in ("cash", "reserved"):
                await c.execute(upd_bal, {"amt": str(i), "acct": acct})
            for what in ("position", "event", "outbox: " + envelope, "outbox", "outbox"):
                await c.execute(ins_ev, {"o": oid, "a": what, "b": "y"})
        if i >= warmup:
            three.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        async with engine.begin() as c:
            for _ in range(16):
                await c.execute(ins_ev, {"o": oid, "a": "x", "b": "y"})
        if i >= warmup:
            one.append((time.perf_counter() - t) * 1000)
    await engine.dispose()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=FULL")
    bare = []
    for i in range(n + warmup):
        t = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        for _ in range(16):
            db.execute("INSERT INTO ev (o, a, b) VALUES (?, ?, ?)", (b"1", "x", "y"))
        db.execute("COMMIT")
        if i >= warmup:
            bare.append((time.perf_counter() - t) * 1000)
    db.close()
    return {
        "three_txn_p50_ms": pct(three, 0.5),
        "three_txn_p99_ms": pct(three, 0.99),
        "one_txn_16_p50_ms": pct(one, 0.5),
        "one_txn_16_p99_ms": pct(one, 0.99),
        "bare_sqlite3_16_p50_ms": pct(bare, 0.5),
        "bare_sqlite3_16_p99_ms": pct(bare, 0.99),
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _floor_user(base: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        h, _pid = await _user(client, f"floor{uuid.uuid4().hex[:6]}")
    return h


def _wrk_figures(out: str, seconds: float) -> tuple[int, dict[str, float]]:
    """Requests served, and requests/s and latency percentiles, from wrk's ``--latency`` output."""
    if "Non-2xx" in out:
        raise RuntimeError(out)
    served = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]

    def latency(q: str) -> float:
        value, unit = re.search(rf"{q}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return served, {"requests_per_s": served / seconds, "p50_ms": latency("50"), "p99_ms": latency("99")}


def _wrk_args(connections: int, headers: dict[str, str]) -> list[str]:
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    return ["wrk", "-t1", f"-c{connections}", "--latency", "-H", f"Authorization: {headers['Authorization']}"]


def bench_http_floor(seconds: float, connections: int) -> dict[str, float]:
    """wrk (C, one thread) floods authenticated reads; the server's CPU per request is read from
    /proc, so the figure does not depend on how fast the client is."""
    server, base = _server()
    try:
        h = asyncio.run(_floor_user(base))
        args = _wrk_args(connections, h)
        url = base + "/api/v1/trading/connections"
        subprocess.run([*args, "-d2s", url], capture_output=True, check=True)  # warm-up
        cpu = _cpu_seconds(server.pid)
        out = subprocess.run(
            [*args, f"-d{seconds:g}s", url], capture_output=True, text=True, check=True
        ).stdout
        cpu = _cpu_seconds(server.pid) - cpu
    finally:
        server.terminate()
        server.wait(10)
    served, figures = _wrk_figures(out, seconds)
    return {**figures, "server_cpu_ms_per_request": cpu / served * 1000}


async def bench_http(seconds: float, connections: int) -> dict[str, float]:
    """wrk floods one user's orders (resting limit buys) over ``connections``; a Python client
    meanwhile places and cancels a second user's orders one at a time. wrk as the flood's client:
    a Python client on the same two cores ran out of CPU before the server did."""
    server, base = _server()
    script = Path(tempfile.mkdtemp(prefix="algo-bench-")) / "order.lua"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            flood_h, flood_pid = await _user(client, f"flood{uuid.uuid4().hex[:6]}")
            calm_h, calm_pid = await _user(client, f"calm{uuid.uuid4().hex[:6]}")
            order = {
                "symbol": "AAPL",
                "side": "BUY",
                "quantity": "1",
                "order_type": "LIMIT",
                "limit_price": "1",
            }
            body = json.dumps({**order, "portfolio_id": flood_pid})
            script.write_text(
                f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
            args = [*_wrk_args(connections, flood_h), "-s", str(script), base + "/api/v1/trading/orders"]
            warm = await asyncio.create_subprocess_exec(*args, "-d2s", stdout=subprocess.DEVNULL)
            await warm.wait()
            cancels: list[float] = []
            cpu = _cpu_seconds(server.pid)
            wrk = await asyncio.create_subprocess_exec(*args, f"-d{seconds:g}s", stdout=subprocess.PIPE)
            stop = time.perf_counter() + seconds
            while time.perf_counter() < stop:
                r = await client.post(
                    "/api/v1/trading/orders", json={**order, "portfolio_id": calm_pid}, headers=calm_h
                )
                t = time.perf_counter()
                await client.put(f"/api/v1/trading/orders/{r.json()['order_id']}/cancel", headers=calm_h)
                cancels.append((time.perf_counter() - t) * 1000)
                await asyncio.sleep(0.05)  # another trader's pace, not a second flood
            out = (await wrk.communicate())[0].decode()
            cpu = _cpu_seconds(server.pid) - cpu
    finally:
        server.terminate()
        server.wait(10)
    served, figures = _wrk_figures(out, seconds)
    return {
        "orders_per_s": figures["requests_per_s"],
        "p50_ms": figures["p50_ms"],
        "p99_ms": figures["p99_ms"],
        "server_cpu_ms_per_order": cpu / (served + 2 * len(cancels)) * 1000,
        "cancel_p50_ms": pct(cancels, 0.5),
        "cancel_p99_ms": pct(cancels, 0.99),
    }


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument(
        "--only", choices=["pre-trade", "paper", "resting", "order-floor", "http", "commit", "http-floor"]
    )
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    if args.only in (None, "pre-trade"):
        print("pre-trade check:", median_of([bench_pre_trade() for _ in range(args.runs)]))
    if args.only in (None, "paper"):
        print(
            "paper submit -> fill -> position:",
            median_of([asyncio.run(bench_paper()) for _ in range(args.runs)]),
        )
    if args.only in (None, "resting"):
        runs = [asyncio.run(bench_resting()) for _ in range(args.runs)]
        print("resting limit orders, by how many rest already:", median_of(runs))
    if args.only in (None, "order-floor"):
        runs = [asyncio.run(bench_order_floor()) for _ in range(args.runs)]
        print("storage floor of an order (no reads, no logic):", median_of(runs))
    if args.only in (None, "http"):
        runs = [asyncio.run(bench_http(args.seconds, args.connections)) for _ in range(args.runs)]
        print("HTTP orders:", median_of(runs))
    if args.only in (None, "commit"):
        print("SQLite commit (WAL, FULL):", median_of([bench_commit() for _ in range(args.runs)]))
    if args.only in (None, "http-floor"):
        runs = [bench_http_floor(args.seconds, args.connections) for _ in range(args.runs)]
        print("HTTP floor (authenticated read):", median_of(runs))


if __name__ == "__main__":
    main()
