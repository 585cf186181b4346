"""One self-contained HTML page for a finished run: ``render_html(results) -> str``.

``results`` is what a run stored (``compute.describe`` for a backtest, ``compute.summarize_search``
for an optimization, ``robustness._stitch`` for a walk-forward, ``robustness.monte_carlo``),
optionally with ``title``, ``strategy_name`` and ``config``. The page has a header (strategy,
symbols, period, engine), the metrics (returns and drawdowns as percentages, ratios to two
decimals), the equity curve against the benchmark with a marker at each trade's entry (▲) and
exit (▼), the drawdown, and the trades (the first ``MAX_TRADE_ROWS``). An optimization adds its
top combinations and the deflated Sharpe ratio, and shows its winner's run; a walk-forward adds
its windows and shows the stitched out-of-sample curve.

Self-contained: plotly.js is embedded once, inline; nothing is fetched when the page is viewed.
Every piece of text from the run (strategy names, symbols, parameters) is HTML-escaped; the
chart data goes through plotly's JSON encoder, which escapes ``<``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MAX_TRADE_ROWS = 500
MAX_MARKERS = 2000
"""Trade markers on the equity chart (two per trade), beyond which only the first trades show."""

# fmt: off
PERCENT = frozenset({
    "total_return", "annualized_return", "volatility", "downside_risk", "max_drawdown", "win_rate",
    "average_trade_return", "exposure", "average_exposure", "alpha", "best_bar", "worst_bar",
    "return",
})
# fmt: on
MONEY = frozenset(
    {"expectancy", "average_win", "average_loss", "largest_win", "largest_loss", "fees_paid", "final_equity"}
)
# Metrics coloured by sign (green gain, red loss).
# fmt: off
SIGNED = frozenset({
    "total_return", "annualized_return", "max_drawdown", "alpha", "expectancy",
    "average_trade_return", "average_win", "average_loss", "largest_win", "largest_loss", "best_bar",
    "worst_bar",
})
# fmt: on
INTEGER = frozenset({"number_of_trades", "max_drawdown_duration_bars", "bars", "combinations"})
LABELS = {
    "total_return": "Total return",
    "annualized_return": "Annualized return (CAGR)",
    "volatility": "Volatility (annualized)",
    "downside_risk": "Downside risk",
    "sharpe_ratio": "Sharpe ratio",
    "sortino_ratio": "Sortino ratio",
    "calmar_ratio": "Calmar ratio",
    "max_drawdown": "Max drawdown",
    "max_drawdown_duration_bars": "Max drawdown duration (bars)",
    "max_drawdown_duration_days": "Max drawdown duration (days)",
    "win_rate": "Win rate",
    "profit_factor": "Profit factor",
    "expectancy": "Expectancy (per trade)",
    "average_trade_return": "Average trade return",
    "average_win": "Average win",
    "average_loss": "Average loss",
    "largest_win": "Largest win",
    "largest_loss": "Largest loss",
    "exposure": "Time in market",
    "average_exposure": "Average exposure",
    "turnover": "Turnover",
    "number_of_trades": "Trades",
    "fees_paid": "Fees paid",
    "final_equity": "Final equity",
    "alpha": "Alpha (annualized)",
    "beta": "Beta",
    "best_bar": "Best bar",
    "worst_bar": "Worst bar",
    "skew": "Skew",
    "kurtosis": "Excess kurtosis",
    "periods_per_year": "Bars per year",
}
TOP_COLUMNS = (
    "total_return",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "calmar_ratio",
    "win_rate",
    "profit_factor",
    "number_of_trades",
    "final_equity",
)
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;
background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5b6573;margin:0 0 16px}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:12px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:4px 8px;border-bottom:1px solid #eceef1;text-align:right;white-space:nowrap}
th{background:#f0f2f5;position:sticky;top:0}td.l,th.l{text-align:left}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:0 24px}
.grid table td:first-child{text-align:left;color:#5b6573}.pos{color:#127a3a}.neg{color:#b3261e}
.scroll{max-height:600px;overflow:auto;border:1px solid #e1e4e8}.note{color:#5b6573;font-size:13px}
.warn{color:#8a5a00}dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}
dt{color:#5b6573}dd{margin:0}
"""


