"""The machine's floor: minimal numba loops that our sweep and backtest kernels are quoted against.

Run with ``.venv/bin/python benchmarks/minimal_loops.py`` (issue 17 item 5). Each floor is a
deliberately naive loop doing the same work as the library call, checked to give the same
numbers before anything is timed. Both sides are warmed up (numba compilation) and run the
same number of times, alternately; min and median are printed, with the ratio ours / floor,
and the least CPU time of each (all threads) with its ratio: on a busy machine the wall
times include waiting for the cores, the CPU times do not. The load average is printed
before and after.

1. Sweep: every fast < slow pair of simple moving averages over windows range(2, 47) (990
   pairs) on 100,000 bars, long only, fills at the close, fees 0.001. The floor steps every
   bar of every pair (numba ``prange`` over the pairs, no skipping of quiet bars): averages
   from shared prefix sums as ``sweeps.kernels.window_mean_nb`` computes them, crosses as
   ``atl.signals.crossed_above`` defines them, the engine's all-in buy and sell
   (``buy_nb``/``sell_nb``), and per pair the total return, per-bar Sharpe, max drawdown and
   trade count; the same loop without the return sums (no Sharpe) is timed too. Peer:
   ``atl.backtest.sweep_ma_cross`` (the public call), and its two kernels alone
   (``ma_prepare_nb`` + ``sweep_ma_pairs_nb``) to separate them from the call's overhead.
2. Single backtest: one column of 10,000,000 bars, random entries and exits (p=0.01), long
   only, fees 0.001. The floor computes the equity array and the summary statistics (total
   return, sums of the bar returns and of their squares, max drawdown) in one loop, into a
   fresh array each run. Peers:
   ``atl.backtest.from_signals`` followed by ``pf.equity``, and ``record="summary"``.

The sweep runs again without fees (the library's shortcut for stretches without a new
peak then applies less often). At fees of 0.001 most of these accounts trade down to
almost nothing (total returns near -100%), after which the engine rejects orders under
its minimum size (1e-8 shares); the floors apply that rule too, or their numbers would
differ.
"""

from __future__ import annotations

import os
import statistics
import time

import numba
import numpy as np
from numba import njit, prange

import alphatrade_lab as atl
from alphatrade_lab.backtest import kernels as backtest_nb
from alphatrade_lab.backtest.sweeps import ma_kernels as sweep_nb

FEES = 0.001
INIT_CASH = 100.0
REPEAT = 5


def gbm_close(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))


@njit(cache=True)
def buy_all(cash, price, fees):
    """All cash into shares (``buy_nb`` with ``size=inf``): (cash left, shares), or
    ``(cash, 0.0)`` when that is under the engine's minimum order (1e-8 shares)."""
    shares = cash / (1.0 + fees) / price
    if shares < backtest_nb.MIN_SIZE and not backtest_nb.is_close_nb(shares, backtest_nb.MIN_SIZE):
        return cash, 0.0
    return 0.0, shares


@njit(cache=True)
def sell_all(pos, price, fees):
    """The whole position at ``price`` (``sell_nb`` closing): the cash it brings."""
    gross = pos * price
    return gross - gross * fees


@njit(cache=True, inline="always")
def drawdown_step(value, peak, trough, max_dd):
    """Max drawdown as the engine defines it (``min(value / peak) - 1``, peak from the first
    bar), dividing once per new peak: ``min(v) / peak`` equals ``min(v / peak)`` exactly."""
    if value >= peak:
        if trough < peak:
            max_dd = min(max_dd, trough / peak - 1.0)
        return value, np.inf, max_dd
    return peak, min(trough, value), max_dd


