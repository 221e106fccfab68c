"""A per-symbol overview of bars, as a table and as a plot."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from alphatrade_lab.data.calendar import observed_bars_per_year
from alphatrade_lab.data.resample import _require_long, bar_length, resample, to_wide

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_bars", "summarize"]


def summarize(bars: pd.DataFrame) -> pd.DataFrame:
    """One row per symbol: span, bar count, missing bars, return, volatility, drawdown.

    Volatility is annualized from daily close-to-close log returns with the trading
    days a year observed in the data (365 on a 24/7 calendar, about 252 on a stock
    exchange's); the drawdown is the worst fall of the close from its running peak.
    ``missing_bars`` counts the bar slots between the first and last bar that hold no
    bar (on an exchange calendar, closed hours and days count too).

    >>> import alphatrade_lab as atl
    >>> summarize(atl.data.load_sample(["AAA", "BBB"])).index.tolist()
    ['AAA', 'BBB']
    """
    _require_long(bars, "summarize", "For a close Series or wide frame, "
                  "close.pct_change().describe() summarises its returns.")
    base = bar_length(bars)
    daily = to_wide(resample(bars, "1D", base=base, drop_incomplete=False), "close")
    log_ret = np.log(daily).diff()
    days = daily.index.as_unit("ns").asi8
    rows = {}
    for sym, g in bars.groupby("symbol", sort=True):
        first, last = g["timestamp"].iat[0], g["timestamp"].iat[-1]
        expected = int((last - first) / base) + 1
        close = g["close"].to_numpy()
        peak = np.maximum.accumulate(close)
        rows[sym] = {
            "start": first,
            "end": last,
            "bars": len(g),
            "missing_bars": expected - len(g),
            "first_close": close[0],
            "last_close": close[-1],
            "total_return": close[-1] / close[0] - 1.0,
            "annual_vol": log_ret[sym].std() * np.sqrt(_days_per_year(days, daily[sym])),
            "max_drawdown": float((close / peak - 1.0).min()),
            "mean_daily_volume": g["volume"].sum() / max(len(daily[sym].dropna()), 1),
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "symbol"
    return out


def _days_per_year(days: np.ndarray, close: pd.Series) -> float:
    have = close.notna().to_numpy()
    return observed_bars_per_year(int(days[have][0]), int(days[have][-1]), int(have.sum())) \
        if have.any() else float("nan")


def plot_bars(bars: pd.DataFrame, rule: str = "1D") -> Figure:
    """Plot closes (rebased to 1), traded value and the intraday volume profile.

    Returns the matplotlib Figure (three panels) so notebooks show it and scripts
    can save it.
    """
    from alphatrade_lab._figure import NotebookFigure

    coarse = resample(bars, rule, drop_incomplete=False)
    close = to_wide(coarse, "close")
    volume = to_wide(coarse, "volume")
    fig = NotebookFigure(figsize=(11, 9), layout="constrained")
    ax_p, ax_v, ax_h = fig.subplots(3, 1, gridspec_kw={"height_ratios": [3, 1.4, 1.4]})
    (close / close.bfill().iloc[0]).plot(ax=ax_p, lw=1)
    ax_p.set_title(f"Close, rebased to 1 ({rule} bars)")
    ax_p.set_ylabel("growth of 1")
    ax_p.set_xlabel("")
    (volume * close).plot(ax=ax_v, lw=0.8, legend=False, logy=True)
    ax_v.set_title(f"Traded value per {rule} (volume × close, log scale)")
    ax_v.set_xlabel("")
    hour = bars["timestamp"].dt.hour
    profile = bars.groupby([hour, "symbol"])["volume"].mean().unstack("symbol")
    (profile / profile.mean()).plot(ax=ax_h, marker="o", ms=3, legend=False)
    ax_h.set_title("Intraday volume profile (relative to each symbol's mean)")
    ax_h.set_xlabel("hour of day (UTC)")
    return fig