def render_html(results: Mapping[str, Any]) -> str:
    """The report page for one stored run outcome (see the module docstring)."""
    parts: list[str] = [_header(results)]
    run: Mapping[str, Any] = results
    if isinstance(results.get("top"), list) and isinstance(results.get("best"), Mapping):
        parts.append(_optimization(results))
        run = results["best"]
        parts.append("<h2>Best combination: full run</h2>")
    elif isinstance(results.get("windows"), list):
        parts.append(_walk_forward(results))
    if "trade_bootstrap" in results or "block_bootstrap" in results:
        parts.append(_monte_carlo(results))
    if isinstance(run.get("metrics"), Mapping) and run["metrics"]:
        parts.append(_metrics(run["metrics"]))
    equity = run.get("equity")
    charts = isinstance(equity, Mapping) and bool(equity.get("timestamp"))
    if charts and isinstance(equity, Mapping):
        trades = run.get("trades")
        trades = trades if isinstance(trades, list) else []
        parts.append("<h2>Equity</h2>" + _equity_chart(equity, trades, run.get("benchmark")))
        parts.append("<h2>Drawdown</h2>" + _drawdown_chart(equity))
    if isinstance(run.get("trades"), list):
        parts.append(_trades(run["trades"], run.get("trades_total")))
    title = _e(results.get("title") or results.get("strategy_name") or "Backtest report")
    script = ""
    if charts:  # plotly.js once, inline (about 4.8 MB): the page needs no network
        import plotly.offline

        script = f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style>"
        f"{script}</head><body><main>{''.join(parts)}</main></body></html>\n"
    )


# ---- formatting ----------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def fmt(key: str, value: Any) -> str:
    """``value`` of metric ``key`` as text (already escaped): percentages for returns and
    drawdowns, two decimals for ratios, thousands separators for money, "—" when undefined."""
    if value is None:
        return "—"
    x = _finite(value)
    if x is None:
        return _e(value) if not isinstance(value, float) else "—"
    if key in PERCENT:
        return f"{x * 100:,.2f}%"
    if key in MONEY:
        return f"{x:,.2f}"
    if key in INTEGER or (isinstance(value, int) and not isinstance(value, bool)):
        return f"{round(x):,}"
    if key in {"max_drawdown_duration_days", "periods_per_year"}:
        return f"{x:,.1f}"
    return f"{x:,.2f}"


def _cls(value: Any) -> str:
    x = _finite(value)
    if x is None or x == 0:
        return ""
    return ' class="pos"' if x > 0 else ' class="neg"'


def _params(params: Any) -> str:
    if not isinstance(params, Mapping):
        return _e(params) if params is not None else ""
    return ", ".join(f"{_e(k)}={_e(v)}" for k, v in params.items())


def _header(results: Mapping[str, Any]) -> str:
    best = results.get("best")
    run: Mapping[str, Any] = best if isinstance(best, Mapping) else results
    strategy = results.get("strategy_name") or results.get("title") or "Backtest"
    title = results.get("title") or strategy
    kind = (
        "Optimization"
        if "top" in results
        else "Walk-forward analysis"
        if "windows" in results
        else "Monte Carlo"
        if "trade_bootstrap" in results or "block_bootstrap" in results
        else "Backtest"
    )
    symbols = run.get("symbols") or []
    first, last = run.get("first"), run.get("last")
    stamps = (run.get("equity") or {}).get("timestamp") or []
    if not first and stamps:
        first, last = stamps[0], stamps[-1]
    facts: list[tuple[str, str]] = [("Strategy", _e(strategy))]
    if symbols:
        facts.append(("Symbols", ", ".join(_e(s) for s in symbols)))
    if first:
        facts.append(("Period", f"{_e(_day(first))} → {_e(_day(last or first))}"))
    if run.get("bars") is not None:
        facts.append(("Bars", fmt("bars", run.get("bars"))))
    if run.get("engine"):
        facts.append(("Engine", _e(run["engine"])))
    if run.get("benchmark"):
        facts.append(("Benchmark", f"{_e(run['benchmark'])} (buy and hold)"))
    params = results.get("best_params") or run.get("params")
    if params:
        facts.append(("Parameters", _params(params)))
    config = results.get("config") or run.get("config")
    if isinstance(config, Mapping) and config:
        facts.append(("Settings", _params(config)))
    rows = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return f'<h1>{_e(title)}</h1><p class="sub">{_e(kind)} report</p><div class="card"><dl>{rows}</dl></div>'


