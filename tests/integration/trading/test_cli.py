"""``algotrendy portfolio|trading|risk ...`` in-process with Typer's runner on one data directory:
create a portfolio, buy on the paper broker, see the position, set a limit and be denied."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from algotrendy.app import cli as cli_module
from tests.apphelp import remember

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {"ALGO_DATA_DIR": str(tmp_path / "data"), "ALGO_SERVICES": "all", "ALGO_LOG__LEVEL": "WARNING"}
    result = CliRunner().invoke(cli_module.app, list(args), env=env)
    out = "".join(line for line in result.stdout.splitlines(True) if not LOG_LINE.match(line))
    return result.exit_code, out, result.stderr


def _json(text: str) -> dict[str, object]:
    return dict(json.loads(text[text.index("{") :]))


def test_portfolio_order_position_and_limits(tmp_path: Path) -> None:
    password = "pw-clitrader-123456"
    remember(password)
    code, _, err = run(
        tmp_path, "users", "create", "--email", "c@example.com", "--username", "clit", "--password", password
    )
    assert code == 0, err
    code, out, err = run(
        tmp_path, "portfolio", "create", "-u", "clit", "--name", "Main", "--capital", "100000"
    )
    assert code == 0, err
    pid = re.search(r"\(([0-9a-f-]{36})\)", out).group(1)  # type: ignore[union-attr]
    code, out, err = run(
        tmp_path,
        "trading",
        "order",
        "-u",
        "clit",
        "-P",
        pid,
        "--symbol",
        "AAPL",
        "--side",
        "buy",
        "--quantity",
        "3",
    )
    assert code == 0, err
    order = _json(out)
    assert order["status"] == "filled" and order["filled_quantity"] == "3"
    code, out, _ = run(tmp_path, "trading", "positions", "-u", "clit", "-P", pid)
    assert out.startswith("AAPL") and " 3 " in out
    code, out, err = run(tmp_path, "risk", "portfolio", "-u", "clit", "-P", pid, "--confidence", "0.99")
    assert code == 0, err
    figures = _json(out)
    assert (
        figures["confidence"] == 0.99
        and figures["var"] > 0
        and [p["symbol"] for p in figures["positions"]] == ["AAPL"]
    )
    code, _, err = run(tmp_path, "risk", "portfolio", "-u", "clit", "-P", pid, "--confidence", "2")
    assert code == 2 and "confidence" in err
    code, out, err = run(
        tmp_path, "risk", "stress", "-u", "clit", "-P", pid, "--market", "-0.2", "--shock", "AAPL=-0.5"
    )
    assert code == 0, err
    stressed = _json(out)
    assert [s["name"] for s in stressed["scenarios"]] == ["market -0.2", "shocks"]
    assert stressed["worst"] == "shocks" and stressed["scenarios"][1]["positions"][0]["shock"] == -0.5
    code, _, err = run(tmp_path, "risk", "stress", "-u", "clit", "-P", pid, "--historical", "dotcom")
    assert code == 2 and "historical" in err
    code, out, err = run(
        tmp_path,
        "portfolio",
        "rebalance",
        "-u",
        "clit",
        "-P",
        pid,
        "--target",
        "AAPL=0.01",
        "--target",
        "MSFT=0.01",
        "--target",
        "CASH=0.98",
        "--lot",
        "1",
    )
    assert code == 0, err
    assert out.startswith("preview:") and " MSFT @ " in out and "buy" in out
    code, out, err = run(tmp_path, "portfolio", "rebalance", "-u", "clit", "-P", pid, "--target", "AAPL=2")
    assert code == 2 and "targets" in err
    code, out, err = run(tmp_path, "portfolio", "lots", "-u", "clit", "-P", pid)
    assert code == 0 and out.startswith("AAPL") and " 3 @ " in out, err
    code, out, err = run(tmp_path, "portfolio", "performance", "-u", "clit", "-P", pid, "--period", "all")
    assert code == 0, err
    assert _json(out)["observations"] == 1 and "series" not in _json(out)
    code, out, err = run(tmp_path, "risk", "alerts", "-u", "clit", "-P", pid, "--status", "all")
    assert code == 0 and out == "", err
    code, out, err = run(tmp_path, "risk", "alerts", "-u", "clit", "-P", pid, "--status", "bogus")
    assert code == 2 and "status" in err
    code, out, _ = run(tmp_path, "risk", "limits", "-u", "clit", "-P", pid, "--set", "trading_state=HALTED")
    assert code == 0 and _json(out)["trading_state"] == "HALTED"
    code, out, _ = run(
        tmp_path,
        "trading",
        "order",
        "-u",
        "clit",
        "-P",
        pid,
        "--symbol",
        "AAPL",
        "--side",
        "BUY",
        "--quantity",
        "1",
    )
    assert _json(out)["status"] == "rejected" and "halted" in str(_json(out)["reason"])
    code, _, err = run(
        tmp_path,
        "trading",
        "order",
        "-u",
        "clit",
        "-P",
        pid,
        "--symbol",
        "AAPL",
        "--side",
        "BUY",
        "--quantity",
        "1",
        "--type",
        "LIMIT",
    )
    assert code == 2 and "limit_price" in err
    code, _, err = run(tmp_path, "risk", "limits", "-u", "clit", "-P", pid, "--set", "bogus=1")
    assert code == 2 and "bogus" in err
    code, out, _ = run(tmp_path, "trading", "orders", "-u", "clit", "-P", pid)
    assert out.count("\n") == 2 and "rejected" in out and "filled" in out
