"""The synthetic news of the sample market: what each kind of headline is tied to."""

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl


@pytest.fixture(scope="module")
def bars():
    return atl.data.load_sample()


@pytest.fixture(scope="module")
def news(bars):
    return atl.data.synthetic_news(bars, seed=3)


def test_the_frame_is_an_article_frame(news):
    assert list(news.columns) == ["published_at", "source", "title", "description", "url",
                                  "symbols", "kind", "tone"]
    assert news["published_at"].is_monotonic_increasing and news["url"].is_unique
    assert str(news["published_at"].dt.tz) == "UTC"
    counts = news["kind"].value_counts()
    assert counts["reaction"] > 100 and counts["preview"] > 100 and counts["noise"] > 1000
    named = [atl.data.SAMPLE_COMPANIES[s[0]] in t for s, t in zip(news["symbols"],
                                                                    news["title"], strict=True)]
    assert all(named)


def test_reactions_follow_a_jump_of_their_sign(bars, news):
    """Never before the jump: a reaction is published 2-45 minutes after the open of a bar
    that jumped in its direction."""
    reactions = news[news["kind"] == "reaction"]
    for sym, g in bars.groupby("symbol"):
        gap = (g["open"] / g["close"].shift() - 1.0).to_numpy()
        jumps = g["timestamp"].to_numpy()[np.abs(np.nan_to_num(gap)) > 0.008]
        signs = np.sign(gap[np.abs(np.nan_to_num(gap)) > 0.008])
        mine = reactions[reactions["symbols"].str[0] == sym]
        for t, tone in zip(mine["published_at"].to_numpy(), mine["tone"], strict=True):
            j = np.searchsorted(jumps, t, side="right") - 1
            assert j >= 0 and pd.Timedelta(2, "min") <= t - jumps[j] <= pd.Timedelta(45, "min")
            assert signs[j] == tone


def test_previews_carry_the_days_direction_at_their_accuracy(news):
    regimes = atl.data.sample_regimes()
    p = news[news["kind"] == "preview"]
    days = p["published_at"].dt.floor("D").dt.tz_localize(None) if regimes.index.tz is None \
        else p["published_at"].dt.floor("D")
    direction = regimes["direction"].reindex(days).to_numpy()
    assert (direction != 0).all()  # only trending days get previews
    hit = (np.sign(direction) == p["tone"].to_numpy()).mean()
    # 0.65 with n in the hundreds: a 4-sigma band
    sd = np.sqrt(0.65 * 0.35 / len(p))
    assert abs(hit - 0.65) < 4 * sd


def test_same_seed_same_news_and_bad_arguments(bars):
    a = atl.data.synthetic_news(bars.head(20_000), seed=1)
    b = atl.data.synthetic_news(bars.head(20_000), seed=1)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError, match="preview_accuracy"):
        atl.data.synthetic_news(bars.head(100), preview_accuracy=1.5)
