"""Pre-trade risk: every limit denies what crosses it and names the value; reducing orders pass
the exposure checks; the kill switch and the order rate apply to everything."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algotrendy.engine.orders import OrderSide
from algotrendy.engine.risk import (
    NS_PER_MINUTE,
    AccountView,
    Holding,
    OrderIntent,
    RiskLimits,
    TradingState,
    pre_trade_check,
    reduces,
)

NOW = 1_700_000_000 * 10**9


def account(**holdings: tuple[str, str, str]) -> AccountView[D]:
    return AccountView(
        equity=D("100000"),
        day_start_equity=D("100000"),
        holdings={s: Holding(D(q), D(p), D(pending)) for s, (q, p, pending) in holdings.items()},
    )


def buy(symbol: str, qty: str, price: str, **kw: bool) -> OrderIntent[D]:
    return OrderIntent(symbol, OrderSide.BUY, D(qty), D(price), **kw)


def sell(symbol: str, qty: str, price: str, **kw: bool) -> OrderIntent[D]:
    return OrderIntent(symbol, OrderSide.SELL, D(qty), D(price), **kw)


def codes(intent: OrderIntent[D], acct: AccountView[D], limits: RiskLimits[D], now: int = NOW) -> set[str]:
    return {d.code for d in pre_trade_check(intent, acct, limits, now).denials}


def test_no_limits_allow_everything() -> None:
    decision = pre_trade_check(buy("AAPL", "1000", "150"), account(), RiskLimits(), NOW)
    assert decision.allowed and decision.reason == ""


def test_max_order_notional_names_the_value() -> None:
    decision = pre_trade_check(
        buy("AAPL", "100", "150"), account(), RiskLimits(max_order_notional=D("10000")), NOW
    )
    assert not decision.allowed
    assert (
        decision.denials[0].code == "order_notional"
        and "15000" in decision.reason
        and "10000" in decision.reason
    )
    assert codes(buy("AAPL", "66", "150"), account(), RiskLimits(max_order_notional=D("10000"))) == set()


def test_position_limits_count_the_open_orders() -> None:
    limits = RiskLimits(max_position_quantity=D("100"))
    acct = account(AAPL=("60", "150", "30"))  # 60 held, 30 more on open orders
    assert codes(buy("AAPL", "10", "150"), acct, limits) == set()
    assert codes(buy("AAPL", "11", "150"), acct, limits) == {"position_quantity"}
    per_symbol = RiskLimits(max_position_quantity=D("100"), symbol_quantity={"AAPL": D("95")})
    assert codes(buy("AAPL", "10", "150"), acct, per_symbol) == {"position_quantity"}
    notional = RiskLimits(max_position_notional=D("15000"))
    assert codes(buy("AAPL", "11", "150"), acct, notional) == {"position_notional"}


def test_a_short_counts_by_its_size() -> None:
    limits = RiskLimits(max_position_quantity=D("100"))
    assert codes(sell("AAPL", "100", "150"), account(), limits) == set()
    assert codes(sell("AAPL", "101", "150"), account(), limits) == {"position_quantity"}


def test_concentration_and_leverage() -> None:
    acct = account(MSFT=("200", "300", "0"))  # 60,000 of MSFT on 100,000 equity
    assert codes(buy("AAPL", "200", "150"), acct, RiskLimits(max_concentration=D("0.25"))) == {
        "concentration"
    }
    assert codes(buy("AAPL", "100", "150"), acct, RiskLimits(max_concentration=D("0.25"))) == set()
    assert codes(buy("AAPL", "300", "150"), acct, RiskLimits(max_leverage=D("1"))) == {"leverage"}
    assert codes(buy("AAPL", "266", "150"), acct, RiskLimits(max_leverage=D("1"))) == set()


def test_daily_loss_limit_lets_only_reducing_orders_through() -> None:
    acct = AccountView(
        equity=D("94000"),
        day_start_equity=D("100000"),
        holdings={"AAPL": Holding(D("100"), D("150"), D("0"))},
    )
    limits = RiskLimits(daily_loss_limit=D("5000"))
    assert codes(buy("MSFT", "1", "300"), acct, limits) == {"daily_loss"}
    assert codes(sell("AAPL", "100", "150"), acct, limits) == set()
    assert codes(sell("AAPL", "101", "150"), acct, limits) == {"daily_loss"}  # flips: adds exposure


def test_kill_switch_states() -> None:
    acct = account(AAPL=("100", "150", "0"))
    assert codes(sell("AAPL", "50", "150"), acct, RiskLimits(state=TradingState.HALTED)) == {"halted"}
    reducing = RiskLimits(state=TradingState.REDUCING)
    assert codes(sell("AAPL", "50", "150"), acct, reducing) == set()
    assert codes(buy("AAPL", "1", "150"), acct, reducing) == {"reducing_only"}
    assert codes(sell("AAPL", "150", "150"), acct, reducing) == {"reducing_only"}


def test_order_rate_counts_the_last_minute_only() -> None:
    limits = RiskLimits(max_orders_per_minute=3)
    recent = [NOW - NS_PER_MINUTE - 1, NOW - 10, NOW - 5]  # the first is older than a minute
    acct = AccountView(D("100000"), D("100000"), {}, recent)
    assert codes(buy("AAPL", "1", "1"), acct, limits) == set()
    crowded = AccountView(D("100000"), D("100000"), {}, [*recent, NOW])
    assert codes(buy("AAPL", "1", "1"), crowded, limits) == {"rate_limited"}


def test_reduce_only_needs_something_to_reduce() -> None:
    assert codes(sell("AAPL", "1", "150", reduce_only=True), account(), RiskLimits()) == {"reduce_only"}
    held = account(AAPL=("5", "150", "0"))
    assert codes(sell("AAPL", "5", "150", reduce_only=True), held, RiskLimits()) == set()


def test_every_reason_is_reported_at_once() -> None:
    limits = RiskLimits(max_order_notional=D("1000"), max_position_quantity=D("5"), max_leverage=D("0.001"))
    decision = pre_trade_check(buy("AAPL", "10", "150"), account(), limits, NOW)
    assert {d.code for d in decision.denials} == {"order_notional", "position_quantity", "leverage"}


def test_floats_work_the_same_way() -> None:
    acct = AccountView(100_000.0, 100_000.0, {"AAPL": Holding(10.0, 150.0, 0.0)})
    intent = OrderIntent("AAPL", OrderSide.BUY, 1_000.0, 150.0)
    assert {d.code for d in pre_trade_check(intent, acct, RiskLimits(max_leverage=1.0), NOW).denials} == {
        "leverage"
    }


def test_mixing_decimal_and_float_is_refused() -> None:
    with pytest.raises(TypeError):
        pre_trade_check(buy("AAPL", "1", "1"), account(), RiskLimits(max_order_notional=10.0), NOW)  # type: ignore[arg-type]


amounts = st.decimals(min_value=1, max_value=10_000, places=2)


@given(position=amounts, fraction=st.decimals(min_value=D("0.01"), max_value=1, places=2), price=amounts)
def test_reducing_orders_pass_every_exposure_check(position: D, fraction: D, price: D) -> None:
    qty = (position * fraction).quantize(D("0.01"))
    acct = AccountView(
        D("1"), D("1000000"), {"X": Holding(position, price, D("0"))}
    )  # deep in loss, tiny equity
    limits = RiskLimits(
        max_position_quantity=D("0.01"),
        max_position_notional=D("0.01"),
        max_concentration=D("0.01"),
        max_leverage=D("0.01"),
        daily_loss_limit=D("1"),
    )
    intent = sell("X", str(qty), str(price))
    assert reduces(intent, position)
    assert pre_trade_check(intent, acct, limits, NOW).allowed


@given(qty=amounts, limit=amounts)
def test_order_notional_is_denied_exactly_above_the_limit(qty: D, limit: D) -> None:
    decision = pre_trade_check(buy("X", str(qty), "1"), account(), RiskLimits(max_order_notional=limit), NOW)
    assert decision.allowed == (qty <= limit)
