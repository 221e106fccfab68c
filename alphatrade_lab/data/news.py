"""Synthetic news about the sample market's symbols, tied to its jumps and regimes.

**Synthetic, written for research practice: no real company, event or article.** The
headlines come from templates, at times drawn from the bars and the sample's regimes:

* **Reactions** to each jump (an open more than ``jump`` away from the previous close):
  one or two headlines published 2 to 45 minutes *after* the jump's bar opened, in the
  jump's direction. They report what the price already did.
* **Previews** on trending days (regime ``trend`` in :func:`~alphatrade_lab.data.sample_regimes`):
  per symbol, with probability ``preview_rate``, one headline in the day's first six hours
  whose tone matches the day's drift direction with probability ``preview_accuracy``.
  They carry a little information about the rest of the day, which is what a study of
  news sentiment can look for.
* **Noise**: ``noise_per_day`` headlines a day at random times and symbols, neutral or
  mixed in tone, many with words a substring scorer misreads ("against" holds "gain",
  "waterfall" holds "fall", "shutdown" holds "down").

Each article names its company (see :data:`SAMPLE_COMPANIES`) and usually its ticker; the
``symbols`` column holds the true symbol, and ``kind`` says which of the three it is.

>>> news = synthetic_news(seed=1)
>>> sorted(news["kind"].unique())
['noise', 'preview', 'reaction']
>>> bool(news["published_at"].is_monotonic_increasing), str(news["published_at"].dt.tz)
(True, 'UTC')
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["SAMPLE_COMPANIES", "synthetic_news"]

#: The sample market's symbols as companies (invented names).
SAMPLE_COMPANIES = {"AAA": "Aurora Analytics", "BBB": "Boreal Biotech",
                    "CCC": "Cobalt Capital", "DDD": "Delta Dynamics",
                    "EEE": "Ember Energy"}

_UP = ("{name} shares jump after upbeat guidance",
       "{name} beats estimates as demand stays strong",
       "{name} rallies on record quarterly profit",
       "Analysts upgrade {name} ({sym}) to outperform",
       "{name} raises full-year outlook, stock climbs",
       "{name} wins major contract; shares surge")
_DOWN = ("{name} tumbles after guidance cut",
         "{name} misses estimates, shares slide",
         "{name} ({sym}) downgraded on weak margins",
         "{name} faces liability claims, stock drops",
         "Regulators probe {name}; shares plunge",
         "{name} warns of losses as orders decline")
_PREVIEW_UP = ("Sector momentum builds ahead of {name} investor day",
               "Fund managers add to {name} ({sym}) positions",
               "{name} expected to benefit from rising demand")
_PREVIEW_DOWN = ("Concerns mount over {name} supply problems",
                 "Investors trim {name} ({sym}) holdings on weak outlook",
                 "{name} expected to face slowing demand")
_NOISE = ("{name} files suit against former supplier",
          "{name} waterfall chart shows quarterly cost split",
          "{name} plans scheduled shutdown of one plant for maintenance",
          "{name} ({sym}) to hold annual meeting in May",
          "{name} names new chief financial officer",
          "{name} breaks ground on new office",
          "{name} holds rates steady on its customer loans",
          "Markets wrap: {name} among stocks to watch",
          "{name} gains and losses even out in mixed session",
          "{name} not expected to change dividend policy")


def synthetic_news(bars: pd.DataFrame | None = None, regimes: pd.DataFrame | None = None, *,
                   seed: int = 0, jump: float = 0.008, preview_rate: float = 0.5,
                   preview_accuracy: float = 0.65, noise_per_day: float = 4.0
                   ) -> pd.DataFrame:
    """Headlines about ``bars``' symbols (default: the sample market) as an article frame.

    Parameters
    ----------
    bars
        Long-form bars (default :func:`~alphatrade_lab.data.load_sample`); jumps are read
        from them. Symbols outside :data:`SAMPLE_COMPANIES` are named after their ticker.
    regimes
        The regime of each day (default :func:`~alphatrade_lab.data.sample_regimes`):
        columns ``regime`` and ``direction`` indexed by UTC day.
    seed
        Seed of every random choice.
    jump
        Relative size of an opening jump that gets reaction headlines.
    preview_rate, preview_accuracy
        Chance of a preview per symbol and trending day; chance that its tone matches the
        day's direction.
    noise_per_day
        Mean number of noise headlines a day.

    Returns
    -------
    pandas.DataFrame
        ``published_at`` (UTC, sorted), ``source`` (``"synthetic"``), ``title``,
        ``description``, ``url`` (``synthetic://news/<n>``), ``symbols`` (a one-symbol
        list), ``kind`` (``reaction``, ``preview``, ``noise``) and ``tone`` (+1, -1 or 0:
        what the template says, for checking scorers).
    """
    from alphatrade_lab.data.sample import load_sample, sample_regimes

    for name, value in (("preview_rate", preview_rate), ("preview_accuracy",
                                                         preview_accuracy)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"synthetic_news argument {name!r}: must be in [0, 1], got "
                             f"{value!r}")
    if jump <= 0 or noise_per_day < 0:
        raise ValueError("synthetic_news arguments: jump must be > 0 and noise_per_day >= 0")
    bars = load_sample() if bars is None else bars
    regimes = sample_regimes() if regimes is None else regimes
    rng = np.random.default_rng(seed)
    rows: list[tuple[pd.Timestamp, str, str, str, int]] = []

    def add(t: pd.Timestamp, sym: str, templates: tuple[str, ...], kind: str,
            tone: int) -> None:
        text = templates[rng.integers(len(templates))]
        rows.append((t, sym, text.format(name=SAMPLE_COMPANIES.get(sym, sym), sym=sym), kind,
                     tone))

    symbols = sorted(bars["symbol"].unique())
    for sym, g in bars.groupby("symbol", sort=True):
        ts = g["timestamp"]
        gap = (g["open"] / g["close"].shift()).to_numpy() - 1.0
        for i in np.flatnonzero(np.abs(np.nan_to_num(gap)) > jump):
            up = gap[i] > 0
            for _ in range(1 + int(rng.random() < 0.5)):
                t = ts.iloc[i] + pd.Timedelta(minutes=float(rng.uniform(2, 45)))
                add(t, sym, _UP if up else _DOWN, "reaction", 1 if up else -1)
    start, end = bars["timestamp"].min(), bars["timestamp"].max()
    days = regimes.index[(regimes.index >= start.floor("D")) & (regimes.index <= end)]
    for day in days:
        row = regimes.loc[day]
        if row["regime"] == "trend":
            for sym in symbols:
                if rng.random() < preview_rate:
                    right = rng.random() < preview_accuracy
                    up = (row["direction"] > 0) == right
                    t = day + pd.Timedelta(minutes=float(rng.uniform(0, 360)))
                    add(t, sym, _PREVIEW_UP if up else _PREVIEW_DOWN, "preview",
                        1 if up else -1)
        for _ in range(rng.poisson(noise_per_day)):
            t = day + pd.Timedelta(minutes=float(rng.uniform(0, 1440)))
            add(t, symbols[rng.integers(len(symbols))], _NOISE, "noise", 0)
    frame = pd.DataFrame(rows, columns=["published_at", "symbol", "title", "kind", "tone"])
    frame = frame[(frame["published_at"] >= start) & (frame["published_at"] <= end)]
    frame = frame.sort_values("published_at", kind="stable").reset_index(drop=True)
    return pd.DataFrame({
        "published_at": pd.to_datetime(frame["published_at"], utc=True),
        "source": "synthetic", "title": frame["title"], "description": "",
        "url": [f"synthetic://news/{i}" for i in range(len(frame))],
        "symbols": [[s] for s in frame["symbol"]], "kind": frame["kind"],
        "tone": frame["tone"].astype(np.int64)})
