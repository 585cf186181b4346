"""``algotrendy backtest ...``: backtests, optimizations and walk-forward runs from the shell.

They run here, in this process, through the same ``BacktestService`` validation as the REST API
(same errors, same numbers), print a metrics table and write a self-contained HTML report.
A strategy is a built-in template (``--strategy sma_crossover``), a stored strategy
(``--strategy <id> --user <name>``), a template file (``--template t.json``) or a Python class
(``--strategy-file my_strategy.py:MyStrategy``, a ``engine.strategy.Strategy`` subclass).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from algotrendy.app.strategies_cli import _fail, _owner, _param_values, _parsed, _read_json

T = TypeVar("T")

backtest_app = typer.Typer(
    help="Backtest, optimize and walk-forward strategies on stored bars.", no_args_is_help=True
)

NIL = uuid.UUID(int=0)
PCT = {
    "total_return", "annualized_return", "volatility", "max_drawdown", "win_rate", "exposure",
    "average_exposure", "average_trade_return", "alpha", "best_bar", "worst_bar", "downside_risk",
}  # fmt: skip

Strategy_ = Annotated[
    str | None, typer.Option("--strategy", "-s", help="Built-in slug or stored strategy id")
]
TemplateFile = Annotated[Path | None, typer.Option("--template", help="Template JSON file", dir_okay=False)]
ClassFile = Annotated[
    str | None, typer.Option("--strategy-file", help="path.py:ClassName (a Strategy subclass)")
]
Symbol = Annotated[str | None, typer.Option("--symbol", help="Symbol (default: the strategy's)")]
Symbols = Annotated[list[str] | None, typer.Option("--symbols", help="Symbols of a rotation (repeatable)")]
Venue = Annotated[str | None, typer.Option("--venue")]
Interval = Annotated[str | None, typer.Option("--interval", "-i", help="Bar interval, e.g. 1d, 1h")]
Start = Annotated[str | None, typer.Option("--start", help="YYYY-MM-DD (inclusive)")]
End = Annotated[str | None, typer.Option("--end", help="YYYY-MM-DD (exclusive)")]
Capital = Annotated[float, typer.Option("--capital", help="Initial capital")]
Commission = Annotated[float, typer.Option("--commission", help="Fee per side, fraction of notional")]
Slippage = Annotated[float, typer.Option("--slippage", help="Fraction of price against the taker")]
Params = Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable)")]
User = Annotated[str | None, typer.Option("--user", "-u", help="Owner of a stored strategy")]
Report = Annotated[
    Path | None, typer.Option("--report", help="HTML report path (default: ./backtest-<name>.html)")
]
NoReport = Annotated[bool, typer.Option("--no-report", help="Do not write the HTML report")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the whole result as JSON")]


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    from algotrendy.app import cli

    return cli._run(factory)


async def _with_backtest(user: str | None, fn: Callable[[Any, Any, Any], Awaitable[T]]) -> T:
    from algotrendy.app import cli
    from algotrendy.app.container import Container

    container = Container.build(
        cli._settings(services=["users", "jobs", "marketdata", "strategies", "backtest"])
    )
    try:
        await container.migrate()
        md = container.services["marketdata"]
        await md.store.open()
        await md.load_samples()
        owner = await _owner(container, user) if user is not None else NIL
        return await fn(container.services["backtest"], md, owner)
    finally:
        await container.stop()


def _day(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(f"invalid --{name} {text!r}: expected YYYY-MM-DD")


def _target(strategy: str | None, template: Path | None) -> dict[str, Any]:
    from algotrendy.engine.builtin import BUILTIN_TEMPLATES
    from algotrendy.engine.template import StrategyTemplate

    if (strategy is None) == (template is None):
        _fail("give one of --strategy (built-in slug or stored id), --template or --strategy-file")
    if template is not None:
        return {"template": _parsed(StrategyTemplate, _read_json(template), "template")}
    assert strategy is not None
    if strategy in BUILTIN_TEMPLATES:
        return {"template": BUILTIN_TEMPLATES[strategy]}
    try:
        return {"strategy_id": uuid.UUID(strategy)}
    except ValueError:
        _fail(f"unknown strategy {strategy!r}: a built-in ({', '.join(BUILTIN_TEMPLATES)}) or a strategy id")


def _common(**kw: Any) -> dict[str, Any]:
    out = {k: v for k, v in kw.items() if v not in (None, [], {})}
    if "start_date" in out:
        out["start_date"] = _day(out["start_date"], "start")
    if "end_date" in out:
        out["end_date"] = _day(out["end_date"], "end")
    return out


def _fmt(name: str, value: Any) -> str:
    if value is None:
        return "-"
    pct = name in PCT or name.startswith(("probability", "expected max drawdown", "max drawdown "))
    if isinstance(value, float):
        return f"{value:.2%}" if pct else f"{value:,.4f}" if abs(value) < 1e5 else f"{value:,.2f}"
    return str(value)


def print_metrics(title: str, metrics: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, _fmt(name, value))
    Console().print(table)


def _write_report(result: dict[str, Any], title: str, report: Path | None, no_report: bool) -> None:
    if no_report:
        return
    from algotrendy.services.backtest.report import render_html

    slug = "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-") or "run"
    path = report or Path(f"backtest-{slug}.html")
    path.write_text(render_html({**result, "title": title, "strategy_name": title}), encoding="utf-8")
    typer.echo(f"report: {path}")


def _load_class(spec: str) -> Any:
    from algotrendy.engine.strategy import Strategy

    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        _fail(f"invalid --strategy-file {spec!r}: expected path.py:ClassName")
    file = Path(path)
    if not file.is_file():
        _fail(f"invalid --strategy-file: {file} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"user_strategy_{file.stem}", file)
    if module_spec is None or module_spec.loader is None:
        _fail(f"invalid --strategy-file: cannot load {file}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    module_spec.loader.exec_module(module)  # the user's own code, on their own machine
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        _fail(f"invalid --strategy-file: {name} in {file} is not a Strategy subclass")
    return cls


@backtest_app.command("run")
def backtest_run(
    strategy: Strategy_ = None,
    template: TemplateFile = None,
    strategy_file: ClassFile = None,
    symbol: Symbol = None,
    symbols: Symbols = None,
    venue: Venue = None,
    interval: Interval = None,
    start: Start = None,
    end: End = None,
    capital: Capital = 100_000.0,
    commission: Commission = 0.0,
    slippage: Slippage = 0.0,
    lot_size: Annotated[
        float, typer.Option("--lot-size", help="Round quantities down to it; 0 = fractional")
    ] = 0.0,
    engine: Annotated[str, typer.Option("--engine", help="auto, vectorized or event")] = "auto",
    benchmark: Annotated[str | None, typer.Option("--benchmark")] = None,
    param: Params = None,
    user: User = None,
    report: Report = None,
    no_report: NoReport = False,
    as_json: AsJson = False,
) -> None:
    """Backtest a strategy: prints the metrics and writes an HTML report (equity, drawdown, trades)."""
    common = _common(
        symbol=symbol, symbols=symbols, venue=venue, interval=interval, start_date=start, end_date=end,
        initial_capital=capital, commission=commission, slippage=slippage, lot_size=lot_size,
        benchmark=benchmark, params=_param_values(param),
    )  # fmt: skip
    if strategy_file is not None:
        result, title = (
            _run(lambda: _python_strategy(strategy_file, common, _param_values(param))),
            strategy_file,
        )
    else:
        from algotrendy.services.backtest.interface import BacktestCreate

        request = _parsed(
            BacktestCreate, {**_target(strategy, template), **common, "engine": engine}, "request"
        )
        result = _run(
            lambda: _with_backtest(user, lambda bt, _md, owner: bt.run_here(owner=owner, request=request))
        )
        title = (
            strategy if strategy is not None else request.template.name if request.template else "template"
        )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_metrics(
            f"{title}: {', '.join(result['symbols'])} ({result['first']} .. {result['last']})",
            result["metrics"],
        )
    _write_report(result, str(title), report, no_report)


async def _python_strategy(spec: str, common: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A ``Strategy`` subclass from a file, run by the event-driven engine on stored bars."""
    from algotrendy.engine.backtest import BacktestConfig, EventBacktest
    from algotrendy.services.backtest.compute import outcome

    cls = _load_class(spec)
    names = common.get("symbols") or ([common["symbol"]] if "symbol" in common else [])
    if not names:
        _fail("give --symbol (or --symbols) for a Python strategy")

    async def go(_bt: Any, md: Any, _owner: Any) -> dict[str, Any]:
        data = {}
        for s in names:
            series = await md.read_bars(
                symbol=s, venue=common.get("venue"), interval=common.get("interval", "1d"),
                start=_instant(common.get("start_date")), end=_instant(common.get("end_date")),
            )  # fmt: skip
            if len(series.bars) == 0:
                _fail(f"no bars of {s} in the chosen dates")
            data[series.symbol] = series.bars
        config = BacktestConfig(
            initial_capital=common.get("initial_capital", 100_000.0), fee_rate=common.get("commission", 0.0),
            slippage=common.get("slippage", 0.0), lot_size=common.get("lot_size", 0.0),
        )  # fmt: skip
        try:
            strategy = cls(**params)
        except TypeError as exc:
            _fail(f"cannot build {cls.__name__} with --param values: {exc}")
        result = EventBacktest(data, strategy, config).run()
        return outcome(result, None, params=params, engine="event")

    return await _with_backtest(None, go)


