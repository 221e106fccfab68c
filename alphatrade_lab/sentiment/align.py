"""News scores as per-bar features, aligned to the bars without lookahead.

An article becomes usable at the close of the first bar of its symbol that ends at or after
``published_at + latency``: the features of that bar, and of later bars, may use it;
no earlier bar ever does (the publication time, never the time the article was fetched).
An article usable only after a symbol's last bar is left out. Per symbol and bar:

* ``news_count``: articles that became usable at this bar;
* ``news_score``: their mean score (NaN when there are none);
* ``news_decay``: the mean score of every article usable so far, each weighted by
  ``2 ** -(age / half_life)`` with its age measured from the close of the bar it became
  usable at (NaN before the first article);
* ``news_surprise``: ``(news_score - m) / s`` where ``m`` and ``s`` are the mean and
  standard deviation (``ddof=1``) of the scores of the articles that became usable in the
  ``surprise_window`` before this bar's close (this bar's own articles excluded); NaN
  with no article at the bar or fewer than two before it, or ``s == 0``.

>>> import pandas as pd, alphatrade_lab as atl
>>> bars = atl.data.load_sample(["AAA"]).head(5)
>>> t0 = bars["timestamp"].iloc[0]
>>> news = pd.DataFrame({"published_at": [t0 + pd.Timedelta("30s"), t0],
...                      "symbols": [["AAA"], ["AAA"]], "score": [0.5, -0.25]})
>>> F = news_features(bars, news)  # latency 1 min: usable at t0 + 1:30 and t0 + 1:00
>>> F[["news_count", "news_score", "news_decay"]].round(4).to_numpy().tolist()[:3]
[[1.0, -0.25, -0.25], [1.0, 0.5, 0.1272], [0.0, nan, 0.1272]]
"""

from __future__ import annotations

from itertools import chain

import numba
import numpy as np
import pandas as pd

from alphatrade_lab.data import bar_length
from alphatrade_lab.errors import DataError
from alphatrade_lab.features._input import check_bars, utc_timestamps

__all__ = ["NEWS_FEATURES", "news_features"]

NEWS_FEATURES = ("news_count", "news_score", "news_decay", "news_surprise")
_WHERE = "news_features"


@numba.njit(cache=True, nogil=True)
def news_features_nb(close, starts, ends, a_bar, a_score, half_life, window):
    """Per-bar count, mean, decayed mean and surprise of article scores.

    ``close``: int64 bar close times, sorted within each group ``[starts[g], ends[g])``;
    ``a_bar``: the bar index each article became usable at, sorted; ``a_score`` its score;
    ``half_life`` and ``window`` in ns. Returns four float64 arrays of ``len(close)``.
    """
    n = close.shape[0]
    count = np.zeros(n)
    mean = np.full(n, np.nan)
    decay = np.full(n, np.nan)
    surprise = np.full(n, np.nan)
    m = a_bar.shape[0]
    k = 0
    for g in range(starts.shape[0]):
        s, e = starts[g], ends[g]
        while k < m and a_bar[k] < s:
            k += 1
        d_sum = 0.0
        d_w = 0.0
        lo = k  # the trailing window holds articles lo .. k-1
        w_n = 0
        w_sum = 0.0
        w_sq = 0.0
        for j in range(s, e):
            c = close[j]
            if j > s and d_w > 0.0:
                f = 2.0 ** (-(c - close[j - 1]) / half_life)
                d_sum *= f
                d_w *= f
            while lo < k and close[a_bar[lo]] <= c - window:
                w_n -= 1
                w_sum -= a_score[lo]
                w_sq -= a_score[lo] * a_score[lo]
                lo += 1
            k0 = k
            total = 0.0
            while k < m and a_bar[k] == j:
                total += a_score[k]
                k += 1
            cnt = k - k0
            count[j] = cnt
            if cnt > 0:
                mu = total / cnt
                mean[j] = mu
                if w_n >= 2:
                    wm = w_sum / w_n
                    var = (w_sq - w_n * wm * wm) / (w_n - 1)
                    if var > 1e-24:
                        surprise[j] = (mu - wm) / np.sqrt(var)
                for q in range(k0, k):
                    w_n += 1
                    w_sum += a_score[q]
                    w_sq += a_score[q] * a_score[q]
                d_sum += total
                d_w += cnt
            if d_w > 0.0:
                decay[j] = d_sum / d_w
        while k < m and a_bar[k] < e:
            k += 1
    return count, mean, decay, surprise


