"""Rebalancing: target weights to the orders that reach them from the current holdings (pure;
long-only; every quantity, price and amount is a ``Decimal``).

Conventions:

* **equity** ``E = cash + sum(quantity * price)`` over the holdings, at the given prices; trades
  at those prices (no fees, no slippage) leave it unchanged, so every weight is a fraction of
  ``E``, before and after. Weights and thresholds given as ``float`` are read through their
  shortest repr (``0.1`` is ``Decimal("0.1")``).
* **targets**: weights of ``E`` per symbol, each ``>= 0``, summing to at most ``1 + tolerance``;
  the remainder is cash. A held symbol absent from ``targets`` targets 0 (it is sold out).
* **cash buffer**: with ``cash_buffer = b`` (in ``[0, 1)``) the targets are scaled so that they
  sum to at most ``1 - b``: when ``s = sum(targets) > 1 - b`` every target becomes
  ``target * (1 - b) / s``, otherwise they are used as given. Buys also never take the cash
  below ``b * E`` (see below). ``target_weight`` in the plan is that effective target.
* **drift** ``= current weight - target weight``. A symbol with ``|drift| < drift_threshold`` is
  not traded (listed in ``skipped``); with the default 0 everything off target is traded.
* **quantities**: the trade that reaches the target exactly is rounded **toward zero** to a
  multiple of the symbol's lot size (``lot_sizes``, default ``1e-8``: fractional; 1 for whole
  shares), so rounding never carries a holding past its target. A sell to a target of 0 sells
  the whole position even if that is not a lot multiple.
* **cash**: sells come first; the buys may spend the cash after the sells minus ``b * E``. If
  they need more, every buy quantity is scaled by the same factor
  ``available / total buy value`` and rounded toward zero to its lot again (``buy_scale`` in the
  plan; 1 when nothing was scaled); if nothing is available, no buy is made. So the cash never
  goes negative and never goes below the buffer through buying.
* **min_trade_value**: a trade worth less (``quantity * price``) is dropped, with the reason in
  ``skipped``.
* **order**: sells first, then buys, each in symbol order.

Why our own code: the rules (lot rounding, buffer, drift bands, scaling buys to the cash) are
the policy of this platform; portfolio libraries' discrete allocators (PyPortfolioOpt's
``DiscreteAllocation``) solve a different problem (spend a budget from scratch).

Bad input raises ``ValueError`` naming the field and symbol (``targets``, ``targets['X']``,
``prices['X']``, ``holdings['X']``, ``lot_sizes['X']``, ``cash``, ...), which the API reports as
422.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal, localcontext
from typing import Literal

ZERO = Decimal(0)
ONE = Decimal(1)
DEFAULT_LOT = Decimal("1e-8")
Number = Decimal | float | int


@dataclass(frozen=True, slots=True)
class PlannedTrade:
    symbol: str
    side: Literal["buy", "sell"]
    quantity: Decimal
    price: Decimal
    value: Decimal
    current_weight: Decimal
    target_weight: Decimal
    drift: Decimal


@dataclass(frozen=True, slots=True)
class RebalancePlan:
    trades: list[PlannedTrade]
    skipped: list[tuple[str, str]]
    equity: Decimal
    cash_after: Decimal
    weights_after: dict[str, Decimal]
    """Every symbol held or targeted: its weight of ``equity`` once the trades are done."""
    buy_scale: Decimal
    """The factor the buys were scaled by to fit the cash (1: not scaled; 0: no cash for them)."""


def _dec(value: object, field: str) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{field} must be a number, got {value!r}")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        d = Decimal(repr(value))
    else:
        raise ValueError(f"{field} must be a number, got {value!r}")
    if not d.is_finite():
        raise ValueError(f"{field} must be finite, got {value!r}")
    return d


def _floor_to(quantity: Decimal, step: Decimal) -> Decimal:
    """``quantity`` (>= 0) rounded down to a multiple of ``step``."""
    with localcontext() as ctx:
        ctx.rounding = ROUND_FLOOR
        lots = quantity / step
    return lots.to_integral_value(rounding=ROUND_DOWN) * step


def plan(
    holdings: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    cash: Decimal,
    targets: Mapping[str, Decimal | float],
    *,
    drift_threshold: Number = 0.0,
    min_trade_value: Number = ZERO,
    cash_buffer: Number = 0.0,
    lot_sizes: Mapping[str, Decimal] | None = None,
    tolerance: Number = 1e-6,
) -> RebalancePlan:
    """The trades that move ``holdings`` (quantities) toward ``targets`` (weights of equity); see
    the module docstring for the rules."""
    cash_d = _dec(cash, "cash")
    threshold = _dec(drift_threshold, "drift_threshold")
    min_value = _dec(min_trade_value, "min_trade_value")
    buffer = _dec(cash_buffer, "cash_buffer")
    tol = _dec(tolerance, "tolerance")
    if threshold < 0:
        raise ValueError(f"drift_threshold must not be negative, got {drift_threshold}")
    if min_value < 0:
        raise ValueError(f"min_trade_value must not be negative, got {min_trade_value}")
    if not ZERO <= buffer < ONE:
        raise ValueError(f"cash_buffer must be in [0, 1), got {cash_buffer}")
    if tol < 0:
        raise ValueError(f"tolerance must not be negative, got {tolerance}")

    held: dict[str, Decimal] = {}
    for sym, q in holdings.items():
        qd = _dec(q, f"holdings[{sym!r}]")
        if qd < 0:
            raise ValueError(f"holdings[{sym!r}] is {qd}: short positions are out of scope")
        held[sym] = qd
    want: dict[str, Decimal] = {}
    for sym, weight in targets.items():
        td = _dec(weight, f"targets[{sym!r}]")
        if td < 0:
            raise ValueError(f"targets[{sym!r}] is {td}: weights must not be negative (long only)")
        want[sym] = td
    total = sum(want.values(), ZERO)
    if total > ONE + tol:
        raise ValueError(f"targets sum to {total}, more than 1 (the weights are fractions of equity)")

    symbols = sorted({s for s, q in held.items() if q != 0} | set(want))
    px: dict[str, Decimal] = {}
    for sym in symbols:
        if sym not in prices:
            raise ValueError(f"prices[{sym!r}] is missing: {sym} is held or targeted")
        p = _dec(prices[sym], f"prices[{sym!r}]")
        if p <= 0:
            raise ValueError(f"prices[{sym!r}] must be positive, got {p}")
        px[sym] = p
    lots = lot_sizes or {}
    step: dict[str, Decimal] = {}
    for sym in symbols:
        s = _dec(lots.get(sym, DEFAULT_LOT), f"lot_sizes[{sym!r}]")
        if s <= 0:
            raise ValueError(f"lot_sizes[{sym!r}] must be positive, got {s}")
        step[sym] = s

    equity = cash_d + sum((held.get(s, ZERO) * px[s] for s in symbols), ZERO)
    if equity <= 0:
        raise ValueError(f"equity (cash + holdings at the given prices) must be positive, got {equity}")
    room = ONE - buffer
    scale = room / total if total > room else ONE
    effective = {s: want.get(s, ZERO) * scale for s in symbols}

    skipped: list[tuple[str, str]] = []
    sells: list[PlannedTrade] = []
    buys: list[PlannedTrade] = []
    for sym in symbols:
        q, p, tgt = held.get(sym, ZERO), px[sym], effective[sym]
        cur = q * p / equity
        drift = cur - tgt
        if drift == 0:
            continue
        if abs(drift) < threshold:
            skipped.append((sym, f"within the drift threshold (|drift| {abs(drift):.6g} < {threshold})"))
            continue
        if tgt == 0:
            side: Literal["buy", "sell"] = "sell"
            qty = q
        else:
            delta = tgt * equity / p - q
            side = "buy" if delta > 0 else "sell"
            qty = _floor_to(abs(delta), step[sym])
        if qty == 0:
            skipped.append((sym, f"the {side} is less than one lot ({step[sym]})"))
            continue
        value = qty * p
        if value < min_value:
            skipped.append((sym, f"the {side} of {value} is below min_trade_value {min_value}"))
            continue
        trade = PlannedTrade(sym, side, qty, p, value, cur, tgt, drift)
        (sells if side == "sell" else buys).append(trade)

    cash_after = cash_d + sum((t.value for t in sells), ZERO)
    available = cash_after - buffer * equity
    buy_total = sum((t.value for t in buys), ZERO)
    buy_scale = ONE
    if buy_total > available:
        if available <= 0:
            buy_scale = ZERO
            skipped.extend(
                (t.symbol, f"no cash for the buy above the cash buffer ({buffer * equity})") for t in buys
            )
            buys = []
        else:
            buy_scale = available / buy_total
            scaled = []
            for t in buys:
                with localcontext() as ctx:
                    ctx.rounding = ROUND_FLOOR  # never above the exact share of the cash
                    raw = t.quantity * available / buy_total
                qty = _floor_to(raw, step[t.symbol])
                value = qty * t.price
                if qty == 0:
                    skipped.append((t.symbol, "the buy, scaled down to fit the cash, is less than one lot"))
                elif value < min_value:
                    reason = f"the buy, scaled down to fit the cash, is below min_trade_value {min_value}"
                    skipped.append((t.symbol, reason))
                else:
                    scaled.append(
                        PlannedTrade(
                            t.symbol,
                            "buy",
                            qty,
                            t.price,
                            value,
                            t.current_weight,
                            t.target_weight,
                            t.drift,
                        )
                    )
            buys = scaled
    cash_after -= sum((t.value for t in buys), ZERO)

    after = {s: held.get(s, ZERO) for s in symbols}
    for t in sells:
        after[t.symbol] -= t.quantity
    for t in buys:
        after[t.symbol] += t.quantity
    weights_after = {s: after[s] * px[s] / equity for s in symbols}
    return RebalancePlan(sells + buys, skipped, equity, cash_after, weights_after, buy_scale)