def _instant(day: date | None) -> Any:
    from datetime import UTC, datetime, time

    return None if day is None else datetime.combine(day, time(0), tzinfo=UTC)


def _space(items: list[str] | None) -> dict[str, Any]:
    """``fast=5:50:5`` -> {"fast": {"min_value": 5, "max_value": 50, "step": 5}}."""
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, spec = item.partition("=")
        parts = spec.split(":")
        if not sep or len(parts) not in (2, 3):
            _fail(f"invalid --range {item!r}: expected NAME=MIN:MAX[:STEP]")
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            _fail(f"invalid --range {item!r}: MIN, MAX and STEP must be numbers")
        entry = {"min_value": nums[0], "max_value": nums[1]}
        if len(nums) == 3:
            entry["step"] = nums[2]
        out[name.strip()] = entry
    return out


@backtest_app.command("optimize")
def backtest_optimize(
    strategy: Strategy_ = None,
    template: TemplateFile = None,
    symbol: Symbol = None,
    interval: Interval = None,
    start: Start = None,
    end: End = None,
    capital: Capital = 100_000.0,
    commission: Commission = 0.0,
    slippage: Slippage = 0.0,
    optimize: Annotated[
        list[str] | None, typer.Option("--optimize", help="Parameter to vary (repeatable)")
    ] = None,
    ranges: Annotated[list[str] | None, typer.Option("--range", help="NAME=MIN:MAX[:STEP]")] = None,
    constraint: Annotated[list[str] | None, typer.Option("--constraint", help="e.g. 'fast < slow'")] = None,
    method: Annotated[
        str, typer.Option("--method", help="grid_search, random_search or bayesian")
    ] = "grid_search",
    objective: Annotated[
        str, typer.Option("--objective", help="sharpe_ratio, total_return, calmar_ratio, sortino_ratio")
    ] = "sharpe_ratio",
    trials: Annotated[int, typer.Option("--trials", help="random/bayesian trials")] = 100,
    top: Annotated[int, typer.Option("--top")] = 10,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    param: Params = None,
    user: User = None,
    report: Report = None,
    no_report: NoReport = False,
    as_json: AsJson = False,
) -> None:
    """Sweep parameters; prints the top combinations and the deflated Sharpe of the winner."""
    from algotrendy.services.backtest.interface import OptimizeCreate

    body = {
        **_target(strategy, template),
        **_common(symbol=symbol, interval=interval, start_date=start, end_date=end, initial_capital=capital,
                  commission=commission, slippage=slippage, params=_param_values(param)),
        "parameters": optimize or [], "space": _space(ranges), "constraints": constraint or [],
        "optimization_method": method, "objective": objective, "n_trials": trials, "top_n": top, "seed": seed,
    }  # fmt: skip
    request = _parsed(OptimizeCreate, body, "request")
    result = _run(
        lambda: _with_backtest(user, lambda bt, _md, owner: bt.run_here(owner=owner, request=request))
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"top {len(result['top'])} of {result['combinations']} by {result['objective']}")
    for col in ("rank", "params", "sharpe_ratio", "total_return", "max_drawdown", "number_of_trades"):
        table.add_column(col, justify="right" if col != "params" else "left")
    for row in result["top"]:
        table.add_row(
            str(row["rank"]), json.dumps(row["params"]), _fmt("sharpe_ratio", row["sharpe_ratio"]),
            _fmt("total_return", row["total_return"]), _fmt("max_drawdown", row["max_drawdown"]),
            _fmt("n", row["number_of_trades"]),
        )  # fmt: skip
    Console().print(table)
    typer.echo(f"deflated Sharpe ratio of the winner: {_fmt('dsr', result['deflated_sharpe'])}")
    typer.echo(result["deflated_sharpe_note"])
    _write_report(result["best"] | {"top": result["top"], "deflated_sharpe": result["deflated_sharpe"]},
                  f"{strategy or 'template'} optimized", report, no_report)  # fmt: skip