def _articles(articles: pd.DataFrame, scores: object) -> tuple[np.ndarray, list, np.ndarray]:
    """Publication times (int64 ns UTC), symbol lists and float64 scores, checked."""
    if not isinstance(articles, pd.DataFrame):
        raise DataError(f"{_WHERE}: articles must be a DataFrame, got "
                        f"{type(articles).__name__}")
    for col in ("published_at", "symbols"):
        if col not in articles.columns:
            raise DataError(f"{_WHERE}: articles have no {col!r} column")
    published = pd.to_datetime(articles["published_at"], utc=True, errors="coerce")
    bad = published.isna().to_numpy()
    if bad.any():
        i = int(bad.argmax())
        raise DataError(f"{_WHERE}: articles row {i}, column 'published_at': "
                        f"{articles['published_at'].iloc[i]!r} is not a time")
    if scores is None:
        if "score" not in articles.columns:
            raise DataError(f"{_WHERE}: articles have no 'score' column; pass scores=")
        scores = articles["score"]
    raw = pd.Series(np.asarray(scores, dtype=object))
    values = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64)
    if values.shape != (len(articles),):
        raise DataError(f"{_WHERE}: {values.shape[0]} scores for {len(articles)} articles")
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(bad.argmax())
        raise DataError(f"{_WHERE}: articles row {i}: score {raw.iloc[i]!s} is not a finite "
                        "number")
    symbols = articles["symbols"].tolist()
    kinds = set(map(type, symbols))
    if not kinds <= {list, tuple, np.ndarray}:
        i = next(i for i, x in enumerate(symbols) if not isinstance(x, list | tuple | np.ndarray))
        raise DataError(f"{_WHERE}: articles row {i}, column 'symbols': expected a list "
                        f"of symbols, got {type(symbols[i]).__name__}")
    return published.array.asi8, symbols, values


def news_features(bars: pd.DataFrame, articles: pd.DataFrame, scores: object = None, *,
                  latency: str | pd.Timedelta = "1min", half_life: str | pd.Timedelta = "1h",
                  surprise_window: str | pd.Timedelta = "1D",
                  base: str | pd.Timedelta | None = None) -> pd.DataFrame:
    """Per-bar news features of each symbol (see the module's notes for the definitions).

    Parameters
    ----------
    bars
        Long-form bars sorted by (symbol, timestamp), unique per pair.
    articles
        One row per article: ``published_at`` (UTC; naive read as UTC), ``symbols`` (a
        list of the symbols it is about) and ``score`` (unless ``scores`` is given).
    scores
        The articles' scores (e.g. from a scorer), one per row.
    latency
        Time from publication until an article can be acted on (default one minute).
    half_life
        Half-life of ``news_decay``'s weights.
    surprise_window
        The trailing window of ``news_surprise``.
    base
        The bar length (default: inferred with :func:`alphatrade_lab.data.bar_length`).

    Returns
    -------
    pandas.DataFrame
        Same rows, order and index as ``bars``: ``timestamp``, ``symbol`` and
        :data:`NEWS_FEATURES` (float64), to join :mod:`alphatrade_lab.features` frames on
        ``timestamp`` and ``symbol``.

    Raises
    ------
    DataError
        Bad bars, or an article without a publication time, with a score that is not a
        finite number or with symbols that are not a list (naming the row).
    ValueError
        A latency below zero, a half-life or window that is not positive.
    """
    lat, half, window = (pd.Timedelta(v) for v in (latency, half_life, surprise_window))
    if lat < pd.Timedelta(0):
        raise ValueError(f"{_WHERE} argument 'latency': must be >= 0, got {latency!r}")
    for name, v, raw in (("half_life", half, half_life), ("surprise_window", window,
                                                          surprise_window)):
        if v <= pd.Timedelta(0):
            raise ValueError(f"{_WHERE} argument {name!r}: must be positive, got {raw!r}")
    frame, ts, groups, _ = check_bars(bars, (), _WHERE)
    published, symbols, values = _articles(articles, scores)
    step = pd.Timedelta(base) if base is not None else (
        bar_length(frame) if len(frame) else pd.Timedelta(0))
    close = ts + step.value
    # one row per (article, symbol), sorted by the symbol's group and the usable time, so
    # that each group's searchsorted walks its bars once and the bars come out sorted
    lengths = np.fromiter(map(len, symbols), np.int64, len(symbols))
    code = {sym: g for g, sym in enumerate(groups.symbols)}
    group = np.fromiter((code.get(x, -1) for x in chain.from_iterable(symbols)), np.int64,
                        int(lengths.sum()))
    usable = np.repeat(published + lat.value, lengths)
    score = np.repeat(values, lengths)
    order = np.lexsort((usable, group))
    group, usable, score = group[order], usable[order], score[order]
    bounds = np.searchsorted(group, np.arange(len(groups.symbols) + 1), side="left")
    a_bar = np.full(len(group), -1, np.int64)
    for g in range(len(groups.symbols)):
        lo, hi = bounds[g], bounds[g + 1]
        s, e = groups.starts[g], groups.ends[g]
        j = np.searchsorted(close[s:e], usable[lo:hi], side="left") + s
        a_bar[lo:hi] = np.where(j < e, j, -1)
    keep = a_bar >= 0
    count, mean, decay, surprise = news_features_nb(
        close, np.asarray(groups.starts, np.int64), np.asarray(groups.ends, np.int64),
        a_bar[keep], score[keep], float(half.value), int(window.value))
    return pd.DataFrame({"timestamp": utc_timestamps(frame, _WHERE),
                         "symbol": frame["symbol"].array, "news_count": count,
                         "news_score": mean, "news_decay": decay, "news_surprise": surprise},
                        index=frame.index, copy=False)
