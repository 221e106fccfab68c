"""The stand-alone kernels: plain arrays in and out, groups never mixed, same as the wrapper."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphatrade_lab.features import kernels as nb
from alphatrade_lab.features import technical


@pytest.fixture(scope="module")
def bars(sample_bars):
    return sample_bars.groupby("symbol").head(2000).reset_index(drop=True)


@pytest.fixture(scope="module")
def arrays(bars):
    codes = pd.factorize(bars["symbol"])[0].astype(np.int64)
    starts, ends = nb.group_bounds_nb(codes)
    return {c: bars[c].to_numpy() for c in ("high", "low", "close", "volume")}, starts, ends


def test_group_bounds():
    starts, ends = nb.group_bounds_nb(np.array([0, 0, 1, 1, 1, 2], dtype=np.int64))
    assert starts.tolist() == [0, 2, 5] and ends.tolist() == [2, 5, 6]
    starts, ends = nb.group_bounds_nb(np.array([], dtype=np.int64))
    assert starts.size == 0 and ends.size == 0


@pytest.mark.slow
def test_single_kernels_equal_the_fused_technical_kernel(bars, arrays):
    a, s, e = arrays
    X = technical(bars)
    c = a["close"]
    r1 = nb.log_return_nb(c, s, e, 1)
    np.testing.assert_allclose(nb.log_return_nb(c, s, e, 15), X["ret_15"], rtol=0, atol=0)
    np.testing.assert_allclose(nb.rolling_std_nb(r1, s, e, 20, 1), X["vol_20"], rtol=1e-15)
    np.testing.assert_allclose(c / nb.rolling_mean_nb(c, s, e, 50) - 1, X["ma_dist_50"],
                               rtol=1e-15)
    np.testing.assert_allclose(nb.rsi_nb(c, s, e, 14), X["rsi_14"], rtol=1e-15)
    for got, col in zip(nb.macd_nb(c, s, e, 12, 26, 9), ["macd", "macd_signal", "macd_hist"],
                        strict=True):
        np.testing.assert_allclose(got, X[col], rtol=1e-15)
    np.testing.assert_allclose(nb.atr_nb(a["high"], a["low"], c, s, e, 14), X["atr_14"],
                               rtol=1e-15)
    np.testing.assert_allclose(nb.rolling_zscore_nb(a["volume"], s, e, 20, 1),
                               X["volume_z_20"], rtol=1e-15)
    np.testing.assert_allclose(nb.rolling_skew_nb(r1, s, e, 60), X["skew_60"], rtol=1e-15)


@pytest.mark.slow
def test_rolling_moments_against_numpy_windows_with_nans():
    rng = np.random.default_rng(1)
    x = 1000.0 + rng.normal(0, 1, 300)
    x[[50, 51, 120]] = np.nan
    starts, ends = np.array([0, 140], dtype=np.int64), np.array([140, 300], dtype=np.int64)
    mean, m2, m3 = nb.rolling_moments_nb(x, starts, ends, 7, True)
    for i in range(300):
        g0 = 0 if i < 140 else 140
        w = x[max(g0, i - 6) : i + 1]
        if i - g0 < 6 or np.isnan(w).any():
            assert np.isnan(mean[i]) and np.isnan(m2[i]) and np.isnan(m3[i]), i
        else:
            d = w - w.mean()
            assert mean[i] == pytest.approx(w.mean(), rel=1e-14)
            assert m2[i] == pytest.approx((d**2).sum(), rel=1e-9)
            assert m3[i] == pytest.approx((d**3).sum(), rel=1e-6, abs=1e-9)


@pytest.mark.slow
def test_fill_kernels():
    x = np.array([np.nan, 1.0, np.nan, 3.0, np.nan, np.nan, 5.0, np.nan])
    starts, ends = np.array([0, 5], dtype=np.int64), np.array([5, 8], dtype=np.int64)
    np.testing.assert_array_equal(nb.ffill_nb(x, starts, ends),
                                  [np.nan, 1, 1, 3, 3, np.nan, 5, 5])
    np.testing.assert_array_equal(nb.expanding_mean_fill_nb(x, starts, ends),
                                  [np.nan, 1, 1, 3, 2, np.nan, 5, 5])


def test_asof_index():
    t = np.array([5, 10, 15, 20, 7, 9], dtype=np.int64)
    starts, ends = np.array([0, 4], dtype=np.int64), np.array([4, 6], dtype=np.int64)
    ht = np.array([10, 20, 8], dtype=np.int64)  # group 0: rows 0-1, group 1: row 2
    hs, he = np.array([0, 2], dtype=np.int64), np.array([2, 3], dtype=np.int64)
    assert nb.asof_index_nb(t, starts, ends, ht, hs, he).tolist() == [-1, 0, 0, 1, -1, 2]
    empty = nb.asof_index_nb(t, starts, ends, ht, np.array([0, 0]), np.array([0, 0]))
    assert (empty == -1).all()


def test_dense_rolling_loop_gives_the_bits_of_the_general_one():
    """An x without NaN after its first row takes a faster loop; a NaN appended at the end
    sends the same values through the general (NaN-aware) loop, and every earlier row must
    come out bit for bit the same, flat runs (exact zero variance) included."""
    rng = np.random.default_rng(2)
    x = 1000.0 + np.cumsum(rng.normal(0, 1, 500))
    x[100:130] = x[100]
    for lead in (False, True):
        dense = x.copy()
        if lead:
            dense[0] = np.nan  # as the 1-bar return of a symbol's first row
        general = np.append(dense, np.nan)
        one = (np.array([0]), np.array([len(dense)]))
        one_more = (np.array([0]), np.array([len(general)]))
        for w in (1, 2, 3, 7, 20, 60):
            pairs = [(nb.rolling_moments_nb(dense, *one, w, True),
                      nb.rolling_moments_nb(general, *one_more, w, True)),
                     ((nb.rolling_std_nb(dense, *one, w, 1),),
                      (nb.rolling_std_nb(general, *one_more, w, 1),)),
                     ((nb.rolling_zscore_nb(dense, *one, w, 0),),
                      (nb.rolling_zscore_nb(general, *one_more, w, 0),)),
                     ((nb.rolling_skew_nb(dense, *one, w),),
                      (nb.rolling_skew_nb(general, *one_more, w),))]
            for got, ref in pairs:
                for a, b in zip(got, ref, strict=True):
                    np.testing.assert_array_equal(a, b[:-1], err_msg=f"window {w}")
