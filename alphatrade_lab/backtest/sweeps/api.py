"""Parameter sweeps: many backtests of one strategy, fused in numba, locally or on Dask."""

from __future__ import annotations

import itertools
import math
import signal
import threading
import warnings
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from typing import Any, TypeAlias

import numba
import numpy as np
import pandas as pd

from alphatrade_lab.backtest import kernels as backtest_nb
from alphatrade_lab.backtest._inputs import as_prices, cost_fraction, parse_direction, per_column
from alphatrade_lab.backtest.metrics import STAT_NAMES, stats_from_state, time_basis
from alphatrade_lab.backtest.simulate import from_signals
from alphatrade_lab.backtest.sweeps import ma_kernels
from alphatrade_lab.backtest.sweeps.stats import deflated_sharpe_ratio, skew_kurtosis
from alphatrade_lab.backtest.sweeps.strategies import (
    MA_CROSS,
    STRATEGIES,
    Strategy,
    warn_long_windows,
)
from alphatrade_lab.errors import DataError

__all__ = ["DEFAULT_METRICS", "run_chunk", "shared_arrays", "split_sample", "sweep",
           "sweep_ma_cross"]

DEFAULT_METRICS: tuple[str, ...] = ("total_return", "sharpe", "max_drawdown", "trade_count",
                                    "win_rate")
# Bar-combinations per chunk: about a tenth of a second of work (MA pairs on two cores),
# so that the progress bar moves and Ctrl-C is answered quickly, while chunks stay large
# enough for prange and for the MA kernel's groups of pairs.
_CHUNK_WORK = 5e7
# Largest table of moving averages (columns × windows × bars) a chunk builds: 128 MB;
# beyond it, MA sweeps take the generic path (signals per task, O(bars) per thread).
_MA_TABLE_CELLS = 2**24
#: What ``ma_kernels.ma_prepare_nb`` returns (columns, table, return sums, next gaps), then
#: the windows of the table.
MATables: TypeAlias = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def _product(grid: Mapping[str, Iterable]) -> pd.DataFrame:
    return pd.DataFrame(list(itertools.product(*(list(v) for v in grid.values()))),
                        columns=list(grid))


def _listed(strategy: Strategy, grid: Any) -> pd.DataFrame:
    """A grid given as a list: of combinations (tuples in ``strategy.params`` order, or
    bare numbers for a one-parameter strategy), or of ``(name, values)`` pairs."""
    names = list(strategy.params)
    accepted = (f"a dict of values per parameter ({{{', '.join(f'{p!r}: [...]' for p in names)}}}"
                f", swept as their product), a list of combinations, one tuple "
                f"({', '.join(names)}) each, or a DataFrame with columns {names}")
    if isinstance(grid, str | bytes) or not isinstance(grid, Iterable):
        raise DataError(f"sweep grid for {strategy.name!r}: got {type(grid).__name__} "
                        f"{grid!r}; give {accepted}")
    items = list(grid)
    if items and all(isinstance(i, tuple | list) and len(i) == 2 and isinstance(i[0], str)
                     for i in items):
        return _product(dict(items))  # list(grid.items())
    if len(names) == 1 and all(_is_number(i) for i in items):
        items = [(i,) for i in items]
    for pos, item in enumerate(items):
        if not (isinstance(item, tuple | list | np.ndarray) and len(item) == len(names)
                and all(_is_number(x) for x in item)):
            raise DataError(f"sweep grid for {strategy.name!r}, item {pos}: {item!r} is not a "
                            f"combination of {len(names)} numbers ({', '.join(names)}); give "
                            f"{accepted}")
    return pd.DataFrame([tuple(i) for i in items], columns=names)


