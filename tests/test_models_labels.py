"""Labels: hand-computed references, dropped rows, and what each label may depend on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError
from alphatrade_lab.models import LabelSpec, align, labels
from alphatrade_lab.testing import assert_no_lookahead


@pytest.fixture(scope="module")
def hourly(sample_bars):
    sel = sample_bars["symbol"].isin(["AAA", "DDD"])
    return atl.data.resample(sample_bars.loc[sel], "1h").groupby("symbol").head(800) \
        .reset_index(drop=True)


def _reference_direction(close: np.ndarray, h: int, thr: np.ndarray) -> list:
    out = []
    for i in range(len(close) - h):
        r = np.log(close[i + h] / close[i])
        if np.isnan(thr[i]):
            out.append(None)
        else:
            out.append(1 if r > thr[i] else (-1 if r < -thr[i] else 0))
    return out


def _reference_barrier(close, h, up, lo, vertical_sign):
    out = []
    for i in range(len(close) - h):
        if np.isnan(up[i]):
            out.append(None)
            continue
        lab, end = None, i + h
        for j in range(1, h + 1):
            r = np.log(close[i + j] / close[i])
            if r >= up[i]:
                lab, end = 1, i + j
                break
            if r <= -lo[i]:
                lab, end = -1, i + j
                break
        if lab is None:
            r = np.log(close[i + h] / close[i])
            lab = int(np.sign(r)) if vertical_sign else 0
        out.append((lab, end))
    return out


@pytest.mark.parametrize("vol_window", [None, 24])
def test_direction_labels_match_a_hand_computation(hourly, vol_window):
    h, k = 4, (0.002 if vol_window is None else 0.5)
    y = labels(hourly, horizon=h, threshold=k, vol_window=vol_window)
    for sym, g in hourly.groupby("symbol"):
        close = g["close"].to_numpy()
        if vol_window is None:
            thr = np.full(len(close), k)
        else:  # pandas rolling std of 1-bar log returns, independent of our kernels
            vol = np.log(g["close"]).diff().rolling(vol_window).std().to_numpy()
            thr = k * vol * np.sqrt(h)
        ref = _reference_direction(close, h, thr)
        ts = g["timestamp"].to_numpy()
        expected = {ts[i]: v for i, v in enumerate(ref) if v is not None}
        got = y.loc[y["symbol"] == sym]
        assert dict(zip(got["timestamp"].to_numpy(), got["label"], strict=True)) == expected
        np.testing.assert_allclose(got["threshold"], [thr[i] for i, v in enumerate(ref)
                                                      if v is not None], rtol=1e-9)
    assert set(y["label"].unique()) == {-1, 0, 1}


def test_rows_without_a_full_horizon_are_dropped(hourly):
    h = 6
    y = labels(hourly, horizon=h)
    for sym, g in hourly.groupby("symbol"):
        got = y.loc[y["symbol"] == sym, "timestamp"]
        assert got.max() == g["timestamp"].iloc[-h - 1]
        assert len(got) == len(g) - h
    assert (y["t1"] == y["timestamp"] + pd.Timedelta(hours=h)).all()
    assert y["label"].dtype == np.int64


@pytest.mark.slow
@pytest.mark.parametrize("vertical", ["zero", "sign"])
def test_triple_barrier_matches_a_hand_computation(hourly, vertical):
    h = 12
    spec = LabelSpec(kind="triple_barrier", horizon=h, threshold=1.0, vol_window=20,
                     upper=1.5, lower=0.7, vertical=vertical)
    y = labels(hourly, spec)
    g = hourly.loc[hourly["symbol"] == "DDD"]
    close = g["close"].to_numpy()
    vol = np.log(g["close"]).diff().rolling(20).std().to_numpy()
    thr = vol * np.sqrt(h)
    ref = _reference_barrier(close, h, 1.5 * thr, 0.7 * thr, vertical == "sign")
    ts = g["timestamp"].to_numpy()
    got = y.loc[y["symbol"] == "DDD"]
    expected = [(ts[i], lab, ts[end]) for i, r in enumerate(ref) if r is not None
                for lab, end in [r]]
    assert list(zip(got["timestamp"].to_numpy(), got["label"], got["t1"].to_numpy(),
                    strict=True)) == expected
    early = (got["t1"] < got["timestamp"] + pd.Timedelta(hours=h)).mean()
    assert 0.1 < early < 0.95  # barriers are touched before the horizon, but not always


def test_a_label_depends_only_on_its_own_and_the_next_h_bars(hourly):
    h = 5
    g = hourly.loc[hourly["symbol"] == "AAA"].reset_index(drop=True)
    base = labels(g, horizon=h, threshold=0.001).set_index("timestamp")
    for p in (100, 357, 600):
        changed_bars = g.copy()
        for col in ("open", "high", "low", "close"):
            changed_bars.loc[p, col] *= 1.03 if p % 2 else 0.97
        new = labels(changed_bars, horizon=h, threshold=0.001).set_index("timestamp")
        diff = base.index[(base["fwd_return"] != new["fwd_return"]).to_numpy()]
        pos = g.index[g["timestamp"].isin(diff)]
        assert set(pos) <= set(range(p - h, p + 1))  # bars t .. t + h only
        assert p - h in set(pos) and p in set(pos)   # and the change is seen


@pytest.mark.parametrize("kind", ["direction", "triple_barrier"])
def test_labels_never_use_bars_after_their_horizon(hourly, kind):
    h = 6
    spec = LabelSpec(kind=kind, horizon=h, threshold=0.5, vol_window=24)
    bar = pd.Timedelta("1h")
    n = assert_no_lookahead(lambda b: labels(b, spec).drop(columns="t1"), hourly,
                            known_at=lambda ts: ts + (h + 1) * bar, n_cuts=3, seed=5)
    assert n > 0


def test_features_aligned_with_labels_never_use_the_future(hourly):
    def aligned_features(b):
        X, _ = align(atl.features.technical(b), labels(b, horizon=4))
        return X

    assert assert_no_lookahead(aligned_features, hourly, n_cuts=3, seed=7,
                               modes=("perturb",)) > 0


def test_align_matches_rows_by_key(hourly):
    X = atl.features.technical(hourly)
    y = labels(hourly, horizon=3)
    Xs = X.sample(frac=1.0, random_state=0)  # row order must not matter
    Xa, ya = align(Xs, y)
    assert (Xa["timestamp"].to_numpy() == ya["timestamp"].to_numpy()).all()
    assert (Xa["symbol"].to_numpy() == ya["symbol"].to_numpy()).all()
    assert not Xa.iloc[:, 2:].isna().any().any()
    expected = X.dropna().merge(y, on=["timestamp", "symbol"])
    assert len(Xa) == len(expected)


def test_bad_input():
    with pytest.raises(ValueError, match="horizon"):
        LabelSpec(horizon=0)
    with pytest.raises(ValueError, match="kind"):
        LabelSpec(kind="sideways")
    with pytest.raises(ValueError, match="threshold"):
        LabelSpec(threshold=-1.0)
    ts = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC")
    bars = pd.DataFrame({"timestamp": ts[::-1], "symbol": "A", "close": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match="timestamp"):
        labels(bars)
    with pytest.raises(DataError, match="label"):
        align(bars, bars)
