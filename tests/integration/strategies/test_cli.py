"""``algotrendy strategies ...``: one run as a real subprocess (the wiring, the exit status), the
rest in-process with Typer's runner on one data directory (the same commands, without paying
the interpreter start-up and imports for every call)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from algotrendy.app import cli as cli_module
from tests.apphelp import remember
from tests.integration.test_cli import cli


class _Result:
    def __init__(self, result: Any) -> None:
        self.returncode: int = result.exit_code
        self.stdout: str = result.stdout
        self.stderr: str = result.stderr


def run(tmp_path: Path, *args: str) -> _Result:
    env = {"ALGO_DATA_DIR": str(tmp_path / "data"), "ALGO_SERVICES": "all", "ALGO_LOG__LEVEL": "WARNING"}
    return _Result(CliRunner().invoke(cli_module.app, list(args), env=env))


TEMPLATE = {
    "name": "SMA cross",
    "parameters": {
        "fast": {"name": "fast", "type": "int", "min_value": 2, "max_value": 50, "default": 10},
        "slow": {"name": "slow", "type": "int", "min_value": 10, "max_value": 200, "default": 30},
    },
    "entry_conditions": ["sma(close, fast) crosses_above sma(close, slow)"],
    "exit_conditions": ["sma(close, fast) crosses_below sma(close, slow)"],
}


def test_validate_in_a_subprocess_prints_the_field_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**TEMPLATE, "entry_conditions": ["close > wobble(close)"]}))
    r = cli(tmp_path, "strategies", "validate", "--file", str(bad))
    assert r.returncode == 1 and "template.entry_conditions[0]" in r.stderr and "wobble" in r.stderr, r.stderr


def test_validate_prints_the_field_and_fails(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(TEMPLATE))
    r = run(tmp_path, "strategies", "validate", "--file", str(good))
    assert r.returncode == 0 and "ok: SMA cross" in r.stdout, r.stderr

    r = run(tmp_path, "strategies", "validate", "--file", str(good), "--param", "fast=500")
    assert r.returncode == 1 and "parameters.fast" in r.stderr, r.stderr

    shapeless = tmp_path / "shapeless.json"
    shapeless.write_text(json.dumps({**TEMPLATE, "entry_conditions": "not a list"}))
    r = run(tmp_path, "strategies", "validate", "--file", str(shapeless))
    assert r.returncode == 2 and "invalid template: entry_conditions:" in r.stderr, r.stderr

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    r = run(tmp_path, "strategies", "validate", "--file", str(broken))
    assert r.returncode == 2 and "not readable JSON" in r.stderr


def test_templates_create_list_and_show(tmp_path: Path) -> None:
    r = run(tmp_path, "strategies", "templates")
    assert r.returncode == 0 and "sma_crossover" in r.stdout and "momentum_rotation" in r.stdout, r.stderr

    password = "a trader passphrase"
    remember(password)
    r = run(
        tmp_path, "users", "create", "--email", "ann@example.com", "--username", "ann", "--password", password
    )
    assert r.returncode == 0, r.stderr

    file = tmp_path / "t.json"
    file.write_text(json.dumps(TEMPLATE))
    r = run(
        tmp_path,
        "strategies",
        "create",
        "--user",
        "ann",
        "--file",
        str(file),
        "--name",
        "My cross",
        "--tag",
        "trend",
        "--symbol",
        "BTC/USDT@BINANCE",
        "--interval",
        "1h",
        "--param",
        "fast=5",
    )
    assert r.returncode == 0 and "created strategy My cross (" in r.stdout and "version 1" in r.stdout, (
        r.stderr
    )
    strategy_id = r.stdout.split("(")[1].split(")")[0]

    r = run(tmp_path, "strategies", "create", "--user", "ann@example.com", "--builtin", "sma_crossover")
    assert r.returncode == 0 and "created strategy sma_crossover" in r.stdout, r.stderr
    r = run(tmp_path, "strategies", "create", "--user", "ann", "--file", str(file), "--name", "my CROSS")
    assert r.returncode == 1 and "already have a strategy named" in r.stderr, r.stderr
    r = run(tmp_path, "strategies", "create", "--user", "nobody", "--builtin", "sma_crossover")
    assert r.returncode == 1 and "no user 'nobody'" in r.stderr, r.stderr
    r = run(tmp_path, "strategies", "create", "--user", "ann")
    assert r.returncode == 2 and "--file or --builtin" in r.stderr

    r = run(tmp_path, "strategies", "list", "--user", "ann")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and "sma_crossover" in lines[0] and lines[1].startswith(strategy_id)
    assert "[trend]" in lines[1]

    r = run(tmp_path, "strategies", "show", strategy_id, "--user", "ann")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["name"] == "My cross" and shown["template"]["parameters"]["fast"]["default"] == 5
    assert shown["symbols"] == [{"symbol": "BTC/USDT", "venue": "BINANCE", "interval": "1h"}]
    r = run(tmp_path, "strategies", "show", strategy_id, "--user", "ann", "--version", "2")
    assert r.returncode == 1 and "has no version 2" in r.stderr
