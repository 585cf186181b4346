"""The ``portfolio.report`` job kind: render a report's files in a job worker.

The service gathers everything the report shows (a :class:`render_common.ReportData`) and submits it as
the job's params (JSON, see :func:`data_to_json`); the job renders each requested format and
writes it to the report's directory, overwriting what a previous run of the same job wrote
(each file goes to a temporary name first, then replaces the old one), so a re-run is harmless.
It returns the files it wrote: ``{"files": [{"format", "name", "size"}]}``.

A failure is a ``JobFailed`` whose message says what went wrong (which format failed to render,
or that the file could not be written) without the server's paths.
"""

from __future__ import annotations

import math
import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from algotrendy.services.jobs.interface import JobContext, JobFailed, JobRegistrar
from algotrendy.services.portfolio import render
from algotrendy.services.portfolio.render_common import HoldingRow, ReportData, TradeRow

KIND = "portfolio.report"
FORMATS = ("pdf", "xlsx")
CONTENT_TYPES = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,150}")


def file_name(portfolio_name: str, label: str, fmt: str) -> str:
    """``main-portfolio-2026-10.pdf``: a download name with only safe characters."""
    stem = _UNSAFE.sub("-", portfolio_name).strip("-.").lower()[:60] or "portfolio"
    return f"{stem}-{label}.{fmt}"


# --------------------------------------------------------------------------- ReportData as JSON


def _num(v: float | None) -> float | None:
    """JSON has no NaN or infinity: they travel as null."""
    return None if v is None or not math.isfinite(v) else float(v)


def _nan(v: Any) -> float:
    return math.nan if v is None else float(v)


def data_to_json(data: ReportData) -> dict[str, Any]:
    return {
        "portfolio_name": data.portfolio_name,
        "currency": data.currency,
        "period_start": data.period_start.isoformat(),
        "period_end": data.period_end.isoformat(),
        "generated_at": data.generated_at.isoformat(),
        "dates": [d.isoformat() for d in data.dates],
        "equity": [_num(v) for v in data.equity],
        "returns": [_num(v) for v in data.returns],
        "benchmark_symbol": data.benchmark_symbol,
        "benchmark": None if data.benchmark is None else [_num(v) for v in data.benchmark],
        "holdings": [
            {
                "symbol": h.symbol,
                "quantity": _num(h.quantity),
                "price": _num(h.price),
                "value": _num(h.value),
                "weight": _num(h.weight),
                "unrealized_pnl": _num(h.unrealized_pnl),
            }
            for h in data.holdings
        ],
        "trades": [
            {
                "at": t.at.isoformat(),
                "symbol": t.symbol,
                "side": t.side,
                "quantity": _num(t.quantity),
                "price": _num(t.price),
                "fee": _num(t.fee),
                "order_id": t.order_id,
            }
            for t in data.trades
        ],
        "metrics": {k: _num(v) for k, v in data.metrics.items()},
    }


def data_from_json(raw: dict[str, Any]) -> ReportData:
    bench = raw.get("benchmark")
    return ReportData(
        portfolio_name=raw["portfolio_name"],
        currency=raw["currency"],
        period_start=date.fromisoformat(raw["period_start"]),
        period_end=date.fromisoformat(raw["period_end"]),
        generated_at=datetime.fromisoformat(raw["generated_at"]),
        dates=[date.fromisoformat(d) for d in raw["dates"]],
        equity=[_nan(v) for v in raw["equity"]],
        returns=[_nan(v) for v in raw["returns"]],
        benchmark_symbol=raw.get("benchmark_symbol"),
        benchmark=None if bench is None else [_nan(v) for v in bench],
        holdings=[
            HoldingRow(
                symbol=h["symbol"],
                quantity=_nan(h["quantity"]),
                price=h["price"],
                value=_nan(h["value"]),
                weight=_nan(h["weight"]),
                unrealized_pnl=h["unrealized_pnl"],
            )
            for h in raw.get("holdings", [])
        ],
        trades=[
            TradeRow(
                at=datetime.fromisoformat(t["at"]),
                symbol=t["symbol"],
                side=t["side"],
                quantity=_nan(t["quantity"]),
                price=_nan(t["price"]),
                fee=_nan(t["fee"]),
                order_id=t["order_id"],
            )
            for t in raw.get("trades", [])
        ],
        metrics=dict(raw.get("metrics", {})),
    )


# --------------------------------------------------------------------------- the job


def _write(path: Path, content: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def run_report(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Params: ``out_dir``, ``formats``, ``names`` (format -> file name) and ``data``."""
    formats = [f for f in params["formats"] if f in FORMATS]
    if not formats:
        raise JobFailed(f"no format to render (asked for {params['formats']!r})")
    ctx.progress(0.0, "reading the report data")
    try:
        data = data_from_json(params["data"])
    except (KeyError, TypeError, ValueError) as exc:
        raise JobFailed(f"the report data is not valid: {type(exc).__name__}: {exc}") from None
    out = Path(params["out_dir"])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JobFailed(
            f"could not create the report's directory: {exc.strerror or type(exc).__name__}"
        ) from None
    renderers = {"pdf": render.render_pdf, "xlsx": render.render_xlsx}
    files = []
    for i, fmt in enumerate(formats):
        ctx.progress(i / len(formats), f"rendering the {fmt.upper()}")
        try:
            content = renderers[fmt](data)
        except Exception as exc:
            raise JobFailed(f"rendering the {fmt.upper()} failed: {type(exc).__name__}: {exc}") from None
        name = str(params["names"][fmt])
        if not _SAFE_NAME.fullmatch(name):
            raise JobFailed(f"the {fmt.upper()} file name {name!r} is not allowed")
        try:
            _write(out / name, content)
        except OSError as exc:
            raise JobFailed(
                f"could not write the {fmt.upper()} file: {exc.strerror or type(exc).__name__}"
            ) from None
        files.append({"format": fmt, "name": name, "size": len(content)})
    ctx.progress(1.0, "done")
    return {"files": files}


def register(registrar: JobRegistrar) -> None:
    registrar.register(KIND, run_report)
