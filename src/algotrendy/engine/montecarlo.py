"""Monte Carlo robustness of a backtest: resample its trades or its bars, replay, and look at
the spread of outcomes (final equity, maximum drawdown, ruin).

Two resamplers, both seeded (``numpy.random.default_rng(seed)``) and vectorized over the
simulations (they run in chunks of about two million cells to bound memory, a loop over
chunks, not over simulations):

* :func:`trade_bootstrap` draws ``n_trades`` trade returns with replacement (i.i.d.) and
  compounds them: each trade return is a fraction of the equity at the time (equity is
  multiplied by ``1 + r``, floored at 0: an account cannot owe more than it had). Trade order
  and clustering are destroyed; use it to see the luck in the sequence of the same trades.
  ``Trades.ret`` is a return on the trade's notional; :func:`trade_returns_on_equity` gives
  ``pnl`` over the equity before entry, which is what compounding on equity assumes.
* :func:`block_bootstrap` is a circular moving-block bootstrap (Politis & Romano 1992) of
  per-bar returns: fixed-length blocks of consecutive bars starting at uniform random bars,
  wrapping from the last bar to the first, concatenated and cut to ``horizon`` bars. Blocks keep
  the short-range dependence (volatility clustering) that an i.i.d. bar bootstrap would lose;
  the default block size is ``round(n ** (1/3))`` (the usual rate for the block length).

Ruin is equity at or below ``ruin_threshold * initial_capital`` at any point of a path (0.5 =
losing half); a loss is a final equity below the initial capital. Maximum drawdowns are
fractions ``<= 0`` (as in ``engine.metrics``), so "drawdown at confidence" is the deep tail:
the ``(1 - confidence)`` quantile, like the final equity at confidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from algotrendy.core.market import F64, I64
from algotrendy.engine.result import RunResult

MAX_SIMULATIONS = 1_000_000
MAX_CELLS = 200_000_000
"""Upper bound on ``n_simulations * horizon`` (about a minute of work)."""
_CHUNK_CELLS = 2_000_000
BASE_PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)

Sampler = Callable[[np.random.Generator, int], F64]


@dataclass(frozen=True, slots=True)
class Histogram:
    counts: list[int]
    edges: list[float]
    """``len(counts) + 1`` bin edges."""


@dataclass(frozen=True, slots=True)
class Distribution:
    """Summary of one simulated quantity; ``percentiles`` keys are ``"p5"``, ``"p2.5"`` ..."""

    mean: float
    std: float
    min: float
    max: float
    percentiles: dict[str, float]
    histogram: Histogram


@dataclass(frozen=True, slots=True)
class MonteCarloResult:
    method: str
    """``"trade_bootstrap"`` or ``"block_bootstrap"``."""
    n_simulations: int
    horizon: int
    """Trades (trade bootstrap) or bars (block bootstrap) per simulated path."""
    block_size: int | None
    seed: int | None
    confidence: float
    initial_capital: float
    ruin_threshold: float
    final_equity: Distribution
    max_drawdown: Distribution
    final_equity_at_confidence: float
    """The ``(1 - confidence)`` quantile of final equity (the 5th percentile at 95%)."""
    expected_max_drawdown: float
    drawdown_at_confidence: float
    """The ``(1 - confidence)`` quantile of the maximum drawdown (deeper than all but 5% at 95%)."""
    probability_of_ruin: float
    probability_of_loss: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable dict (floats, ints, lists, dicts)."""
        return asdict(self)


def _percentile_levels(confidence: float) -> list[float]:
    lo = round(100.0 * (1.0 - confidence), 6)
    hi = round(100.0 * confidence, 6)
    return sorted({*BASE_PERCENTILES, lo, hi})


def _key(q: float) -> str:
    return f"p{q:g}"