@backtest_app.command("walk-forward")
def backtest_walk_forward(
    strategy: Strategy_ = None,
    template: TemplateFile = None,
    symbol: Symbol = None,
    interval: Interval = None,
    start: Start = None,
    end: End = None,
    commission: Commission = 0.0,
    train: Annotated[int, typer.Option("--train", help="Training window, bars")] = 252,
    test: Annotated[int, typer.Option("--test", help="Testing window, bars")] = 63,
    step: Annotated[int | None, typer.Option("--step", help="Step, bars (default: --test)")] = None,
    optimize: Annotated[list[str] | None, typer.Option("--optimize")] = None,
    constraint: Annotated[list[str] | None, typer.Option("--constraint")] = None,
    objective: Annotated[str, typer.Option("--objective")] = "sharpe_ratio",
    user: User = None,
    as_json: AsJson = False,
) -> None:
    """Optimize in-sample, trade out-of-sample, step forward; prints the stitched result."""
    from algotrendy.services.backtest.interface import WalkForwardCreate

    body = {
        **_target(strategy, template),
        **_common(symbol=symbol, interval=interval, start_date=start, end_date=end, commission=commission),
        "training_window": train, "testing_window": test, "step_size": step, "parameters": optimize or [],
        "constraints": constraint or [], "objective": objective,
    }  # fmt: skip
    request = _parsed(WalkForwardCreate, body, "request")
    result = _run(
        lambda: _with_backtest(user, lambda bt, _md, owner: bt.run_here(owner=owner, request=request))
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    for w in result["windows"]:
        oos = w["out_of_sample"]
        typer.echo(
            f"window {w['window']:>3}  test {w['test_start'][:10]}..{w['test_end'][:10]}  "
            f"params {json.dumps(w['params'])}"
            f"  oos return {_fmt('total_return', oos.get('total_return'))}"
        )
    print_metrics("stitched out-of-sample", result["metrics"])
    typer.echo(f"walk-forward efficiency: {_fmt('e', result['efficiency'])}")


@backtest_app.command("monte-carlo")
def backtest_monte_carlo(
    strategy: Strategy_ = None,
    template: TemplateFile = None,
    symbol: Symbol = None,
    interval: Interval = None,
    start: Start = None,
    end: End = None,
    capital: Capital = 100_000.0,
    commission: Commission = 0.0,
    slippage: Slippage = 0.0,
    method: Annotated[
        str, typer.Option("--method", help="trade_bootstrap, block_bootstrap or both")
    ] = "both",
    simulations: Annotated[int, typer.Option("--simulations", "-n")] = 1000,
    horizon: Annotated[int | None, typer.Option("--horizon", help="Trades / bars per path")] = None,
    confidence: Annotated[float, typer.Option("--confidence")] = 0.95,
    ruin: Annotated[float, typer.Option("--ruin", help="Ruin: equity at or below this fraction")] = 0.5,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    param: Params = None,
    user: User = None,
    as_json: AsJson = False,
) -> None:
    """Resample a backtest: final equity and drawdown at the confidence level, probability of ruin."""
    from algotrendy.services.backtest.interface import MonteCarloCreate

    body = {
        **_target(strategy, template),
        **_common(
            symbol=symbol, interval=interval, start_date=start, end_date=end, initial_capital=capital,
            commission=commission, slippage=slippage, params=_param_values(param),
        ),
        "method": method, "num_simulations": simulations, "time_horizon": horizon,
        "confidence_level": confidence, "ruin_threshold": ruin, "seed": seed,
    }  # fmt: skip
    request = _parsed(MonteCarloCreate, body, "request")
    result = _run(
        lambda: _with_backtest(user, lambda bt, _md, owner: bt.run_here(owner=owner, request=request))
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    lo = f"p{round(100 * (1 - confidence), 6):g}"
    for name in ("trade_bootstrap", "block_bootstrap"):
        dist = result.get(name)
        if not dist:
            continue
        fe, dd = dist["final_equity"], dist["max_drawdown"]
        print_metrics(
            f"{name.replace('_', ' ')}: {simulations} paths",
            {
                "median final equity": fe["percentiles"].get("p50"),
                f"final equity at {confidence:.0%}": dist["final_equity_at_confidence"],
                "expected max drawdown": dist["expected_max_drawdown"],
                f"max drawdown at {confidence:.0%}": dist["drawdown_at_confidence"],
                "probability of loss": dist["probability_of_loss"],
                "probability of ruin": dist["probability_of_ruin"],
                f"final equity {lo}": fe["percentiles"].get(lo),
                "max drawdown median": dd["percentiles"].get("p50"),
            },
        )
