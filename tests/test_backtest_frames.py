"""The store frames of a backtest, built from the kernels' record arrays, against a plain
pandas computation of the same definitions from ``pf.trades`` and ``pf.equity``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.backtest import daily_performance_frame, trades_frame
from alphatrade_lab.errors import DataError


def reference_daily(eq: pd.Series, init: float, bars_per_year: float,
                    exits: pd.Series) -> pd.DataFrame:
    """The daily rows of one equity curve by pandas groupby (``exits``: closed-trade pnl
    indexed by exit time)."""
    day = eq.index.normalize()
    prev = np.r_[init, eq.to_numpy()[:-1]]
    rets = pd.Series(eq.to_numpy() / prev - 1.0, index=eq.index)
    ending = eq.groupby(day).last()
    starting = ending.shift(1)
    starting.iloc[0] = init
    rg = rets.groupby(day)
    mean, std, n = rg.mean(), rg.std(ddof=1), rg.count()
    exit_day = exits.index.normalize()
    return pd.DataFrame({
        "date": ending.index.date,
        "starting_equity": starting.to_numpy(),
        "ending_equity": ending.to_numpy(),
        "pnl": (ending - starting).to_numpy(),
        "pnl_pct": (ending / starting - 1.0).to_numpy(),
        "trades_count": exits.groupby(exit_day).size().reindex(ending.index, fill_value=0)
        .to_numpy(),
        "win_count": (exits > 0).groupby(exit_day).sum().reindex(ending.index, fill_value=0)
        .to_numpy(),
        "max_drawdown": (eq / eq.cummax() - 1.0).groupby(day).min().to_numpy(),
        "sharpe_ratio": (mean / std * np.sqrt(bars_per_year)).where((n >= 2) & (std > 0))
        .to_numpy(),
    })


def assert_daily_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got["date"]) == list(want["date"])
    for col in ("trades_count", "win_count"):
        np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy(), err_msg=col)
    for col in ("starting_equity", "ending_equity", "pnl", "pnl_pct", "max_drawdown",
                "sharpe_ratio"):
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float),
                                   rtol=1e-9, atol=1e-12, err_msg=col)


@pytest.fixture(scope="module")
def market(random_market):
    close, _, entries, exits = random_market(6000, 4, 21, freq="17min", p=0.03)
    close.iloc[2000:2100, 1] = np.nan  # a gap: equity keeps its last value
    return close, entries, exits


@pytest.mark.parametrize("direction", ["longonly", "both"])
def test_daily_rows_per_column_match_pandas(market, direction):
    close, entries, exits = market
    pf = atl.backtest.from_signals(close, entries, exits, fees=0.001, direction=direction)
    got = daily_performance_frame(pf, "both")
    t = pf.trades[pf.trades["status"] == "closed"]
    assert len(t) > 200
    for col in close.columns:
        mine = t[t["column"] == col]
        want = reference_daily(pf.equity[col], float(pf.init_cash[0]), pf.periods_per_year,
                               pd.Series(mine["pnl"].to_numpy(), index=mine["exit_time"]))
        assert_daily_equal(got[got["portfolio"] == col].reset_index(drop=True), want)
    total = got[got["portfolio"] == "total"].reset_index(drop=True)
    want = reference_daily(pf.equity.sum(axis=1), float(pf.init_cash.sum()),
                           pf.periods_per_year,
                           pd.Series(t["pnl"].to_numpy(), index=t["exit_time"]))
    assert_daily_equal(total, want)


def test_cash_sharing_counts_every_trade_for_the_one_portfolio(market):
    close, entries, exits = market
    pf = atl.backtest.from_signals(close, entries, exits, fees=0.001, cash_sharing=True,
                                   size=0.25)
    got = daily_performance_frame(pf)
    t = pf.trades[pf.trades["status"] == "closed"]
    equity = pf.equity.iloc[:, 0] if isinstance(pf.equity, pd.DataFrame) else pf.equity
    want = reference_daily(equity, float(pf.init_cash[0]), pf.periods_per_year,
                           pd.Series(t["pnl"].to_numpy(), index=t["exit_time"]))
    assert (got["portfolio"] == "portfolio").all()
    assert_daily_equal(got, want)


def test_trades_frame_is_pf_trades_in_store_columns(market):
    close, entries, exits = market
    pf = atl.backtest.from_signals(close, entries, exits, fees=0.001, direction="both")
    t, got = pf.trades, trades_frame(pf)
    is_open = (t["status"] == "open").to_numpy()
    assert is_open.sum() >= 1 and len(got) == len(t)
    assert got["symbol"].astype(str).tolist() == t["column"].astype(str).tolist()
    assert got["side"].astype(str).tolist() == t["direction"].tolist()
    assert got["status"].astype(str).tolist() == t["status"].tolist()
    for a, b in (("quantity", "size"), ("entry_price", "entry_price"), ("pnl", "pnl"),
                 ("pnl_pct", "return")):
        np.testing.assert_array_equal(got[a].to_numpy(), t[b].to_numpy(), err_msg=a)
    np.testing.assert_array_equal(got["fees"], t["entry_fees"] + t["exit_fees"])
    assert (got["entry_time"] == t["entry_time"]).all()
    closed = ~is_open
    assert (got["exit_time"][closed] == t["exit_time"][closed]).all()
    assert got["exit_time"][is_open].isna().all() and got["exit_price"][is_open].isna().all()
    marks = got["metadata"][is_open]
    assert [m["mark_price"] for m in marks] == t["exit_price"][is_open].tolist()


def test_stored_trades_read_back_as_they_were_built(market):
    close, entries, exits = market
    pf = atl.backtest.from_signals(close, entries, exits, fees=0.001)
    store = atl.store.LabStore(":memory:")
    run = store.record_backtest(pf, strategy="frames")
    back, built = store.trades(run), trades_frame(pf)
    assert back["symbol"].tolist() == built["symbol"].astype(str).tolist()
    assert back["status"].tolist() == built["status"].astype(str).tolist()
    assert (back["strategy"] == "frames").all() and (back["run_id"] == run).all()
    np.testing.assert_array_equal(back["pnl"].to_numpy(), built["pnl"].to_numpy())
    daily = store.daily_performance(run)
    assert daily["trades_count"].sum() == int((built["status"] == "closed").sum())


def test_a_categorical_key_with_a_credential_is_refused_at_its_row():
    store = atl.store.LabStore(":memory:")
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    ts = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    trades = pd.DataFrame({
        "symbol": pd.Categorical(["AAA", "AAA", token]), "side": "long", "quantity": 1.0,
        "entry_time": ts, "entry_price": 10.0})
    with pytest.raises(DataError, match=r"trades, column 'symbol', row 2 .*credential"):
        store.record_trades(trades)
    assert store.counts()["trades"] == 0


def test_categorical_text_is_checked_and_redacted_like_any_text():
    store = atl.store.LabStore(":memory:")
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    ts = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    base = {"symbol": pd.Categorical(["AAA", "BBB", "AAA"]), "quantity": 1.0,
            "entry_time": ts, "entry_price": 10.0}
    with pytest.raises(DataError, match=r"trades, column 'side', row 1 .*long, short"):
        store.record_trades(pd.DataFrame(base | {"side": pd.Categorical(
            ["long", "sideways", "long"])}))
    store.record_trades(pd.DataFrame(base | {"side": "long", "strategy": pd.Categorical(
        ["a", f"token {token}", None])}))
    got = store.trades()
    assert got["symbol"].tolist() == ["AAA", "BBB", "AAA"]
    assert got["strategy"].iloc[0] == "a" and got["strategy"].isna().iloc[2]
    assert token not in got["strategy"].iloc[1]


def test_columns_with_the_same_text_share_a_symbol(market):
    close, entries, exits = (f.iloc[:, :2].set_axis([1, "1"], axis=1) for f in market)
    pf = atl.backtest.from_signals(close, entries, exits, fees=0.001)
    got = trades_frame(pf)
    assert list(got["symbol"].cat.categories) == ["1"] and len(got) == len(pf.trades)
    assert (got["symbol"] == "1").all()
