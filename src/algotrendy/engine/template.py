"""A strategy defined without code: the spec's ``StrategyTemplate`` and ``ParameterSpec``.

A template names its tunable ``parameters``, its ``indicators`` (named expressions, e.g.
``"fast_ma = sma(close, fast)"``), its long ``entry_conditions`` (all must hold) and
``exit_conditions`` (any one closes), optionally the same for shorts, and ``risk_management``
(stops, take-profit, trailing stop, position sizing). Conditions are written in the small, safe
expression language of ``engine.expr`` (parsed, never ``eval``-ed):

    sma(close, fast) crosses_above sma(close, slow)
    rsi(close, 14) < 30 and close > ema(close, 200)

A *rotation* template (momentum rotation across symbols) instead ranks several symbols by a
``score`` expression every ``rebalance_every`` bars and holds the ``top_n`` best, equally weighted.

Signals are decided on a bar's close from data up to and including that bar; the order they cause
fills on the next bar's open. ``engine.signals`` turns a template plus parameter values into
signal arrays; ``engine.signals.validate_template`` refuses a template that cannot run, naming the
offending field (``entry_conditions[1]``, ``parameters.fast.max_value`` ...).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ParamValue = int | float | str
"""A parameter's value: int and float parameters are numbers, a ``choice`` may be a string."""

Name = str


class TemplateError(ValueError):
    """A template (or parameter values) that cannot run. ``field`` names where, in the template's
    JSON shape: ``entry_conditions[1]``, ``parameters.fast.max_value``, ``indicators[0]``,
    ``params.fast`` (a parameter value given for a run)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterSpec(_Model):
    """One tunable parameter. ``int``/``float`` need ``min_value <= default <= max_value``;
    ``choice`` needs ``choices`` (and ``default`` among them). ``step`` is the grid spacing an
    optimizer's grid search uses (1 for ints when not given)."""

    name: Name = Field(min_length=1, max_length=40, pattern=r"^[a-z_][a-z0-9_]*$")
    type: Literal["int", "float", "choice"]
    min_value: float | None = None
    max_value: float | None = None
    choices: list[ParamValue] | None = Field(None, max_length=1000)
    default: ParamValue | None = None
    step: float | None = Field(None, gt=0)
    description: str = Field("", max_length=500)


SizingMethod = Literal["percent_equity", "fixed_quantity", "volatility_target"]


class PositionSizing(_Model):
    """How much to buy or sell short on an entry.

    - ``percent_equity``: ``value`` is the fraction of current equity to commit (1.0 = all in).
    - ``fixed_quantity``: ``value`` units of the instrument.
    - ``volatility_target``: a fraction of equity scaled so that the position's annualized
      volatility (over ``vol_lookback`` bars) is ``value`` (0.15 = 15%), capped at ``max_leverage``.
    """

    method: SizingMethod = "percent_equity"
    value: float | Name = 1.0
    vol_lookback: int = Field(20, ge=2, le=10_000)
    max_leverage: float = Field(1.0, gt=0, le=100)


class RiskManagement(_Model):
    """Exits and sizing. A number, or the name of a parameter (so an optimizer can tune it).

    ``stop_loss``/``take_profit``/``trailing_stop`` are fractions of the entry price (0.02 = 2%);
    they become resting stop / limit / trailing-stop orders once the entry fills.
    """

    stop_loss: float | Name | None = None
    take_profit: float | Name | None = None
    trailing_stop: float | Name | None = None
    position_sizing: PositionSizing = Field(default_factory=PositionSizing)


class Rotation(_Model):
    """Momentum rotation across ``symbols``: rank by ``score``, hold the ``top_n`` best."""

    score: str = Field(min_length=1, max_length=500, description="Expression, e.g. roc(close, lookback)")
    top_n: int | Name = 1
    rebalance_every: int | Name = 21
    min_score: float | None = Field(None, description="Hold cash instead of a symbol scoring below this")


class StrategyTemplate(_Model):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=2000)
    asset_class: str = Field("any", max_length=40)
    parameters: dict[Name, ParameterSpec] = Field(default_factory=dict, max_length=50)
    indicators: list[str] = Field(default_factory=list, max_length=50)
    entry_conditions: list[str] = Field(default_factory=list, max_length=20)
    exit_conditions: list[str] = Field(default_factory=list, max_length=20)
    short_entry_conditions: list[str] = Field(default_factory=list, max_length=20)
    short_exit_conditions: list[str] = Field(default_factory=list, max_length=20)
    risk_management: RiskManagement = Field(default_factory=RiskManagement)
    rotation: Rotation | None = None
    models: dict[Name, str] = Field(
        default_factory=dict,
        max_length=10,
        description="Model probability series by alias: alias -> an ML model's name (its serving "
        "version) or a version id. The alias reads as a series of P(up) in conditions, e.g. "
        "'p_up > 0.6'; NaN (condition false) where the model has no out-of-sample prediction",
    )

    @property
    def is_rotation(self) -> bool:
        return self.rotation is not None

    @property
    def has_stops(self) -> bool:
        rm = self.risk_management
        return rm.stop_loss is not None or rm.take_profit is not None or rm.trailing_stop is not None