@njit(cache=True, parallel=True)
def sweep_floor_nb(close, fast, slow, fees, init_cash, returns):
    """Per pair: end value, sum of bar returns, sum of their squares, max drawdown, trades
    (the sums stay 0 unless ``returns``)."""
    n = close.shape[0]
    cs = np.zeros(n + 1)
    s = 0.0
    for i in range(n):
        s = s + close[i]
        cs[i + 1] = s
    m = fast.shape[0]
    out = np.empty((m, 5))
    for p in prange(m):
        wf, ws = fast[p], slow[p]
        cash, pos, prev, s1, s2, trades = init_cash, 0.0, init_cash, 0.0, 0.0, 0
        peak, trough, max_dd = 0.0, np.inf, 0.0
        fp = sp = np.nan
        for i in range(n):
            price = close[i]
            if i + 1 >= ws:
                f = (cs[i + 1] - cs[i + 1 - wf]) / wf
                sl = (cs[i + 1] - cs[i + 1 - ws]) / ws
                if pos == 0.0 and f > sl and fp <= sp:
                    cash, pos = buy_all(cash, price, fees)
                    trades += pos > 0.0
                elif pos > 0.0 and f < sl and fp >= sp:
                    cash, pos = sell_all(pos, price, fees), 0.0
                fp, sp = f, sl
            value = cash + pos * price if pos != 0.0 else cash
            if returns:
                r = (value - prev) / prev
                s1 += r
                s2 += r * r
            prev = value
            peak, trough, max_dd = drawdown_step(value, peak, trough, max_dd)
        _, _, max_dd = drawdown_step(np.inf, peak, trough, max_dd)
        out[p, 0], out[p, 1], out[p, 2], out[p, 3], out[p, 4] = prev, s1, s2, max_dd, trades
    return out


@njit(cache=True)
def backtest_floor_nb(close, entries, exits, fees, init_cash, equity):
    """Fills ``equity``; returns (end value, sum of bar returns, sum of squares, max drawdown)."""
    cash, pos, prev, s1, s2 = init_cash, 0.0, init_cash, 0.0, 0.0
    peak, trough, max_dd = 0.0, np.inf, 0.0
    for i in range(close.shape[0]):
        price = close[i]
        e, x = entries[i], exits[i]
        if pos == 0.0 and e and not x:
            cash, pos = buy_all(cash, price, fees)
        elif pos > 0.0 and x and not e:
            cash, pos = sell_all(pos, price, fees), 0.0
        value = cash + pos * price if pos != 0.0 else cash
        equity[i] = value
        r = (value - prev) / prev
        s1 += r
        s2 += r * r
        prev = value
        peak, trough, max_dd = drawdown_step(value, peak, trough, max_dd)
    _, _, max_dd = drawdown_step(np.inf, peak, trough, max_dd)
    return prev, s1, s2, max_dd


def per_bar_sharpe(s1, s2, n):
    mean = s1 / n
    return mean / np.sqrt(np.maximum(s2 - s1 * mean, 0.0) / (n - 1))