def _day(stamp: Any) -> str:
    text = str(stamp)
    return text[:10] if text.endswith("T00:00:00Z") else text.replace("T", " ").rstrip("Z")


def _metrics(m: Mapping[str, Any]) -> str:
    keys = [k for k in LABELS if k in m] + [k for k in m if k not in LABELS]
    per = math.ceil(len(keys) / 3) or 1
    tables = []
    for start in range(0, len(keys), per):
        rows = "".join(
            f"<tr><td>{_e(LABELS.get(k, k))}</td><td{_cls(m[k]) if k in SIGNED else ''}>"
            f"{fmt(k, m[k])}</td></tr>"
            for k in keys[start : start + per]
        )
        tables.append(f"<table>{rows}</table>")
    return f'<h2>Metrics</h2><div class="card grid">{"".join(tables)}</div>'


# ---- charts --------------------------------------------------------------------------------------


def _plot_time(stamps: Sequence[Any]) -> list[str]:
    """ISO-8601 UTC strings as plotly date strings (plotly ignores zones; the axis says UTC)."""
    return [str(s).replace("T", " ").rstrip("Z") for s in stamps]


def _ns(stamps: Sequence[Any]) -> np.ndarray:
    return np.array([str(s).rstrip("Z") for s in stamps], dtype="datetime64[ns]").astype(np.int64)


def _series(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _nearest(curve_ns: np.ndarray, at_ns: np.ndarray) -> np.ndarray:
    """Index of the curve point nearest each time (the curve may be downsampled)."""
    right = np.clip(np.searchsorted(curve_ns, at_ns), 0, len(curve_ns) - 1)
    left = np.clip(right - 1, 0, len(curve_ns) - 1)
    take_left = np.abs(at_ns - curve_ns[left]) <= np.abs(curve_ns[right] - at_ns)
    out: np.ndarray = np.where(take_left, left, right)
    return out


def _figure_html(fig: Any, div_id: str, height: int) -> str:
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 20, "t": 20, "b": 40},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        hovermode="closest",
    )
    fig.update_xaxes(title_text="time (UTC)")
    out: str = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )
    return f'<div class="card">{out}</div>'


def _equity_chart(
    equity: Mapping[str, Any], trades: Sequence[Mapping[str, Any]], benchmark: str | None = None
) -> str:
    import plotly.graph_objects as go

    stamps = list(equity["timestamp"])
    x = _plot_time(stamps)
    y = _series(equity.get("equity") or [])
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=x, y=y, name="Strategy", mode="lines", line={"color": "#1f5fbf", "width": 1.6})
    )
    if equity.get("benchmark"):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_series(equity["benchmark"]),
                name=f"Benchmark: {benchmark} (buy and hold)" if benchmark else "Benchmark (buy and hold)",
                mode="lines",
                line={"color": "#8a8f98", "width": 1.2, "dash": "dot"},
            )
        )
    shown = [t for t in trades[: MAX_MARKERS // 2] if t.get("entry_time") and t.get("exit_time")]
    if shown and len(y):
        curve_ns = _ns(stamps)
        for which, symbol, color, label in (
            ("entry", "triangle-up", "#127a3a", "Entry ▲"),
            ("exit", "triangle-down", "#b3261e", "Exit ▼"),
        ):
            at = _nearest(curve_ns, _ns([t[f"{which}_time"] for t in shown]))
            text = [
                f"{_e(t.get('side', ''))} {_e(t.get('symbol', ''))} {_quantity(t.get('quantity'))} "
                f"@ {_price(t.get(f'{which}_price'))}<br>{_e(_day(t[f'{which}_time']))}"
                + (f"<br>P&amp;L {fmt('final_equity', t.get('pnl'))}" if which == "exit" else "")
                for t in shown
            ]
            fig.add_trace(
                go.Scatter(
                    x=[x[i] for i in at],
                    y=y[at],
                    name=label,
                    mode="markers",
                    marker={"symbol": symbol, "size": 9, "color": color, "line": {"width": 0}},
                    text=text,
                    hovertemplate="%{text}<extra></extra>",
                )
            )
    fig.update_yaxes(title_text="equity")
    note = ""
    if len(trades) > len(shown):
        note = f'<p class="note">Markers for the first {len(shown):,} trades.</p>'
    return _figure_html(fig, "equity-chart", 460) + note


def _drawdown_chart(equity: Mapping[str, Any]) -> str:
    import plotly.graph_objects as go

    x = _plot_time(equity["timestamp"])
    dd = _series(equity.get("drawdown") or []) * 100.0
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=dd,
            name="Drawdown",
            mode="lines",
            fill="tozeroy",
            line={"color": "#b3261e", "width": 1},
            fillcolor="rgba(179,38,30,0.25)",
            hovertemplate="%{y:.2f}%<extra></extra>",
        )
    )
    fig.update_yaxes(title_text="drawdown (%)", ticksuffix="%")
    return _figure_html(fig, "drawdown-chart", 260)