def _distribution(x: F64, levels: list[float], bins: int) -> Distribution:
    pct = np.percentile(x, levels)
    lo, hi = float(np.min(x)), float(np.max(x))
    scale = max(abs(lo), abs(hi), 1.0)
    if hi - lo < scale * 1e-9:  # (nearly) one value: a narrow window around it
        lo, hi = lo - scale * 1e-6, hi + scale * 1e-6
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    return Distribution(
        mean=float(np.mean(x)),
        std=float(np.std(x)),
        min=float(np.min(x)),
        max=float(np.max(x)),
        percentiles={_key(q): float(v) for q, v in zip(levels, pct, strict=True)},
        histogram=Histogram([int(c) for c in counts], [float(v) for v in edges]),
    )


def _check_common(
    *,
    initial_capital: float,
    n_simulations: int,
    horizon: int,
    horizon_name: str,
    seed: int | None,
    confidence: float,
    ruin_threshold: float,
    histogram_bins: int,
) -> None:
    if not (math.isfinite(initial_capital) and initial_capital > 0.0):
        raise ValueError(f"initial_capital must be a positive number, got {initial_capital}")
    if isinstance(n_simulations, bool) or not isinstance(n_simulations, int | np.integer):
        raise ValueError(f"n_simulations must be an integer, got {n_simulations!r}")
    if not 0 < n_simulations <= MAX_SIMULATIONS:
        raise ValueError(f"n_simulations must be in [1, {MAX_SIMULATIONS}], got {n_simulations}")
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"{horizon_name} must be a positive integer, got {horizon!r}")
    if n_simulations * horizon > MAX_CELLS:
        raise ValueError(
            f"n_simulations * {horizon_name} = {n_simulations * horizon} exceeds {MAX_CELLS}; "
            "use fewer simulations or a shorter horizon"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if not 0.0 <= ruin_threshold < 1.0:
        raise ValueError(f"ruin_threshold must be in [0, 1), got {ruin_threshold}")
    if not 1 <= histogram_bins <= 1000:
        raise ValueError(f"histogram_bins must be in [1, 1000], got {histogram_bins}")


def _clean_returns(values: F64, name: str) -> F64:
    r = np.asarray(values, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {r.shape}")
    if len(r) == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return r


def _simulate(
    sample: Sampler,
    *,
    method: str,
    n_simulations: int,
    horizon: int,
    block_size: int | None,
    seed: int | None,
    confidence: float,
    initial_capital: float,
    ruin_threshold: float,
    histogram_bins: int,
) -> MonteCarloResult:
    rng = np.random.default_rng(seed)
    final = np.empty(n_simulations)
    mdd = np.empty(n_simulations)
    ruined = np.empty(n_simulations, dtype=np.bool_)
    rows = max(1, _CHUNK_CELLS // horizon)
    for lo in range(0, n_simulations, rows):
        hi = min(n_simulations, lo + rows)
        r = sample(rng, hi - lo)
        growth = np.cumprod(np.maximum(1.0 + r, 0.0), axis=1)
        peak = np.maximum(np.maximum.accumulate(growth, axis=1), 1.0)
        final[lo:hi] = growth[:, -1]
        mdd[lo:hi] = np.minimum(np.min(growth / peak, axis=1) - 1.0, 0.0)
        ruined[lo:hi] = np.min(growth, axis=1) <= ruin_threshold
    final *= initial_capital
    levels = _percentile_levels(confidence)
    tail = round(100.0 * (1.0 - confidence), 6)
    return MonteCarloResult(
        method=method,
        n_simulations=int(n_simulations),
        horizon=int(horizon),
        block_size=block_size,
        seed=None if seed is None else int(seed),
        confidence=float(confidence),
        initial_capital=float(initial_capital),
        ruin_threshold=float(ruin_threshold),
        final_equity=_distribution(final, levels, histogram_bins),
        max_drawdown=_distribution(mdd, levels, histogram_bins),
        final_equity_at_confidence=float(np.percentile(final, tail)),
        expected_max_drawdown=float(np.mean(mdd)),
        drawdown_at_confidence=float(np.percentile(mdd, tail)),
        probability_of_ruin=float(np.mean(ruined)),
        probability_of_loss=float(np.mean(final < initial_capital)),
    )


def trade_bootstrap(
    trade_returns: F64,
    *,
    initial_capital: float = 10_000.0,
    n_simulations: int = 10_000,
    n_trades: int | None = None,
    seed: int | None = None,
    confidence: float = 0.95,
    ruin_threshold: float = 0.5,
    histogram_bins: int = 30,
) -> MonteCarloResult:
    """Resample ``trade_returns`` (fractions of equity) with replacement into ``n_simulations``
    paths of ``n_trades`` trades (default: as many as given) and summarize the outcomes."""
    tr = _clean_returns(trade_returns, "trade_returns")
    horizon = len(tr) if n_trades is None else n_trades
    _check_common(
        initial_capital=initial_capital,
        n_simulations=n_simulations,
        horizon=horizon,
        horizon_name="n_trades",
        seed=seed,
        confidence=confidence,
        ruin_threshold=ruin_threshold,
        histogram_bins=histogram_bins,
    )

    def sample(rng: np.random.Generator, rows: int) -> F64:
        out: F64 = tr[rng.integers(0, len(tr), size=(rows, horizon))]
        return out

    return _simulate(
        sample,
        method="trade_bootstrap",
        n_simulations=n_simulations,
        horizon=horizon,
        block_size=None,
        seed=seed,
        confidence=confidence,
        initial_capital=initial_capital,
        ruin_threshold=ruin_threshold,
        histogram_bins=histogram_bins,
    )


def block_bootstrap(
    bar_returns: F64,
    *,
    block_size: int | None = None,
    n_simulations: int = 10_000,
    horizon: int | None = None,
    seed: int | None = None,
    confidence: float = 0.95,
    initial_capital: float = 10_000.0,
    ruin_threshold: float = 0.5,
    histogram_bins: int = 30,
) -> MonteCarloResult:
    """Circular moving-block bootstrap of per-bar returns into ``n_simulations`` paths of
    ``horizon`` bars (default: as many as given); ``block_size`` defaults to ``round(n ** (1/3))``."""
    br = _clean_returns(bar_returns, "bar_returns")
    n = len(br)
    size = max(1, round(n ** (1.0 / 3.0))) if block_size is None else block_size
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not 1 <= size <= n:
        raise ValueError(f"block_size must be an integer in [1, {n}] (the number of returns), got {size!r}")
    steps = n if horizon is None else horizon
    _check_common(
        initial_capital=initial_capital,
        n_simulations=n_simulations,
        horizon=steps,
        horizon_name="horizon",
        seed=seed,
        confidence=confidence,
        ruin_threshold=ruin_threshold,
        histogram_bins=histogram_bins,
    )
    n_blocks = -(-steps // size)
    offsets = np.arange(size)

    def sample(rng: np.random.Generator, rows: int) -> F64:
        starts = rng.integers(0, n, size=(rows, n_blocks))
        idx = (starts[:, :, None] + offsets) % n
        out: F64 = br[idx.reshape(rows, n_blocks * size)[:, :steps]]
        return out

    return _simulate(
        sample,
        method="block_bootstrap",
        n_simulations=n_simulations,
        horizon=steps,
        block_size=int(size),
        seed=seed,
        confidence=confidence,
        initial_capital=initial_capital,
        ruin_threshold=ruin_threshold,
        histogram_bins=histogram_bins,
    )


def trade_returns_on_equity(result: RunResult) -> F64:
    """Each trade's ``pnl`` divided by the account equity just before its entry bar (the
    initial capital for a trade entered on the first bar): the fraction of equity a trade won
    or lost, the input :func:`trade_bootstrap` compounds. Overlapping trades (several symbols)
    each count against the whole equity."""
    entry: I64 = np.asarray(result.trades.entry_index, dtype=np.int64)
    pnl = np.asarray(result.trades.pnl, dtype=np.float64)
    equity = np.asarray(result.equity, dtype=np.float64)
    before = np.concatenate([[float(result.initial_capital)], equity])[entry]
    out = np.zeros_like(pnl)
    np.divide(pnl, before, out=out, where=before > 0.0)
    return out
