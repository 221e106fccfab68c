"""Crossovers of labelled series: validate, call the kernels, label the result."""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from alphatrade_lab.data.schema import is_real_dtype
from alphatrade_lab.errors import DataError
from alphatrade_lab.signals import kernels as nb

__all__ = ["crossed_above", "crossed_below"]

Signal: TypeAlias = pd.Series | pd.DataFrame | np.ndarray


def _values(x: Any, name: str, where: str) -> np.ndarray:
    """``x`` as float64, refusing what is not real numbers."""
    if isinstance(x, pd.DataFrame):
        if {"timestamp", "symbol"} <= set(x.columns):
            raise DataError(f"{where}: {name} is long-form bars (timestamp, symbol columns); "
                            f"pass one value per timestamp and symbol, e.g. "
                            f"atl.data.to_wide(bars, 'close')")
        bad = [c for c, t in x.dtypes.items() if not is_real_dtype(t)]
        if bad:
            raise DataError(f"{where}: {name} column {bad[0]!r} has dtype {x.dtypes[bad[0]]}; "
                            "pass real numbers")
        return x.to_numpy(dtype=np.float64, na_value=np.nan)
    if isinstance(x, pd.Series):
        if not is_real_dtype(x.dtype):
            raise DataError(f"{where}: {name} has dtype {x.dtype}; pass real numbers")
        return x.to_numpy(dtype=np.float64, na_value=np.nan)
    arr = np.asarray(x)
    if not is_real_dtype(arr.dtype):
        raise DataError(f"{where}: {name} has dtype {arr.dtype}; pass real numbers")
    return arr.astype(np.float64)


def _check_index(index: pd.Index, where: str) -> None:
    if isinstance(index, pd.DatetimeIndex) and not (index.is_monotonic_increasing
                                                    and index.is_unique):
        raise DataError(f"{where}: the index is not strictly increasing in time; a crossover "
                        "compares each bar with the one before, so sort the rows and keep one "
                        "per timestamp")


def _broadcast_b(a: Signal, b: Any, where: str) -> np.ndarray:
    """``b`` as a float64 array of ``a``'s 2-D shape; pandas labels must match ``a``'s."""
    shape = a.shape if a.ndim == 2 else (a.shape[0], 1)
    vb = _values(b, "b", where)
    if isinstance(b, pd.DataFrame):
        if not isinstance(a, pd.DataFrame) or not (b.index.equals(a.index)
                                                   and b.columns.equals(a.columns)):
            raise DataError(f"{where}: b is a DataFrame whose index and columns differ from "
                            "a's; align them first (a, b = a.align(b, join='inner'))")
    elif isinstance(b, pd.Series) and isinstance(a, pd.Series | pd.DataFrame):
        if b.index.equals(a.index):
            vb = vb.reshape(-1, 1)
        elif isinstance(a, pd.DataFrame) and b.index.equals(a.columns):
            vb = vb.reshape(1, -1)
        else:
            raise DataError(f"{where}: b is a Series whose index is neither a's index nor "
                            "a's columns; align them first (a.align(b, join='inner', axis=0))")
    elif vb.ndim == 1 and (a.ndim == 1 or vb.shape[0] == shape[0]):
        vb = vb.reshape(-1, 1)  # one value per row (bar) first, as for a Series
    try:
        return np.ascontiguousarray(np.broadcast_to(vb, shape))
    except ValueError:
        raise DataError(f"{where}: b of shape {np.shape(b)} cannot be broadcast to a's shape "
                        f"{a.shape}; pass a scalar, one value per row, one per column or "
                        "a's shape") from None


def _cross(kernel, a: Signal, b: Any, where: str) -> Signal:
    if not isinstance(a, pd.Series | pd.DataFrame):
        a = np.asarray(a)
        if a.ndim not in (1, 2):
            raise DataError(f"{where}: a must be 1-D or 2-D (bars × columns), got "
                            f"{a.ndim}-D")
    else:
        _check_index(a.index, where)
    va = _values(a, "a", where)
    va2 = np.ascontiguousarray(va.reshape(va.shape[0], -1))
    out = kernel(va2, _broadcast_b(a, b, where))
    if isinstance(a, pd.DataFrame):
        return pd.DataFrame(out, index=a.index, columns=a.columns)
    if isinstance(a, pd.Series):
        return pd.Series(out[:, 0], index=a.index, name=a.name)
    return out.reshape(a.shape)


def crossed_above(a: Signal, b: Any) -> Signal:
    """Where ``a`` crosses above ``b``: ``a[t] > b[t]`` and ``a[t-1] <= b[t-1]``.

    This is the library's one definition of a crossover (the sweeps use it too). A NaN
    on either bar gives False, so the first bar after a warm-up or a gap never
    crosses; ties count as not above: rising through ``b`` with one bar exactly on it
    crosses on the first bar strictly above. vectorbt's ``crossed_above`` also needs a
    bar strictly below since the last NaN, so the two differ only where the data or a
    gap is followed by ties and then a cross.

    Parameters
    ----------
    a
        Series, DataFrame (bars × symbols) or 1-D/2-D array, in time order.
    b
        A scalar, a Series (indexed like ``a``'s rows, or like a DataFrame ``a``'s
        columns), a DataFrame labelled like ``a``, or an array: 1-D with one value per
        row (or, for a 2-D ``a``, per column), or ``a``'s shape.

    Returns
    -------
    pandas.Series, pandas.DataFrame or numpy.ndarray
        Booleans of ``a``'s type, shape and labels.

    Raises
    ------
    DataError
        On non-numeric input, labels of ``b`` that do not match ``a``'s, an index out
        of time order, or long-form bars.

    Examples
    --------
    >>> import pandas as pd
    >>> fast = pd.Series([1.0, 2.0, 3.0, 3.0, 4.0, 2.0, float("nan"), 5.0])
    >>> crossed_above(fast, 3.0).tolist()
    [False, False, False, False, True, False, False, False]
    >>> crossed_below(fast, 3.0).tolist()
    [False, False, False, False, False, True, False, False]
    """
    return _cross(nb.crossed_above_nb, a, b, "crossed_above")


def crossed_below(a: Signal, b: Any) -> Signal:
    """Where ``a`` crosses below ``b``: ``a[t] < b[t]`` and ``a[t-1] >= b[t-1]``.

    The mirror of :func:`crossed_above`, with the same NaN and tie rules and inputs.

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> close = atl.data.to_wide(atl.data.resample(atl.data.load_sample(), "1h"), "close")
    >>> fast, slow = close.rolling(24).mean(), close.rolling(96).mean()
    >>> entries = atl.signals.crossed_above(fast, slow)
    >>> exits = atl.signals.crossed_below(fast, slow)
    >>> pf = atl.backtest.from_signals(close, entries, exits, fees=0.001)
    >>> round(float(pf.total_return["AAA"]), 4)
    -0.2393
    """
    return _cross(nb.crossed_below_nb, a, b, "crossed_below")
