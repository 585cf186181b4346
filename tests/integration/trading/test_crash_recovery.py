"""kill -9 at each step of an order, restart, reconcile: nothing lost, nothing duplicated.

A real server process (users, market data, portfolio, risk, trading on SQLite) is armed with one
failpoint (``core.failpoints``) and sent an order; the failpoint SIGKILLs it at that step:

- ``trading.after_intent_commit``: the order row is committed, the venue was never asked;
- ``trading.after_send``: the venue accepted the order, nothing about it was recorded locally;
- ``trading.after_ack``: the acknowledgement is committed, its events are not yet published;
- ``trading.after_partial_fill``: the first of several fills is booked, the rest are not;
- ``outbox.before_publish``: state committed, the event about to go on the bus.

Then the server restarts unarmed, reconciles on start, and the client retries its request with
the same ``Idempotency-Key``. What must hold (RELIABILITY G1-G4, G7), checked against the paper
venue's own tables (the venue is durable like a real one): every venue order is known locally,
exactly once; no client order id reached the venue twice; no order is left pending or unknown;
the retry answers the original order; positions equal the sum of the venue's fills and each fill
is booked once; the ledger sums to zero; every outbox row is published.

Each point runs ``ALGO_CRASH_RUNS`` times (default 2) with order sizes from a seeded RNG; the
seed is printed (``-s``) and recorded in the assertion messages.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.procs import Proc, edge_user, start_server, wait_ready

T = "/api/v1/trading"
SERVICES = "users,marketdata,portfolio,risk,trading"
POINTS = [
    "trading.after_intent_commit",
    "trading.after_send",
    "trading.after_ack",
    "trading.after_partial_fill",
    "outbox.before_publish",
]
RUNS = int(os.environ.get("ALGO_CRASH_RUNS", "2"))


def _env(data: Path, failpoint: str | None) -> dict[str, str]:
    env = {
        "ALGO_ENV": "test",
        "ALGO_DATA_DIR": str(data),
        "ALGO_TRADING__UNKNOWN_GRACE": "0.5",
        "ALGO_TRADING__RECONCILE_INTERVAL": "3600",
        # A small share of each bar's volume: market orders fill in several parts.
        "ALGO_TRADING__PAPER_MAX_PARTICIPATION": "0.000001",
        "ALGO_GATEWAY__RATE_LIMIT_PER_USER": "100000",
    }
    if failpoint:
        env["ALGO_FAILPOINTS"] = failpoint
    return env


def _start(tmp: Path, data: Path, name: str, failpoint: str | None = None) -> Proc:
    proc = start_server(name, tmp, _env(data, failpoint), services=SERVICES)
    wait_ready(proc, timeout=120)
    return proc


def _db(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / "algotrendy.db")


def _invariants(data: Path, pid: str, seed: int) -> None:
    with _db(data) as db:
        pid_hex = pid.replace("-", "")
        venue = db.execute(
            "SELECT client_order_id, COUNT(*) FROM trading_paper_orders GROUP BY client_order_id"
        ).fetchall()
        assert all(n == 1 for _c, n in venue), f"seed {seed}: a client order id reached the venue twice"
        local = dict(db.execute("SELECT client_order_id, status FROM trading_orders").fetchall())
        for cid, _n in venue:
            assert cid in local, f"seed {seed}: venue order {cid} unknown locally"
        states = db.execute("SELECT venue_state FROM trading_orders").fetchall()
        assert all(s in ("acknowledged", "none") for (s,) in states), f"seed {seed}: {states}"
        venue_fills = db.execute("SELECT trade_id, side, quantity FROM trading_paper_fills").fetchall()
        local_fills = db.execute("SELECT trade_id, side, quantity FROM trading_fills").fetchall()
        assert sorted(venue_fills) == sorted(local_fills), f"seed {seed}: fills differ"
        expected = sum((Decimal(q) if s == "BUY" else -Decimal(q) for _t, s, q in venue_fills), Decimal(0))
        held = db.execute("SELECT quantity FROM trading_positions WHERE symbol = 'AAPL'").fetchall()
        assert sum((Decimal(q) for (q,) in held), Decimal(0)) == expected, f"seed {seed}: position"
        balances = db.execute("SELECT amount FROM trading_balances WHERE currency = 'USD'").fetchall()
        assert sum(Decimal(a) for (a,) in balances) == 0, f"seed {seed}: ledger does not sum to zero"
        unsent = db.execute("SELECT COUNT(*) FROM trading_outbox WHERE published_at IS NULL").fetchone()[0]
        assert unsent == 0, f"seed {seed}: {unsent} outbox rows never published"
        del pid_hex


def _wait_outbox(data: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _db(data) as db:
            if (
                db.execute("SELECT COUNT(*) FROM trading_outbox WHERE published_at IS NULL").fetchone()[0]
                == 0
            ):
                return
        time.sleep(0.2)


def _settle(http: httpx.Client, h: dict[str, str], pid: str) -> None:
    """Reconcile until no order is waiting for the venue (pending orders resolve after the grace)."""
    for _ in range(40):
        r = http.post(f"{T}/accounts/{pid}/reconcile", headers=h)
        assert r.status_code == 200, r.text
        orders = http.get(f"{T}/orders", params={"portfolio_id": pid, "limit": 500}, headers=h).json()[
            "items"
        ]
        if all(o["venue_state"] in ("acknowledged", "none") for o in orders):
            return
        time.sleep(0.3)


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_kill_9_at_each_step_loses_and_duplicates_nothing(tmp_path: Path, point: str) -> None:
    data = tmp_path / "data"
    proc = _start(tmp_path, data, "setup")
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as http:
            h = edge_user(http)
            r = http.post(
                "/api/v1/portfolio", json={"name": "crash", "initial_capital": "1000000"}, headers=h
            )
            pid = r.json()["portfolio_id"]
    finally:
        proc.stop()
    for run in range(RUNS):
        seed = random.SystemRandom().randrange(2**32)
        print(f"{point} run {run}: seed {seed}")
        rng = random.Random(seed)
        quantity = str(rng.randint(100, 400))
        key = f"crash-{point}-{run}"
        body: dict[str, Any] = {"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": quantity}
        armed = _start(tmp_path, data, f"armed{run}", point)
        # Tokens survive the restart (the signing key is in the data dir). The server dies
        # mid-request: exactly the situation under test.
        with httpx.Client(base_url=armed.url, timeout=30) as http, contextlib.suppress(httpx.HTTPError):
            http.post(f"{T}/orders", json=body, headers={**h, "Idempotency-Key": key})
        deadline = time.monotonic() + 20
        while armed.popen.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert armed.popen.returncode == -9, f"seed {seed}: {point} did not fire:\n{armed.output()}"
        again = _start(tmp_path, data, f"again{run}")
        try:
            with httpx.Client(base_url=again.url, timeout=30) as http:
                _settle(http, h, pid)
                retry = http.post(f"{T}/orders", json=body, headers={**h, "Idempotency-Key": key})
                assert retry.status_code in (200, 201), retry.text
                orders = http.get(f"{T}/orders", params={"portfolio_id": pid, "limit": 500}, headers=h).json()
                assert sum(1 for o in orders["items"] if o["order_id"] == retry.json()["order_id"]) == 1
                if retry.status_code == 201:
                    # The crash came before the intent committed: the retry is the first order.
                    assert point == "outbox.before_publish" or run > 0, f"seed {seed}"
                _settle(http, h, pid)
                _wait_outbox(data)
                _invariants(data, pid, seed)
                # Leave nothing working for the next run's armed start (a resting remainder
                # filling on start would fire its failpoint before the order is even sent).
                for o in http.get(
                    f"{T}/orders", params={"portfolio_id": pid, "limit": 500}, headers=h
                ).json()["items"]:
                    if o["status"] in ("submitted", "partial_fill"):
                        http.put(f"{T}/orders/{o['order_id']}/cancel", headers=h)
                _wait_outbox(data)
        finally:
            again.stop()
