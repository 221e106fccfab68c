"""News features aligned to bars: against a slow per-article reference, without lookahead
(both by the bar harness and by changing articles published after a cut), and bad input."""

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError
from alphatrade_lab.sentiment.align import news_features
from alphatrade_lab.testing import assert_no_lookahead

LAT, HALF, WINDOW = pd.Timedelta("1min"), pd.Timedelta("20min"), pd.Timedelta("2h")


@pytest.fixture(scope="module")
def bars():
    b = atl.data.load_sample(["AAA", "BBB", "CCC"])
    return b[b["timestamp"] < b["timestamp"].min() + pd.Timedelta("2D")].reset_index(drop=True)


def random_articles(bars, n, seed=0):
    rng = np.random.default_rng(seed)
    t0, t1 = bars["timestamp"].min(), bars["timestamp"].max()
    span = (t1 - t0).value
    pub = t0 - pd.Timedelta("10min") + pd.to_timedelta(rng.integers(0, span, n), unit="ns")
    pool = ["AAA", "BBB", "CCC", "ZZZ"]
    symbols = [list(rng.choice(pool, size=rng.integers(0, 3), replace=False)) for _ in range(n)]
    return pd.DataFrame({"published_at": pub, "symbols": symbols,
                         "score": rng.uniform(-1, 1, n).round(3)})


def reference(bars, articles):
    """Article by article, bar by bar: the definitions of the module's notes."""
    step = atl.data.bar_length(bars)
    out = []
    for sym, g in bars.groupby("symbol", sort=False):
        close = (g["timestamp"] + step).tolist()
        usable = []  # (close of the bar it is usable at, score)
        for pub, syms, score in articles[["published_at", "symbols", "score"]].itertuples(
                index=False):
            if sym in syms:
                after = [c for c in close if c >= pub + LAT]
                if after:
                    usable.append((after[0], score))
        for c in close:
            now = [s for t, s in usable if t == c]
            seen = [(t, s) for t, s in usable if t <= c]
            w = [2.0 ** (-(c - t) / HALF) for t, _ in seen]
            before = [s for t, s in usable if c - WINDOW < t < c]
            sd = np.std(before, ddof=1) if len(before) >= 2 else np.nan
            surprise = ((np.mean(now) - np.mean(before)) / sd
                        if now and len(before) >= 2 and sd > 1e-12 else np.nan)
            out.append((len(now), np.mean(now) if now else np.nan,
                        np.dot(w, [s for _, s in seen]) / sum(w) if seen else np.nan,
                        surprise))
    return np.array(out, dtype=float)


@pytest.mark.slow
def test_features_equal_the_reference(bars):
    small = bars.groupby("symbol").head(300).reset_index(drop=True)
    articles = random_articles(small, 400)
    got = news_features(small, articles, latency=LAT, half_life=HALF, surprise_window=WINDOW)
    want = reference(small, articles)
    np.testing.assert_allclose(got[["news_count", "news_score", "news_decay",
                                    "news_surprise"]].to_numpy(), want, rtol=1e-9, atol=1e-12)
    assert got["news_count"].sum() > 100 and got["news_surprise"].notna().sum() > 20
    assert got.index.equals(small.index) and (got["symbol"] == small["symbol"]).all()


def news_of(bars):
    """Articles written from the bars themselves: one after each large move, published
    0-5 minutes after the bar's close, the move's sign as its score."""
    step = atl.data.bar_length(bars)
    ret = bars.groupby("symbol")["close"].pct_change()
    big = bars[ret.abs() > 0.002]  # a fixed threshold: a quantile would see later bars
    # a delay that depends on the bar alone (a hash of its minute), not on other bars
    minute = big["timestamp"].astype("int64").to_numpy() // 60_000_000_000
    delay = pd.to_timedelta((minute * 2654435761) % 300, unit="s").to_numpy()
    return pd.DataFrame({"published_at": (big["timestamp"] + step + delay).to_numpy(),
                         "symbols": [[s] for s in big["symbol"]],
                         "score": np.sign(ret[big.index]).to_numpy()})


@pytest.mark.slow
def test_no_lookahead_when_later_bars_and_their_news_change(bars):
    checked = assert_no_lookahead(
        lambda b: news_features(b, news_of(b), half_life=HALF, surprise_window=WINDOW), bars)
    assert checked > 1000


def test_news_published_after_a_cut_never_change_earlier_bars(bars):
    articles = random_articles(bars, 3000, seed=3)
    full = news_features(bars, articles)
    step = atl.data.bar_length(bars)
    rng = np.random.default_rng(4)
    for cut in bars["timestamp"].sample(5, random_state=5):
        later = articles["published_at"] + LAT > cut + step
        changed = articles.copy()
        changed.loc[later, "score"] = rng.uniform(-1, 1, later.sum())
        extra = random_articles(bars, 500, seed=6)
        extra["published_at"] = extra["published_at"].clip(lower=cut + step)
        changed = pd.concat([changed[~later | (rng.random(len(changed)) < 0.5)], extra],
                            ignore_index=True)
        again = news_features(bars, changed)
        known = (bars["timestamp"] + step <= cut + step).to_numpy()
        pd.testing.assert_frame_equal(full[known], again[known])
        assert known.sum() > 0 and not full[~known].equals(again[~known])


def test_articles_after_the_last_bar_or_of_unknown_symbols_are_left_out(bars):
    last = bars["timestamp"].max()
    articles = pd.DataFrame({"published_at": [last + pd.Timedelta("1h"), last],
                             "symbols": [["AAA"], ["QQQ"]], "score": [1.0, 1.0]})
    assert news_features(bars, articles)["news_count"].sum() == 0


def test_the_frame_joins_the_technical_features(bars):
    X = atl.features.technical(bars.groupby("symbol").head(200).reset_index(drop=True))
    N = news_features(bars.groupby("symbol").head(200).reset_index(drop=True),
                      random_articles(bars, 200))
    joined = X.merge(N, on=["timestamp", "symbol"], how="left", validate="one_to_one")
    assert len(joined) == len(X) and set(N.columns[2:]) <= set(joined.columns)


@pytest.mark.parametrize(("change", "match"), [
    (lambda a: a.assign(published_at=[None] + list(a["published_at"][1:])),
     r"row 0, column 'published_at'"),
    (lambda a: a.assign(score=[np.nan] + list(a["score"][1:])), r"row 0: score nan"),
    (lambda a: a.assign(symbols=["AAA"] + list(a["symbols"][1:])),
     r"row 0, column 'symbols': expected a list"),
    (lambda a: a.drop(columns="score"), "no 'score' column"),
])
def test_bad_articles_name_the_row(bars, change, match):
    with pytest.raises(DataError, match=match):
        news_features(bars, change(random_articles(bars, 5)))


def test_bad_arguments_name_the_argument(bars):
    articles = random_articles(bars, 5)
    with pytest.raises(ValueError, match="'latency'"):
        news_features(bars, articles, latency="-1min")
    with pytest.raises(ValueError, match="'half_life'"):
        news_features(bars, articles, half_life="0s")