# ---- tables --------------------------------------------------------------------------------------

TRADE_COLUMNS = (
    ("#", "n", "r"),
    ("Symbol", "symbol", "l"),
    ("Side", "side", "l"),
    ("Quantity", "quantity", "r"),
    ("Entry time", "entry_time", "l"),
    ("Entry price", "entry_price", "r"),
    ("Exit time", "exit_time", "l"),
    ("Exit price", "exit_price", "r"),
    ("Bars", "bars_held", "r"),
    ("P&L", "pnl", "r"),
    ("Return", "return", "r"),
    ("Fees", "fees", "r"),
    ("Exit reason", "exit_reason", "l"),
)


def _trade_cell(key: str, value: Any) -> str:
    if key in ("entry_time", "exit_time"):
        return _e(_day(value)) if value else "—"
    if key in ("symbol", "side", "exit_reason"):
        return _e(value) if value is not None else ""
    if key in ("pnl", "fees"):
        return fmt("final_equity", value)
    if key == "quantity":
        return _quantity(value)
    if key in ("entry_price", "exit_price"):
        return _price(value)
    return fmt(key, value)


def _quantity(value: Any) -> str:
    x = _finite(value)
    if x is None:
        return "—"
    return f"{x:,.0f}" if x.is_integer() else f"{x:,.6g}"


def _price(value: Any) -> str:
    x = _finite(value)
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:,.2f}"
    return f"{x:,.4f}" if abs(x) >= 1 else f"{x:.6g}"


