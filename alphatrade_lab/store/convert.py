"""Turn a wide frame of signals into the store's ``signals`` rows.

A backtest Portfolio's frames (trades, daily performance, its data fingerprint) come from
:mod:`alphatrade_lab.backtest.frames`, beside ``Portfolio``.

>>> import pandas as pd
>>> idx = pd.date_range("2024-01-01", periods=4, freq="12h", tz="UTC")
>>> d = signals_from_wide(pd.DataFrame({"AAA": [1, 0, -1, 0]}, index=idx))
>>> d[["symbol", "direction"]].to_dict("list")
{'symbol': ['AAA', 'AAA'], 'direction': [1, -1]}
"""

from __future__ import annotations

import pandas as pd

from alphatrade_lab.errors import DataError

__all__ = ["signals_from_wide"]


def signals_from_wide(directions: pd.DataFrame, *, confidence: pd.DataFrame | None = None,
                      executed: pd.DataFrame | None = None, model_type: str | None = None,
                      features_hash: str | None = None, keep_zero: bool = False
                      ) -> pd.DataFrame:
    """A timestamp × symbol frame of directions (-1/0/1, NaN = 0) as ``signals`` rows.

    Zero directions are dropped unless ``keep_zero``. ``confidence`` and ``executed``
    (boolean) are optional frames of the same shape; ``executed`` can also be
    ``pf.orders`` (a signal counts as executed when an order of its symbol filled at its
    timestamp).
    """
    if not isinstance(directions, pd.DataFrame):
        raise DataError("signals_from_wide: directions must be a timestamp × symbol DataFrame")
    long = directions.rename_axis(index="timestamp", columns="symbol").stack()
    long = long.rename("direction").reset_index()
    long["direction"] = long["direction"].fillna(0)
    if confidence is not None:
        c = confidence.reindex(index=directions.index, columns=directions.columns)
        long["confidence"] = c.to_numpy().reshape(-1)
    if executed is not None:
        if {"column", "timestamp"} <= set(executed.columns):
            filled = set(zip(executed["column"].astype(str), executed["timestamp"],
                             strict=True))
            long["was_executed"] = [(str(s), t) in filled
                                    for s, t in zip(long["symbol"], long["timestamp"],
                                                    strict=True)]
        else:
            e = executed.reindex(index=directions.index, columns=directions.columns)
            long["was_executed"] = e.fillna(False).to_numpy(dtype=bool).reshape(-1)
    if not keep_zero:
        long = long[long["direction"] != 0].reset_index(drop=True)
    long["symbol"] = long["symbol"].astype(str)
    if model_type is not None:
        long["model_type"] = model_type
    if features_hash is not None:
        long["features_hash"] = features_hash
    return long
