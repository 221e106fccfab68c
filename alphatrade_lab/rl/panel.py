"""The data of the trading environments: one symbol's closes and feature rows, aligned by
timestamp, from long-form bars or from a close series and a feature frame.

The rows before the first one whose close and features are all finite (the features'
warm-up) are dropped; what comes after is kept as it is, so a later NaN is found and
named (:func:`first_nan`) rather than silently filled. For another policy, fill the
feature frame first (:func:`alphatrade_lab.features.handle_nan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError
from alphatrade_lab.features import FeatureSpec, technical

__all__ = ["SymbolData", "first_nan", "symbol_data"]

_KEYS = ("timestamp", "symbol")


@dataclass(frozen=True)
class SymbolData:
    """One symbol's environment data after the warm-up: ``close[i]`` and
    ``features[i, :]`` (float64, columns ``columns``) belong to bar ``timestamps[i]``."""

    symbol: Any
    timestamps: pd.DatetimeIndex
    close: np.ndarray
    features: np.ndarray
    columns: list[str]


def _utc(index: Any, where: str) -> pd.DatetimeIndex:
    try:
        stamps = pd.DatetimeIndex(index)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: timestamps expected ({exc})") from None
    return stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")


def _one_symbol(frame: pd.DataFrame, symbol: Any, where: str) -> pd.DataFrame:
    if "symbol" not in frame.columns:
        return frame
    names = pd.unique(frame["symbol"])
    if symbol is None:
        if len(names) != 1:
            raise DataError(f"{where}: {len(names)} symbols {list(names)[:5]}; pass symbol=")
        symbol = names[0]
    out = frame.loc[frame["symbol"] == symbol]
    if out.empty:
        raise DataError(f"{where}: symbol {symbol!r} not found (have {list(names)[:10]})")
    return out


def _feature_frame(features: pd.DataFrame, symbol: Any) -> pd.DataFrame:
    """Numeric feature columns indexed by UTC timestamp (long form filtered to ``symbol``)."""
    if not isinstance(features, pd.DataFrame):
        raise DataError(f"features: expected a DataFrame, got {type(features).__name__}")
    frame = _one_symbol(features, symbol, "features")
    if "timestamp" in frame.columns:
        frame = frame.set_index("timestamp")
    frame = frame.drop(columns=[c for c in _KEYS if c in frame.columns])
    bad = [c for c, t in frame.dtypes.items() if not pd.api.types.is_numeric_dtype(t)
           or pd.api.types.is_bool_dtype(t)]
    if bad or frame.shape[1] == 0:
        raise DataError(f"features: columns {bad} are not numbers" if bad else
                        "features: no feature columns")
    frame.index = _utc(frame.index, "features index")
    if not frame.index.is_unique:
        dup = frame.index[frame.index.duplicated()][0]
        raise DataError(f"features: duplicate timestamp {dup}")
    return frame.astype(np.float64)


def _close_series(close: Any, symbol: Any) -> pd.Series:
    if isinstance(close, pd.DataFrame):
        if symbol is None:
            if close.shape[1] != 1:
                raise DataError(f"close: {close.shape[1]} columns; pass symbol=")
            symbol = close.columns[0]
        if symbol not in close.columns:
            raise DataError(f"close: symbol {symbol!r} is not a column "
                            f"(have {list(close.columns)[:10]})")
        close = close[symbol]
    if not isinstance(close, pd.Series):
        raise DataError(f"close: expected a Series or a wide DataFrame, got "
                        f"{type(close).__name__}")
    out = close.astype(np.float64)
    out.index = _utc(close.index, "close index")
    return out


def symbol_data(bars: pd.DataFrame | None = None, *, symbol: Any = None, close: Any = None,
                features: pd.DataFrame | None = None, spec: FeatureSpec | None = None
                ) -> SymbolData:
    """One symbol's closes and features, aligned by timestamp, warm-up rows dropped.

    Either long-form ``bars`` (features: ``atl.features.technical(bars, spec)`` unless
    ``features`` is given) or a ``close`` Series (or wide frame and ``symbol``) with a
    ``features`` frame (long form with ``timestamp``/``symbol`` columns, or indexed by
    timestamp). Features are matched to the closes by timestamp; a bar without a
    feature row gets NaN.

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> bars = atl.data.load_sample(["AAA"]).head(400)
    >>> d = symbol_data(bars)
    >>> d.features.shape[1] == len(atl.features.FeatureSpec().feature_names), len(d.close) < 400
    (True, True)
    """
    if bars is not None:
        if close is not None:
            raise ValueError("pass bars or close, not both")
        one = _one_symbol(bars, symbol, "bars")
        name = one["symbol"].iloc[0] if "symbol" in one.columns else symbol
        if features is None:
            features = technical(one.reset_index(drop=True), spec)
        series = pd.Series(one["close"].to_numpy(np.float64), index=one["timestamp"])
        series.index = _utc(series.index, "bars timestamp")
    elif close is not None:
        if features is None:
            raise ValueError("close needs a features frame (or pass long-form bars)")
        series = _close_series(close, symbol)
        name = symbol if symbol is not None else series.name
    else:
        raise ValueError("pass long-form bars or a close series with features")
    frame = _feature_frame(features, name).reindex(series.index)
    values = frame.to_numpy(np.float64)
    prices = series.to_numpy(np.float64)
    ok = np.isfinite(values).all(axis=1) & np.isfinite(prices)
    if not ok.any():
        raise DataError(f"symbol {name!r}: no bar has a finite close and finite features "
                        f"(of {len(prices)} bars)")
    first = int(np.argmax(ok))
    return SymbolData(name, series.index[first:], prices[first:], values[first:],
                      [str(c) for c in frame.columns])


def first_nan(data: SymbolData, lo: int = 0, hi: int | None = None) -> str | None:
    """Where the first non-finite close or feature of rows ``lo:hi`` is, or None.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> ts = pd.date_range("2024-01-01", periods=3, freq="min", tz="UTC")
    >>> d = SymbolData("AAA", ts, np.ones(3), np.array([[1.0], [np.nan], [1.0]]), ["x"])
    >>> first_nan(d)
    "symbol 'AAA', column 'x', timestamp 2024-01-01 00:01:00+00:00: nan"
    """
    hi = len(data.close) if hi is None else hi
    feats = data.features[lo:hi]
    bad = ~np.isfinite(feats)
    bad_close = ~np.isfinite(data.close[lo:hi])
    rows = np.flatnonzero(bad.any(axis=1) | bad_close)
    if len(rows) == 0:
        return None
    i = int(rows[0])
    if bad_close[i]:
        column, value = "close", data.close[lo + i]
    else:
        j = int(np.flatnonzero(bad[i])[0])
        column, value = data.columns[j], feats[i, j]
    return (f"symbol {data.symbol!r}, column {column!r}, timestamp {data.timestamps[lo + i]}: "
            f"{float(value)!r}")