def _combinations(strategy: Strategy, grid: Mapping[str, Iterable] | pd.DataFrame) -> pd.DataFrame:
    if isinstance(grid, pd.DataFrame):
        combos = grid.reset_index(drop=True)
    elif isinstance(grid, Mapping):
        combos = _product(grid)
    else:
        combos = _listed(strategy, grid)
    missing = [p for p in strategy.params if p not in combos.columns]
    extra = [c for c in combos.columns if c not in strategy.params]
    if missing or extra:
        raise ValueError(f"grid for {strategy.name!r} must give exactly {list(strategy.params)}; "
                         f"missing {missing}, unknown {extra}")
    combos = combos[list(strategy.params)]
    if strategy.valid is not None:
        combos = combos.loc[_valid_rows(strategy.valid, combos)].reset_index(drop=True)
    if combos.empty:
        raise ValueError(f"the grid for {strategy.name!r} has no valid combination")
    if combos.isna().any().any():
        raise ValueError("the grid holds NaN parameters")
    return combos


def _valid_rows(valid, combos: pd.DataFrame) -> np.ndarray:
    """``valid`` on every combination: once on whole columns when it works elementwise
    (``p["fast"] < p["slow"]``), else once per combination."""
    try:
        keep = np.asarray(valid({c: combos[c].to_numpy() for c in combos.columns}))
    except (TypeError, ValueError):  # written for one combination at a time
        keep = None
    if keep is None or keep.shape != (len(combos),):
        keep = np.array([bool(valid(row)) for row in combos.to_dict("records")])
    return keep.astype(bool)


def _position(x: Any, index: pd.Index, name: str, default: int) -> int:
    if x is None:
        return default
    if isinstance(x, int | np.integer):
        pos = int(x)
    else:
        pos = int(index.searchsorted(pd.Timestamp(x)))
    if not 0 <= pos <= len(index):
        raise ValueError(f"{name}={x!r} is outside the {len(index)} bars")
    return pos


def shared_arrays(strategy: str | Strategy, close: np.ndarray, params: np.ndarray,
                  end: int) -> MATables | None:
    """Arrays that every chunk of a sweep can share, computed once: for MA crossovers the
    moving averages of every window in ``params`` (see ``ma_kernels.ma_prepare_nb``), if
    they stay under 128 MB; ``None`` otherwise and for other strategies."""
    strat = STRATEGIES[strategy] if isinstance(strategy, str) else strategy
    if strat is not MA_CROSS:
        return None
    windows = np.unique(params.astype(np.int64))
    # The table, plus 7 numbers per bar and column (return sums and next gap).
    if close.shape[1] * (len(windows) + 7) * end > _MA_TABLE_CELLS:
        return None
    cols, table, sums, gaps = ma_kernels.ma_prepare_nb(close, windows, end)
    return cols, table, sums, gaps, windows


