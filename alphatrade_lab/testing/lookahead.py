"""The leakage harness: :func:`assert_no_lookahead`: it checks that a function of
bars never lets data after a time t change an output known at or before t.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import numpy as np
import pandas as pd

from alphatrade_lab.data.resample import bar_length

__all__ = ["assert_no_lookahead", "perturb_after"]

Output: TypeAlias = pd.DataFrame | pd.Series


def perturb_after(bars: pd.DataFrame, cut: pd.Timestamp, seed: int = 0) -> pd.DataFrame:
    """Redraw every bar with timestamp after ``cut`` (still valid bars, different values).

    Open, close, high, low and volume each get an independent random change, so
    that no function of them (ratios, ranges, signs) survives unchanged.
    """
    rng = np.random.default_rng(seed)
    out = bars.copy()
    after = (out["timestamp"] > cut).to_numpy()
    m = int(after.sum())
    o = out["open"].to_numpy()[after] * np.exp(rng.normal(0.0, 0.03, m))
    c = out["close"].to_numpy()[after] * np.exp(rng.normal(0.0, 0.03, m))
    out.loc[after, "open"] = o
    out.loc[after, "close"] = c
    out.loc[after, "high"] = np.maximum(o, c) * np.exp(np.abs(rng.normal(0.0, 0.01, m)))
    out.loc[after, "low"] = np.minimum(o, c) * np.exp(-np.abs(rng.normal(0.0, 0.01, m)))
    out.loc[after, "volume"] = out["volume"].to_numpy()[after] * rng.uniform(0.2, 5.0, m)
    return out


def _keyed(output: Output) -> tuple[pd.DataFrame, pd.Series]:
    """The output as a frame indexed by a unique row key, and each row's timestamp."""
    frame = output.to_frame() if isinstance(output, pd.Series) else output
    if "timestamp" in frame.columns:
        keys = [c for c in ("symbol", "timestamp") if c in frame.columns]
        frame = frame.set_index(keys)
    index = frame.index
    if isinstance(index, pd.MultiIndex):
        levels = [i for i, name in enumerate(index.names) if name == "timestamp"]
        if not levels:
            levels = [i for i in range(index.nlevels)
                      if isinstance(index.levels[i], pd.DatetimeIndex)]
        if not levels:
            raise TypeError("cannot find the timestamp of the output rows: no 'timestamp' "
                            "column or index level")
        times = index.get_level_values(levels[0])
    elif isinstance(index, pd.DatetimeIndex):
        times = index
    else:
        raise TypeError("cannot find the timestamp of the output rows: return a frame with a "
                        "'timestamp' column, a DatetimeIndex or a 'timestamp' index level")
    if not index.is_unique:
        raise ValueError("the output's row keys (symbol, timestamp) are not unique")
    return frame, pd.Series(times, index=index)


def _first_difference(expected: pd.DataFrame, actual: pd.DataFrame, rtol: float,
                      atol: float) -> str | None:
    missing = ~expected.index.isin(actual.index)
    if missing.any():
        return f"row {expected.index[missing][0]!r} disappeared"
    actual = actual.loc[expected.index]
    for col in expected.columns:
        if col not in actual.columns:
            return f"column {col!r} disappeared"
        e, a = expected[col], actual[col]
        if pd.api.types.is_numeric_dtype(e.dtype) and pd.api.types.is_numeric_dtype(a.dtype):
            ev = e.to_numpy(np.float64, na_value=np.nan)
            av = a.to_numpy(np.float64, na_value=np.nan)
            same = np.isclose(ev, av, rtol=rtol, atol=atol, equal_nan=True) | (ev == av)
        else:
            same = ((e == a) | (e.isna() & a.isna())).to_numpy(bool)
        if not same.all():
            i = int(np.flatnonzero(~same)[0])
            return f"row {expected.index[i]!r}, column {col!r}: {e.iat[i]!r} became {a.iat[i]!r}"
    return None


def assert_no_lookahead(
    func: Callable[[pd.DataFrame], Output],
    bars: pd.DataFrame,
    *,
    known_at: Callable[[pd.Series], pd.Series] | None = None,
    n_cuts: int = 5,
    seed: int = 0,
    modes: tuple[str, ...] = ("perturb", "truncate"),
    rtol: float = 0.0,
    atol: float = 0.0,
) -> int:
    """Check that ``func(bars)`` never uses data from after the time its outputs are known.

    At ``n_cuts`` random cut times t (open times of bars in the middle of the data),
    the bars after t are redrawn (``"perturb"``) or removed (``"truncate"``), and
    every output row known by the close of bar t must be unchanged and present.

    Parameters
    ----------
    func
        Function of long-form bars returning a Series or DataFrame whose rows carry a
        timestamp: a ``timestamp`` column (keyed with ``symbol`` if present), a
        DatetimeIndex, or a MultiIndex with a ``timestamp`` (or datetime) level.
    bars
        Validated long-form bars.
    known_at
        Maps the output rows' timestamps to the time each row is known. The default
        treats the timestamp as a base bar's open time, known at its close
        (``timestamp + bar length``). For bars resampled to ``rule``, known at their
        close, pass ``lambda ts: ts + pd.Timedelta(rule)``.
    n_cuts, seed
        Number of cut times and the seed that draws them and the perturbations.
    modes
        ``"perturb"``, ``"truncate"`` or both.
    rtol, atol
        Tolerances of the comparison (exact by default).

    Returns
    -------
    int
        How many output rows were compared in all (never 0: a vacuous check fails).

    Raises
    ------
    AssertionError
        Naming the cut, the mode, the first changed row and column, and both values.

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> bars = atl.data.load_sample(["AAA"]).head(2000)
    >>> def past_return(b):
    ...     return b.set_index("timestamp")["close"].pct_change()
    >>> assert_no_lookahead(past_return, bars) > 0
    True
    >>> def next_return(b):
    ...     return b.set_index("timestamp")["close"].pct_change().shift(-1)
    >>> assert_no_lookahead(next_return, bars)
    Traceback (most recent call last):
    ...
    AssertionError: lookahead: ...
    """
    unknown = set(modes) - {"perturb", "truncate"}
    if unknown or not modes:
        raise ValueError(f"modes must be 'perturb' and/or 'truncate', not {modes!r}")
    base = bar_length(bars)
    full, times = _keyed(func(bars))
    known = known_at(times) if known_at is not None else times + base
    rng = np.random.default_rng(seed)
    stamps = np.sort(bars["timestamp"].unique())
    lo, hi = int(0.2 * len(stamps)), max(int(0.9 * len(stamps)), int(0.2 * len(stamps)) + 1)
    cuts = pd.DatetimeIndex(rng.choice(stamps[lo:hi], size=n_cuts, replace=False))
    compared = 0
    for k, cut in enumerate(cuts.sort_values()):
        visible = (known <= cut + base).to_numpy()
        expected = full.loc[visible]
        for mode in modes:
            changed = (perturb_after(bars, cut, seed=seed + k) if mode == "perturb"
                       else bars.loc[bars["timestamp"] <= cut].reset_index(drop=True))
            actual, _ = _keyed(func(changed))
            problem = _first_difference(expected, actual, rtol, atol)
            if problem is not None:
                done = "redrawn" if mode == "perturb" else "removed"
                raise AssertionError(f"lookahead: with the bars after {cut} {done}, {problem}")
        compared += len(expected)
    if compared == 0:
        raise AssertionError("no output row was known before any cut: the check was vacuous")
    return compared
