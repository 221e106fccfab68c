"""Chunked runs equal one-shot runs; summary runs stay within bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alphatrade_lab.backtest import from_signals, from_signals_chunked

N, K = 2000, 6


@pytest.fixture(scope="module")
def market(random_market):
    close, open_, entries, exits = random_market(N, K, seed=3, start=50, p=0.03)
    close.iloc[100:110, 2] = np.nan
    open_.iloc[100:111, 2] = np.nan
    return close, open_, entries, exits


def split(frames, bounds):
    edges = [0, *bounds, N]
    return [tuple(f.iloc[a:b] for f in frames) for a, b in zip(edges[:-1], edges[1:],
                                                                  strict=True)]


def critical_bounds(entries, pf):
    """Boundaries inside an open trade and right after an entry signal (before its fill)."""
    t = pf.trades
    long_trade = t.loc[(t["exit_time"] - t["entry_time"]).idxmax()]
    inside = entries.index.get_loc(long_trade["entry_time"]) + 1
    signal_bar = int(np.flatnonzero(entries.iloc[:, 0].to_numpy())[5]) + 1
    return sorted({inside, signal_bar, 777, 1500})


@pytest.mark.slow
@pytest.mark.parametrize("execution", ["close", "next_open"])
@pytest.mark.parametrize("direction", ["longonly", "shortonly", "both"])
def test_chunked_equals_one_shot(market, execution, direction):
    close, open_, entries, exits = market
    kw = dict(direction=direction, execution=execution, fees=0.001, fixed_fees=0.05,
              slippage=0.001, sl_stop=0.03, tp_stop=0.05)
    full = from_signals(close, entries, exits, open=open_, **kw)
    bounds = critical_bounds(entries, full)
    # The boundary falls strictly inside an open trade.
    t = full.trades
    assert any(((t["entry_time"] < close.index[b]) & (t["exit_time"] >= close.index[b])).any()
               for b in bounds)
    chunks = split((close, entries, exits, open_), bounds)
    chunked = from_signals_chunked(chunks, **kw)
    pd.testing.assert_frame_equal(chunked, full.stats(), check_exact=False, rtol=1e-12)
    np.testing.assert_allclose(chunked["end_value"], full.equity.iloc[-1], rtol=1e-12)


def test_chunk_boundary_between_signal_and_next_open_fill(market):
    close, open_, entries, exits = market
    full = from_signals(close, entries, exits, open=open_, execution="next_open")
    first_fill = full.orders.sort_values("timestamp")["timestamp"].iloc[0]
    b = close.index.get_loc(first_fill)  # the signal is on bar b - 1, its fill on bar b
    chunked = from_signals_chunked(split((close, entries, exits, open_), [b]),
                                   execution="next_open")
    pd.testing.assert_frame_equal(chunked, full.stats(), check_exact=False, rtol=1e-12)


@pytest.mark.slow
def test_chunked_from_parquet_row_groups(market, tmp_path):
    close, open_, entries, exits = market
    wide = pd.concat({"close": close, "entries": entries, "exits": exits}, axis=1)
    wide.columns = [f"{a}__{b}" for a, b in wide.columns]
    path = tmp_path / "bars.parquet"
    pq.write_table(pa.Table.from_pandas(wide), path, row_group_size=300)

    def chunks():
        f = pq.ParquetFile(path)
        for i in range(f.num_row_groups):
            df = f.read_row_group(i).to_pandas()
            yield tuple(df[[f"{part}__{c}" for c in close.columns]].set_axis(close.columns, axis=1)
                        for part in ("close", "entries", "exits"))

    assert pq.ParquetFile(path).num_row_groups > 5
    chunked = from_signals_chunked(chunks(), fees=0.001, direction="both")
    full = from_signals(close, entries, exits, fees=0.001, direction="both")
    pd.testing.assert_frame_equal(chunked, full.stats(), check_exact=False, rtol=1e-12)


@pytest.mark.slow
def test_chunks_must_be_consecutive_and_share_columns(market):
    close, _, entries, exits = market
    parts = split((close, entries, exits), [1000])
    with pytest.raises(ValueError, match="chunk 1: starts at"):
        from_signals_chunked([parts[1], parts[0]])
    other = tuple(p.rename(columns=lambda c: c + "x") for p in parts[1])
    with pytest.raises(ValueError, match="chunk 1: columns"):
        from_signals_chunked([parts[0], other])


@pytest.mark.slow
def test_summary_does_not_allocate_bars_by_columns():
    n, k = 200_000, 10
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, (n, k)), axis=0))
    entries = rng.random((n, k)) < 0.01
    exits = rng.random((n, k)) < 0.01
    from_signals(close[:100], entries[:100], exits[:100], record="summary")  # compile
    tracemalloc.start()
    stats = from_signals(close, entries, exits, fees=0.001, record="summary")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(stats) == k
    # One float64 bars × columns array would be 16 MB; the summary run stays far below.
    assert peak < close.nbytes / 20
    full = from_signals(close, entries, exits, fees=0.001)
    pd.testing.assert_frame_equal(stats, full.stats())