def time_all(fns, repeat=REPEAT):
    """Each function warmed up once, then all run in turn ``repeat`` times: their wall
    seconds and their process CPU seconds (all threads; on a busy machine the CPU time
    leaves out the time other processes held the cores)."""
    for fn in fns.values():
        fn()
    times = {name: ([], []) for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[name][0].append(time.perf_counter() - t0)
            times[name][1].append(time.process_time() - c0)
    return times


def report(times, floor, units, unit_name):
    """Min and median of each, ns per unit, and the ratio to ``floor``'s min and median;
    then the min CPU time and its ratio to the floor's."""
    f_lo, f_med = min(times[floor][0]), statistics.median(times[floor][0])
    f_cpu = min(times[floor][1])
    for label, (ts, cpu) in times.items():
        lo, med = min(ts), statistics.median(ts)
        print(f"  {label:<48} min {lo * 1e3:7.1f} ms  median {med * 1e3:7.1f} ms  "
              f"{med / units * 1e9:5.2f} ns/{unit_name}  x floor: {lo / f_lo:5.2f} (min) "
              f"{med / f_med:5.2f} (median)  cpu min {min(cpu) * 1e3:7.1f} ms "
              f"x floor: {min(cpu) / f_cpu:5.2f}")


def check(name, ours, floor, rtol):
    err = float(np.max(np.abs(ours - floor) / np.maximum(np.abs(floor), 1e-300)))
    print(f"  check {name:<20} max rel diff {err:.1e} (bound {rtol:.0e})")
    if not err <= rtol:
        raise SystemExit(f"{name}: results differ ({err:.2e} > {rtol:.0e}); nothing timed")


def sweep_case(n_bars=100_000, windows=range(2, 47), fees=FEES):
    close = gbm_close(n_bars)
    pairs = [(f, s) for f in windows for s in windows if f < s]
    fast = np.array([f for f, _ in pairs], dtype=np.int64)
    slow = np.array([s for _, s in pairs], dtype=np.int64)
    print(f"sweep: {n_bars:,} bars x {len(pairs)} MA pairs, long only, fees {fees} "
          f"({numba.get_num_threads()} threads)")

    def ours():
        # periods_per_year=1: the "sharpe" column is the per-bar Sharpe ratio
        return atl.backtest.sweep_ma_cross(
            close, fast=windows, slow=windows, fees=fees, progress=False, periods_per_year=1,
            metrics=("total_return", "sharpe", "max_drawdown", "trade_count"))

    win = np.arange(windows.start, windows.stop, dtype=np.int64)
    col = close.reshape(-1, 1)

    def kernels():
        shared = sweep_nb.ma_prepare_nb(col, win, n_bars)
        return sweep_nb.sweep_ma_pairs_nb(*shared, win, fast, slow, 0, n_bars,
                                          backtest_nb.LONGONLY, fees, 0.0, 0.0, 1.0, INIT_CASH)

    res, fl = ours(), sweep_floor_nb(close, fast, slow, fees, INIT_CASH, True)
    assert list(res.index) == pairs
    check("total return", res["total_return"].to_numpy(), fl[:, 0] / INIT_CASH - 1.0, 1e-12)
    check("max drawdown", res["max_drawdown"].to_numpy(), fl[:, 3], 1e-12)
    # The library adds held all-in stretches' returns from compensated prefix sums:
    # equal to the bar-by-bar sums to about 1e-15, which the Sharpe ratio amplifies a little.
    check("per-bar sharpe", res["sharpe"].to_numpy(), per_bar_sharpe(fl[:, 1], fl[:, 2], n_bars),
          1e-9)
    same = np.array_equal(res["trade_count"].to_numpy(), fl[:, 4].astype(np.int64))
    print(f"  check trade counts         equal: {same}")
    if not same:
        raise SystemExit("trade counts differ; nothing timed")
    lean = sweep_floor_nb(close, fast, slow, fees, INIT_CASH, False)
    if not np.array_equal(lean[:, [0, 3, 4]], fl[:, [0, 3, 4]]):
        raise SystemExit("the floor without return sums differs; nothing timed")
    floor = "floor: per-bar loop, same metrics"
    report(time_all({
        "ours: sweep_ma_cross": ours,
        "ours: its kernels (ma_prepare + sweep_ma_pairs)": kernels,
        floor: lambda: sweep_floor_nb(close, fast, slow, fees, INIT_CASH, True),
        "floor without return sums (no Sharpe)":
            lambda: sweep_floor_nb(close, fast, slow, fees, INIT_CASH, False),
    }), floor, n_bars * len(pairs), "bar-combo")


def backtest_case(n_bars=10_000_000, p=0.01):
    rng = np.random.default_rng(1)
    close = gbm_close(n_bars, seed=2)
    entries = rng.random(n_bars) < p
    exits = rng.random(n_bars) < p
    print(f"\nsingle backtest: 1 column x {n_bars:,} bars, random entries/exits (p={p}), "
          f"long only, fees {FEES}")

    def full():
        pf = atl.backtest.from_signals(close, entries, exits, fees=FEES)
        return pf, pf.equity

    def summary():
        return atl.backtest.from_signals(close, entries, exits, fees=FEES, record="summary")

    def floor():
        # a fresh array each run, as the library returns one
        equity = np.empty(n_bars)
        return equity, backtest_floor_nb(close, entries, exits, FEES, INIT_CASH, equity)

    pf, eq = full()
    equity, (end, s1, s2, max_dd) = floor()
    check("equity", eq.to_numpy(), equity, 1e-12)
    stats = summary().iloc[0]
    check("total return", np.array([pf.total_return, stats["total_return"]]),
          np.full(2, end / INIT_CASH - 1.0), 1e-12)
    check("max drawdown", np.array([stats["max_drawdown"]]), np.array([max_dd]), 1e-12)
    check("per-bar sharpe", np.array([pf.stats(periods_per_year=1)["sharpe"]]),
          np.array([per_bar_sharpe(s1, s2, n_bars)]), 1e-12)
    name = "floor: equity + summary loop"
    report(time_all({"ours: from_signals + pf.equity": full,
                     'ours: from_signals(record="summary")': summary, name: floor}),
           name, n_bars, "bar")


def main() -> None:
    # Other processes on the machine slow both sides, not always alike: say how busy it was.
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    sweep_case()
    # Without fees fewer accounts sink far below their peak: more stretches set new peaks
    # and take the bar-by-bar drawdown path.
    sweep_case(fees=0.0)
    backtest_case()
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