def run_chunk(strategy: str | Strategy, close: np.ndarray, params: np.ndarray, start: int,
              end: int, opts: tuple, shared: MATables | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Final column and group state of one chunk of combinations (the unit of parallel work).

    ``strategy`` is a built-in name or a :class:`Strategy`; ``opts`` is ``(direction,
    fees, fixed_fees, slippage, frac, init_cash)``; ``shared`` what
    :func:`shared_arrays` returned for the whole grid (computed for the chunk if
    ``None``). Rows are combination-major: combination ``p``, column ``j`` in row
    ``p * k + j``.
    """
    strat = STRATEGIES[strategy] if isinstance(strategy, str) else strategy
    if strat is MA_CROSS:
        if shared is None:
            shared = shared_arrays(strat, close, params, end)
        if shared is not None:
            return ma_kernels.sweep_ma_pairs_nb(*shared, params[:, 0].astype(np.int64),
                                        params[:, 1].astype(np.int64), start, end, *opts)
        # Too many bars for a table of every window: each task computes its own signals.
    return strat.kernel(close, params, start, end, *opts)


def _chunks(m: int, n_bars: int, k: int, chunk_size: int | None) -> list[tuple[int, int]]:
    if chunk_size is None:
        chunk_size = max(2 * numba.get_num_threads(), int(_CHUNK_WORK / max(n_bars * k, 1)))
    chunk_size = max(1, min(int(chunk_size), m))
    return [(a, min(a + chunk_size, m)) for a in range(0, m, chunk_size)]


@contextmanager
def _ctrl_c():
    """Turn Ctrl-C into a flag checked between chunks.

    A KeyboardInterrupt raised inside a running numba kernel surfaces as a
    SystemError, so the sweep takes SIGINT itself while it runs (main thread only)
    and stops after the running chunk.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


_Chunks: TypeAlias = list[tuple[int, int]]
_ChunkState: TypeAlias = tuple[np.ndarray, np.ndarray]


def _run_local(key: str | Strategy, close: np.ndarray, params: np.ndarray, start: int,
               end: int, opts: tuple, chunks: _Chunks, bar: Any) -> list[_ChunkState]:
    done = []
    shared = shared_arrays(key, close, params, end)
    with _ctrl_c() as stop:
        for a, b in chunks:
            if stop.is_set():
                break
            done.append(run_chunk(key, close, params[a:b], start, end, opts, shared))
            bar.update(b - a)
    return done


def _run_dask(client: Any, key: str | Strategy, close: np.ndarray, params: np.ndarray,
              start: int, end: int, opts: tuple, chunks: _Chunks, bar: Any) -> list[_ChunkState]:
    try:
        from distributed import as_completed
    except ImportError as exc:
        msg = 'backend="dask" needs Dask: pip install "alphatrade-lab[cluster]"'
        raise ImportError(msg) from exc

    # A unique key (hash=False): a hashed key equal to that of a sweep just released on the
    # same prices races with its release on the scheduler (dask/distributed#8576) and hangs
    # or loses the data. No broadcast: workers fetch the prices when their first chunk needs
    # them, which needs no replicate() (fragile while workers come and go).
    close_f = client.scatter(close, hash=False)
    futures = [client.submit(run_chunk, key, close_f, params[a:b], start, end, opts, pure=False)
               for a, b in chunks]
    position = {f.key: i for i, f in enumerate(futures)}
    results: dict[int, _ChunkState] = {}
    with _ctrl_c() as stop:
        for fut in as_completed(futures):
            i = position[fut.key]
            results[i] = fut.result()
            bar.update(chunks[i][1] - chunks[i][0])
            if stop.is_set():
                client.cancel(futures)
                break
    # Keep the finished prefix, so that the result is the first combinations in order.
    done = []
    for i in range(len(chunks)):
        if i not in results:
            break
        done.append(results[i])
    return done


def _per_bar_sharpe(g: np.ndarray) -> np.ndarray:
    n = g[:, backtest_nb.G_NBARS]
    with np.errstate(divide="ignore", invalid="ignore"):
        s1, s2 = g[:, backtest_nb.G_SUM_R], g[:, backtest_nb.G_SUM_R2]
        mean = s1 / n
        var = np.maximum(s2 - s1 * mean, 0.0) / (n - 1)
        return np.where((n > 1) & (var > 0), mean / np.sqrt(var), np.nan)


def _check_order(name: str, close: Any) -> None:
    """The prices come first; a strategy there is the argument order of old releases."""
    if isinstance(close, str | Strategy):
        raise TypeError(f"{name}(close, strategy, grid, ...): the prices come first (as in "
                        f"from_signals and sweep_ma_cross), got the strategy {close!r} there")


def sweep(
    close: Any,
    strategy: str | Strategy,
    grid: Mapping[str, Iterable] | pd.DataFrame,
    *,
    fees: float = 0.0,
    fixed_fees: float = 0.0,
    slippage: float = 0.0,
    size: float = 1.0,
    direction: str = "longonly",
    init_cash: float = 100.0,
    freq: Any = None,
    periods_per_year: float | None = None,
    year_freq: Any = None,
    calendar: str | None = None,
    metrics: Iterable[str] = DEFAULT_METRICS,
    start: Any = None,
    end: Any = None,
    backend: str = "local",
    client: Any = None,
    chunk_size: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Backtest every parameter combination of a strategy on every column of ``close``.

    Each combination's signals and portfolio run fused in one numba task (``prange``
    over combinations and columns), with the same order logic and statistics as
    :func:`~alphatrade_lab.backtest.from_signals` (fills at the close, no stops): the
    metrics equal ``from_signals`` on the strategy's signals. Memory holds the
    prices and a few numbers per combination, never bars × combinations.

    Parameters
    ----------
    close
        Close prices: Series, DataFrame (timestamp × symbol) or array. They come first,
        as in :func:`~alphatrade_lab.backtest.from_signals` and :func:`sweep_ma_cross`.
    strategy
        A built-in name (``"ma_cross"``, ``"rsi_reversal"``, ``"bollinger_reversion"``,
        ``"donchian_breakout"``) or a :class:`Strategy` wrapping your own signal kernel.
    grid
        Values of each parameter (``{"fast": [5, 10], "slow": [20, 40]}``: their
        product is swept, less the combinations the strategy calls invalid), or the
        combinations themselves: a list of tuples in the strategy's parameter order
        (``[(5, 20), (10, 40)]``) or a frame with one row per combination. A window
        parameter not shorter than the data warns (``UserWarning``): it cannot signal.
    fees, fixed_fees, slippage, size, direction, init_cash, freq
        As in :func:`~alphatrade_lab.backtest.from_signals` (scalars).
    periods_per_year, year_freq, calendar
        How to annualise, as in :meth:`~alphatrade_lab.backtest.Portfolio.stats`
        (default: from the calendar of the traded bars).
    metrics
        Columns of the result, any of :data:`~alphatrade_lab.backtest.STAT_NAMES`.
    start, end
        Trade and measure only bars ``start:end`` (positions or timestamps); earlier
        bars warm up the indicators. Default: all bars.
    backend, client
        ``"local"`` (numba threads) or ``"dask"`` with a ``distributed.Client``:
        the grid is split into chunks that the workers run with the same kernel.
    chunk_size
        Combinations per chunk (default: about 5e7 bar-combinations).
    progress
        Show a progress bar (tqdm). Ctrl-C stops after the running chunk and keeps
        what finished (``result.attrs["interrupted"]``).

    Returns
    -------
    pandas.DataFrame
        Indexed by the parameters (and ``symbol`` unless ``close`` is a Series), one
        column per metric. ``attrs`` holds ``strategy``, ``n_trials``, ``best`` (the
        index of the highest Sharpe ratio), ``deflated_sharpe`` (its deflated Sharpe
        ratio, see :func:`~alphatrade_lab.backtest.sweeps.stats.deflated_sharpe_ratio`,
        with every row a trial), ``interrupted`` and ``completed`` (rows finished).

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> close = atl.data.to_wide(atl.data.resample(atl.data.load_sample(), "1h"), "close")
    >>> res = sweep(close, "donchian_breakout", {"window": [24, 48, 96]}, fees=0.001,
    ...             progress=False)
    >>> res.shape
    (15, 5)
    >>> 0 <= res.attrs["deflated_sharpe"] <= 1
    True
    """
    _check_order("sweep", close)
    strat = STRATEGIES.get(strategy) if isinstance(strategy, str) else strategy
    if strat is None:
        raise ValueError(f"unknown strategy {strategy!r}; built-ins: {sorted(STRATEGIES)}")
    metrics = list(metrics)
    unknown = [m for m in metrics if m not in STAT_NAMES]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(STAT_NAMES)}")
    if backend not in ("local", "dask"):
        raise ValueError(f"backend must be 'local' or 'dask', not {backend!r}")
    if backend == "dask" and client is None:
        raise ValueError("backend='dask' needs client=distributed.Client(...)")
    frame = as_prices(close, "close")
    values = np.ascontiguousarray(frame.values)
    n, k = values.shape
    combos = _combinations(strat, grid)
    params = combos.to_numpy(dtype=np.float64)
    lo = _position(start, frame.index, "start", 0)
    hi = _position(end, frame.index, "end", n)
    if hi - lo < 2:
        raise ValueError(f"start/end leave {hi - lo} bars to trade; need at least 2")
    warn_long_windows(strat, combos, hi)
    basis = time_basis(frame.index[lo:hi], freq=freq, periods_per_year=periods_per_year,
                       year_freq=year_freq, calendar=calendar)
    # fees and slippage are checked (and warned about) as from_signals checks them
    opts = (parse_direction(direction), float(cost_fraction(fees, "fees", 1, stacklevel=3)[0]),
            float(per_column(fixed_fees, "fixed_fees", 1, high=np.inf)[0]),
            float(cost_fraction(slippage, "slippage", 1, stacklevel=3)[0]),
            float(per_column(size, "size", 1, high=1.0)[0]), float(init_cash))
    if not opts[4] > 0:
        raise ValueError("size must be in (0, 1]")
    if not init_cash > 0:
        raise ValueError(f"init_cash must be positive, got {init_cash}")
    key = strat.name if STRATEGIES.get(strat.name) is strat else strat
    chunks = _chunks(len(combos), hi, k, chunk_size)
    from tqdm.auto import tqdm  # lazy: tqdm.auto brings in asyncio (0.15 s)

    with tqdm(total=len(combos), unit="combo", disable=not progress,
              desc=f"sweep {strat.name}") as bar:
        if backend == "local":
            done = _run_local(key, values, params, lo, hi, opts, chunks, bar)
        else:
            done = _run_dask(client, key, values, params, lo, hi, opts, chunks, bar)
    n_done = sum(len(c) for c, _ in done) // k
    interrupted = n_done < len(combos)
    if interrupted:
        warnings.warn(f"sweep interrupted: kept the {n_done} of {len(combos)} combinations "
                      "that finished", RuntimeWarning, stacklevel=2)
    if n_done == 0:
        raise KeyboardInterrupt("sweep interrupted before any combination finished")
    cstate = np.concatenate([c for c, _ in done])
    gstate = np.concatenate([g for _, g in done])
    rows = np.arange(len(gstate))
    table = stats_from_state(cstate, gstate, np.arange(len(gstate) + 1), pd.Index(rows),
                             basis)[metrics]
    done_combos = combos.iloc[:n_done]
    if frame.kind == "series":
        table.index = pd.MultiIndex.from_frame(done_combos) if len(strat.params) > 1 else \
            pd.Index(done_combos.iloc[:, 0], name=strat.params[0])
    else:
        idx = done_combos.loc[done_combos.index.repeat(k)].reset_index(drop=True)
        idx["symbol"] = np.tile(np.asarray(frame.columns, dtype=object), n_done)
        table.index = pd.MultiIndex.from_frame(idx)
    per_bar = _per_bar_sharpe(gstate)
    table.attrs.update(strategy=strat.name, n_trials=int(len(gstate)), interrupted=interrupted,
                       completed=int(n_done), best=None, deflated_sharpe=float("nan"))
    if np.isfinite(per_bar).any():
        b = int(np.nanargmax(per_bar))
        p, j = divmod(b, k)
        entries, exits = strat.signals(values[:hi, j], params[p])
        pf = from_signals(values[lo:hi, j], entries[lo:, 0], exits[lo:, 0], fees=opts[1],
                          fixed_fees=opts[2], slippage=opts[3], size=opts[4], init_cash=init_cash,
                          direction=direction)
        r = pf.returns.to_numpy()
        best = table.index[b]
        table.attrs["best"] = tuple(x.item() if isinstance(x, np.generic) else x for x in best) \
            if isinstance(best, tuple) else (best.item() if isinstance(best, np.generic) else best)
        table.attrs["deflated_sharpe"] = deflated_sharpe_ratio(
            per_bar[b], per_bar, len(r), *skew_kurtosis(r))
    return table


def sweep_ma_cross(close: Any, fast: Iterable[int], slow: Iterable[int], **kwargs) -> pd.DataFrame:
    """Sweep simple moving-average crossovers over every ``fast < slow`` pair.

    Enter long when the fast SMA crosses above the slow one and exit (or reverse, with
    ``direction="both"``) when it crosses below, crossing as
    :func:`alphatrade_lab.signals.crossed_above` defines it. Moving averages come from
    prefix sums of the close that all pairs share, computed as vectorbt's ``MA`` does,
    and each pair's signals and portfolio are simulated in a single pass. See
    :func:`sweep` for the options and the result.

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> close = atl.data.to_wide(atl.data.resample(atl.data.load_sample(["AAA"]), "1h"), "close")
    >>> res = sweep_ma_cross(close["AAA"], fast=range(5, 50, 5), slow=range(20, 200, 20),
    ...                      fees=0.001, progress=False)
    >>> res.index.names, len(res)
    (FrozenList(['fast', 'slow']), 73)
    """
    fast = [int(f) for f in fast]
    slow = [int(s) for s in slow]
    if min(fast + slow) < 1:
        raise ValueError("moving-average windows must be at least 1")
    return sweep(close, MA_CROSS, {"fast": fast, "slow": slow}, **kwargs)


def split_sample(close: Any, strategy: str | Strategy,
                 grid: Mapping[str, Iterable] | pd.DataFrame, *, split: float | Any = 0.7,
                 metric: str = "sharpe", top: int = 10, **kwargs) -> pd.DataFrame:
    """In-sample best combinations and how they did out of sample.

    Sweeps the bars before ``split`` (in sample) and the bars from ``split`` on (out
    of sample; indicators warm up on the in-sample bars, nothing later is used), and
    returns the ``top`` in-sample combinations by ``metric`` with both samples'
    metrics side by side. ``attrs["rank_correlation"]`` is the Spearman correlation
    of the metric in and out of sample over all combinations: near 0, the in-sample
    ranking is noise. ``attrs["deflated_sharpe"]`` is that of the in-sample best.

    Parameters
    ----------
    close, strategy, grid
        As in :func:`sweep`.
    split
        Fraction of the bars in sample (in (0, 1)), or the first out-of-sample
        timestamp. Other numbers raise :class:`~alphatrade_lab.errors.DataError`
        (``split=70`` would otherwise be read as 70 bars).
    metric, top
        Ranking metric (larger is better) and number of rows.
    kwargs
        Passed to :func:`sweep`.

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> close = atl.data.to_wide(atl.data.resample(atl.data.load_sample(["AAA"]), "1h"), "close")
    >>> table = split_sample(close, "ma_cross", {"fast": [6, 12, 24], "slow": [48, 96]},
    ...                      top=3, progress=False)
    >>> list(table.columns[:2])
    [('in_sample', 'total_return'), ('in_sample', 'sharpe')]
    """
    _check_order("split_sample", close)
    frame = as_prices(close, "close")
    n = frame.values.shape[0]
    if isinstance(split, float) and 0 < split < 1:
        cut = int(math.floor(split * n))
    elif isinstance(split, int | float | np.integer | np.floating) and not isinstance(split, bool):
        raise DataError(
            f"split={split!r}: give the in-sample share as a fraction in (0, 1) "
            f"(split=0.7 for 70% of the {n} bars) or the first out-of-sample timestamp "
            f"(split=close.index[{int(split) if float(split).is_integer() else 0}]); "
            "a bare number is not read as a bar count")
    else:
        cut = _position(split, frame.index, "split", n)
    metrics = list(kwargs.pop("metrics", DEFAULT_METRICS))
    if metric not in metrics:
        metrics.append(metric)
    is_ = sweep(close, strategy, grid, end=cut, metrics=metrics, **kwargs)
    oos = sweep(close, strategy, grid, start=cut, metrics=metrics, **kwargs)
    both = pd.concat({"in_sample": is_, "out_of_sample": oos}, axis=1)
    ranked = both.sort_values(("in_sample", metric), ascending=False, na_position="last")
    result = ranked.head(top).copy()
    from scipy.stats import spearmanr  # lazy: scipy.stats costs 0.4 s to import

    rho = spearmanr(both[("in_sample", metric)], both[("out_of_sample", metric)],
                    nan_policy="omit").statistic
    result.attrs.update(rank_correlation=float(rho), split=cut,
                        deflated_sharpe=is_.attrs["deflated_sharpe"], best=is_.attrs["best"])
    return result
