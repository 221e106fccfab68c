"""The fused technical kernel: tasks spread over threads, one rolling pass per shared window.

Every value must be bit for bit what the single kernels give, whatever the number of
threads the tasks are spread over and whether features share a window or not.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import pytest

from alphatrade_lab.features import FeatureSpec, technical
from alphatrade_lab.features import kernels as nb


@pytest.fixture(scope="module")
def bars(sample_bars):
    """Five symbols of unequal length (so the bins get unequal tasks)."""
    parts = [g.head(300 + 400 * k) for k, (_, g) in enumerate(sample_bars.groupby("symbol"))]
    return pd.concat(parts).reset_index(drop=True)


def _fused(bars, spec, threads):
    c, h, lo, v = (bars[col].to_numpy(dtype=float) for col in ("close", "high", "low", "volume"))
    codes = pd.factorize(bars["symbol"])[0].astype(np.int64)
    s, e = nb.group_bounds_nb(codes)
    n = len(bars)
    ints = [np.asarray(x, dtype=np.int64)
            for x in (spec.return_horizons, spec.vol_windows, spec.ma_windows)]
    return nb.technical_nb(c, h, lo, v, s, e, *ints, spec.rsi_window, spec.macd_fast,
                           spec.macd_slow, spec.macd_signal, spec.atr_window, spec.bb_window,
                           spec.bb_k, spec.volume_window, spec.skew_window,
                           np.empty((len(spec.feature_names), n)), np.empty((2, n)), threads)


def test_the_number_of_threads_changes_no_bit(bars):
    spec = FeatureSpec()
    ref = _fused(bars, spec, 1)
    for threads in (2, 3, 8):
        np.testing.assert_array_equal(_fused(bars, spec, threads), ref, err_msg=str(threads))
    np.testing.assert_array_equal(technical(bars, spec)[spec.feature_names].to_numpy().T, ref)


@pytest.mark.parametrize("spec", [
    FeatureSpec(),  # bb_pctb_20 shares ma_dist_20's pass, skew_60 shares vol_60's
    FeatureSpec(ma_windows=(10, 50), bb_window=30, vol_windows=(20,), skew_window=45,
                return_horizons=(2, 7)),  # no window shared
], ids=["shared", "separate"])
def test_fused_equals_the_single_kernels(bars, spec):
    X = pd.DataFrame(_fused(bars, spec, numba.get_num_threads()).T, columns=spec.feature_names)
    c, v = bars["close"].to_numpy(), bars["volume"].to_numpy()
    codes = pd.factorize(bars["symbol"])[0].astype(np.int64)
    s, e = nb.group_bounds_nb(codes)
    r1 = nb.log_return_nb(c, s, e, 1)
    expected = {f"ret_{h}": nb.log_return_nb(c, s, e, h) for h in spec.return_horizons}
    expected |= {f"vol_{w}": nb.rolling_std_nb(r1, s, e, w, 1) for w in spec.vol_windows}
    expected |= {f"ma_dist_{w}": c / nb.rolling_mean_nb(c, s, e, w) - 1
                 for w in spec.ma_windows}
    expected[f"bb_pctb_{spec.bb_window}"] = (
        0.5 + nb.rolling_zscore_nb(c, s, e, spec.bb_window, 0) / (2 * spec.bb_k))
    expected[f"volume_z_{spec.volume_window}"] = nb.rolling_zscore_nb(
        v, s, e, spec.volume_window, 1)
    expected[f"skew_{spec.skew_window}"] = nb.rolling_skew_nb(r1, s, e, spec.skew_window)
    expected[f"rsi_{spec.rsi_window}"] = nb.rsi_nb(c, s, e, spec.rsi_window)
    expected.update(zip(["macd", "macd_signal", "macd_hist"],
                        nb.macd_nb(c, s, e, spec.macd_fast, spec.macd_slow, spec.macd_signal),
                        strict=True))
    expected[f"atr_{spec.atr_window}"] = nb.atr_nb(bars["high"].to_numpy(),
                                                   bars["low"].to_numpy(), c, s, e,
                                                   spec.atr_window)
    expected["hl_range"] = (bars["high"].to_numpy() - bars["low"].to_numpy()) / c
    assert sorted(expected) == sorted(spec.feature_names)
    for name, values in expected.items():
        np.testing.assert_array_equal(X[name].to_numpy(), values, err_msg=name)
