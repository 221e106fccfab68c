"""Crash safety: a paper run killed with SIGKILL at random moments and started again with
the same run id ends with exactly the orders, fills and equity of an uninterrupted run,
every order once (``alphatrade-lab paper`` in real subprocesses, a DuckDB file store)."""

import os
import random
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

import alphatrade_lab as atl

ORDER_COLUMNS = ["client_order_id", "bar_time", "symbol", "side", "intent", "qty", "status",
                 "filled_qty", "filled_avg_price", "fees"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    d = tmp_path_factory.mktemp("crash")
    bars = atl.data.load_sample(["AAA", "BBB", "CCC"])
    b15 = atl.data.resample(bars, "15min")
    X, y = atl.models.align(atl.features.technical(b15), atl.models.labels(b15))
    bundle = atl.models.train(X, y, make_pipeline(StandardScaler(),
                                                  LogisticRegression(max_iter=500)),
                              n_splits=2, progress=False)
    atl.models.save_bundle(bundle, d / "model.atlb")
    bars[bars["timestamp"] < bars["timestamp"].min() + pd.Timedelta("1D")].to_parquet(
        d / "bars.parquet")
    return d


def paper(d, store, **popen):
    cmd = [sys.executable, "-m", "alphatrade_lab.cli", "paper", "--bundle",
           str(d / "model.atlb"), "--bars", str(d / "bars.parquet"), "--store", str(store),
           "--run-id", "crash-run", "--threshold", "0.4", "--fees", "0.001",
           "--direction", "both", "--flush-every", "50"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def tables(store_path):
    store = atl.store.LabStore(store_path, read_only=True)
    orders = store.orders("crash-run")[ORDER_COLUMNS].sort_values("client_order_id")
    fills = store.fills("crash-run").drop(columns=["timestamp"]).sort_values(
        ["bar_time", "symbol"])
    equity = store.equity("crash-run").sort_values(["timestamp", "portfolio"])
    return [f.reset_index(drop=True) for f in (orders, fills, equity)]


def killed_run(d, store, kills, seed):
    rng = random.Random(seed)
    done, restarts = False, 0
    while not done:
        proc = paper(d, store)
        if restarts < kills:
            # anywhere from the import to the end of the replay
            time.sleep(rng.uniform(0.3, 3.0))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                restarts += 1
                continue
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
        done = True
    return restarts


def check_same(d, kills, seed):
    clean = d / f"clean-{seed}.duckdb"
    proc = paper(d, clean)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    crashed = d / f"crashed-{seed}.duckdb"
    restarts = killed_run(d, crashed, kills, seed)
    assert restarts >= min(kills, 1)
    a, b = tables(clean), tables(crashed)
    assert len(a[0]) > 50
    assert b[0]["client_order_id"].is_unique  # every order once
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x, y)


@pytest.mark.slow
def test_killed_and_restarted_paper_run_ends_as_an_uninterrupted_one(setup):
    check_same(setup, kills=3, seed=1)


@pytest.mark.slow
def test_twenty_kills(setup):
    check_same(setup, kills=20, seed=2)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_the_same_run_id_goes_on(setup):
    store = setup / "sigint.duckdb"
    proc = paper(setup, store)
    # the CLI says when its handler is in place (the import alone can take seconds)
    started = proc.stdout.readline().decode()
    assert "started" in started, proc.stderr.read().decode()[-2000:]
    time.sleep(0.5)
    assert proc.poll() is None, "the replay ended before the signal"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "stopped by a signal" in out.decode() and "Traceback" not in err.decode()
    lab = atl.store.LabStore(store, read_only=True)
    state = lab.live_state("crash-run")
    equity = lab.equity("crash-run")
    # everything up to the last processed bar is recorded, nothing after it
    assert state["last_bar_time"] == equity["timestamp"].max()
    del lab
    proc = paper(setup, store)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    clean = setup / "clean-sigint.duckdb"
    proc = paper(setup, clean)
    proc.communicate(timeout=300)
    for x, y in zip(tables(clean), tables(store), strict=True):
        pd.testing.assert_frame_equal(x, y)