def _trades(trades: Sequence[Mapping[str, Any]], total: Any) -> str:
    n = int(total) if isinstance(total, int) and total >= len(trades) else len(trades)
    if n == 0:
        return '<h2>Trades</h2><p class="note">No closed trades.</p>'
    shown = trades[:MAX_TRADE_ROWS]
    head = "".join(f'<th class="{a}">{_e(label)}</th>' for label, _, a in TRADE_COLUMNS)
    body = []
    for k, t in enumerate(shown, start=1):
        cells = []
        for _, key, align in TRADE_COLUMNS:
            value = k if key == "n" else t.get(key)
            colour = _cls(value) if key in ("pnl", "return") else ""
            attr = ' class="l"' if align == "l" else colour
            cells.append(f"<td{attr}>{_trade_cell(key, value) if key != 'n' else k}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    note = f"{n:,} closed trades."
    if n > len(shown):
        note = f"Showing the first {len(shown):,} of {n:,} closed trades (truncated)."
    return (
        f'<h2>Trades</h2><p class="note">{note}</p><div class="scroll"><table>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _optimization(results: Mapping[str, Any]) -> str:
    objective = str(results.get("objective") or "")
    top: Sequence[Mapping[str, Any]] = results["top"]
    cols = [c for c in TOP_COLUMNS if any(c in row for row in top)]
    if objective and objective not in cols and any(objective in row for row in top):
        cols.insert(0, objective)
    head = '<th>Rank</th><th class="l">Parameters</th>' + "".join(
        f"<th>{'<u>' if c == objective else ''}{_e(LABELS.get(c, c))}{'</u>' if c == objective else ''}</th>"
        for c in cols
    )
    rows = "".join(
        f'<tr><td>{_e(row.get("rank", ""))}</td><td class="l">{_params(row.get("params"))}</td>'
        + "".join(f"<td>{fmt(c, row.get(c))}</td>" for c in cols)
        + "</tr>"
        for row in top
    )
    dsr = _finite(results.get("deflated_sharpe"))
    if dsr is None:
        line = "Deflated Sharpe ratio: not defined (too few trials or returns)."
    else:
        verdict = "" if dsr >= 0.95 else ' <span class="warn">(below 0.95: the edge may be luck)</span>'
        line = f"Deflated Sharpe ratio of the winner: <b>{dsr:.3f}</b>{verdict}"
    note = _e(results.get("deflated_sharpe_note") or "")
    return (
        f"<h2>Optimization: top {len(top):,} of {fmt('combinations', results.get('combinations'))} "
        f"combinations by {_e(LABELS.get(objective, objective))}</h2>"
        f'<p>{line}</p><p class="note">{note}</p>'
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'
    )


def _walk_forward(results: Mapping[str, Any]) -> str:
    windows: Sequence[Mapping[str, Any]] = results["windows"]
    eff = _finite(results.get("efficiency"))
    line = (
        "Walk-forward efficiency (out-of-sample / in-sample annualized return): "
        + ("not defined" if eff is None else f"<b>{eff:.2f}</b>")
        + ("" if eff is None or eff >= 0.5 else ' <span class="warn">(below 0.5: may fit noise)</span>')
    )
    cols = ("total_return", "sharpe_ratio", "max_drawdown", "number_of_trades")
    head = (
        '<th>#</th><th class="l">Training</th><th class="l">Testing</th><th class="l">Parameters</th>'
        + "".join(f"<th>IS {_e(LABELS[c])}</th>" for c in cols[:2])
        + "".join(f"<th>OOS {_e(LABELS[c])}</th>" for c in cols)
    )
    rows = []
    for w in windows:
        ins = w.get("in_sample") or {}
        oos = w.get("out_of_sample") or {}
        rows.append(
            f"<tr><td>{_e(w.get('window', ''))}</td>"
            f'<td class="l">{_e(_day(w.get("train_start", "")))} → {_e(_day(w.get("train_end", "")))}</td>'
            f'<td class="l">{_e(_day(w.get("test_start", "")))} → {_e(_day(w.get("test_end", "")))}</td>'
            f'<td class="l">{_params(w.get("params"))}</td>'
            + "".join(f"<td>{fmt(c, ins.get(c))}</td>" for c in cols[:2])
            + "".join(
                f"<td{_cls(oos.get(c)) if c == 'total_return' else ''}>{fmt(c, oos.get(c))}</td>"
                for c in cols
            )
            + "</tr>"
        )
    return (
        f"<h2>Walk-forward: {len(windows):,} windows</h2><p>{line}</p>"
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        '<p class="note">The equity, metrics and trades below are the out-of-sample windows stitched.</p>'
    )


def _monte_carlo(results: Mapping[str, Any]) -> str:
    out = ["<h2>Monte Carlo</h2>"]
    for key, label in (("trade_bootstrap", "Trade-order bootstrap"), ("block_bootstrap", "Block bootstrap")):
        r = results.get(key)
        if not isinstance(r, Mapping):
            continue
        facts = [
            ("Simulations", fmt("bars", r.get("n_simulations"))),
            ("Horizon", fmt("bars", r.get("horizon"))),
            ("Probability of loss", fmt("win_rate", r.get("probability_of_loss"))),
            ("Probability of ruin", fmt("win_rate", r.get("probability_of_ruin"))),
            ("Final equity at confidence", fmt("final_equity", r.get("final_equity_at_confidence"))),
            ("Drawdown at confidence", fmt("max_drawdown", r.get("drawdown_at_confidence"))),
        ]
        rows = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts)
        dists = []
        for name, kind in (("final_equity", "final_equity"), ("max_drawdown", "max_drawdown")):
            d = r.get(name)
            if isinstance(d, Mapping):
                pct = d.get("percentiles") or {}
                cells = "".join(f"<td>{_e(p)}: {fmt(kind, v)}</td>" for p, v in pct.items())
                dists.append(
                    f'<tr><td class="l">{_e(LABELS.get(name, name))}</td><td>{fmt(kind, d.get("mean"))}</td>'
                    f"{cells}</tr>"
                )
        out.append(
            f'<h3>{_e(label)}</h3><div class="card"><dl>{rows}</dl></div>'
            f'<table><tr><th class="l">Distribution</th><th>Mean</th><th colspan="20">Percentiles</th></tr>'
            f"{''.join(dists)}</table>"
        )
    return "".join(out)
