"""The engine's disk spool: a store that cannot be reached mid-run or at start loses
nothing, and the run ends with the same rows as a run that never lost its store.

The outage here is real: another process holds the DuckDB file (DuckDB lets one process
open it), so the store's connections fail with StoreLockedError until that process exits.
The last tests shut a real PostgreSQL server down and start it again."""

import os
import subprocess
import sys
import threading

import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import StoreError, StoreUnavailableError
from alphatrade_lab.live import Engine, PaperBroker, ReplayFeed, SignalStrategy
from alphatrade_lab.live.spool import SpoolingStore
from alphatrade_lab.store import LabStore

# wall-clock columns (when a fill or an order was seen) differ between any two runs
WALL_CLOCK = ["run_id", "updated_at", "submitted_at", "filled_at", "received_at"]
TABLES = {"orders": ["bar_time", "client_order_id"], "fills": ["bar_time", "client_order_id"],
          "equity": ["timestamp", "portfolio"], "positions": ["timestamp", "symbol"]}


def ma_cross(bars):
    close = atl.data.to_wide(bars, "close")
    fast, slow = close.rolling(4).mean(), close.rolling(12).mean()
    return atl.signals.crossed_above(fast, slow), atl.signals.crossed_below(fast, slow)


@pytest.fixture(scope="module")
def bars():
    b = atl.data.load_sample(["AAA", "BBB"])
    return b[b["timestamp"] < b["timestamp"].min() + pd.Timedelta("300min")].reset_index(
        drop=True)


class Holder:
    """Another process holding the DuckDB file open: the store cannot reach it."""

    def __init__(self, path):
        self.path, self.proc = path, None

    def start(self):
        # the store's writer may hold the file for a moment: take it as soon as it is free
        code = ("import duckdb, sys, time\n"
                "for _ in range(600):\n"
                "    try:\n"
                "        c = duckdb.connect(sys.argv[1]); break\n"
                "    except duckdb.IOException:\n"
                "        time.sleep(0.05)\n"
                "print('held', flush=True); time.sleep(120)")
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(self.path)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class OutageFeed:
    """Replays bars; calls ``actions[k]`` just before the k-th bar is handed out."""

    def __init__(self, bars, actions):
        self.feed, self.actions = ReplayFeed(bars), actions

    def __iter__(self):
        for i, item in enumerate(self.feed):
            if i in self.actions:
                self.actions[i]()
            yield item


class Alerts:
    """An alert dispatcher that keeps what it is given (the engine's interface)."""

    def __init__(self):
        self.sent = []

    def submit(self, level, title, message="", data=None):
        self.sent.append((level, title))


def engine(feed, store, run_id, alerts=None):
    return Engine(feed, SignalStrategy(ma_cross, lookback=13), PaperBroker(1000.0, fees=0.001),
                  store=store, alerts=alerts, run_id=run_id, flush_every=20,
                  flush_interval=1e9)


def stored(store, run_id):
    out = {}
    for table, order in TABLES.items():
        frame = getattr(store, table)(run_id).drop(columns=WALL_CLOCK, errors="ignore")
        if table == "fills":
            frame = frame.drop(columns="timestamp")
        out[table] = frame.sort_values(order).reset_index(drop=True)
    return out


def assert_same_rows(a, b):
    for table in TABLES:
        assert len(a[table]) > 0, table
        pd.testing.assert_frame_equal(a[table], b[table], check_like=True, obj=table)


@pytest.fixture(scope="module")
def reference(bars, tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "lab.duckdb"
    store = LabStore(path)
    engine(ReplayFeed(bars), store, "run").run()
    return stored(store, "run")


@pytest.mark.slow
def test_an_outage_mid_run_loses_nothing(bars, reference, tmp_path):
    path = tmp_path / "lab.duckdb"
    LabStore(path)  # the schema, before the outage
    holder, alerts = Holder(path), Alerts()
    spool = SpoolingStore(lambda: LabStore(path, lock_timeout=0.05), tmp_path / "spool",
                          alerts=alerts, retry=0.05)
    checked = {}

    def check_spooled():
        checked["pending"], checked["degraded"] = spool.pending, spool.degraded
        holder.stop()

    feed = OutageFeed(bars, {100: holder.start, 400: check_spooled})
    result = engine(feed, spool, "run", alerts).run()
    assert checked["degraded"] and checked["pending"] >= 5  # batches waited on disk
    spool.close()
    assert spool.pending == 0 and not spool.degraded and spool.outages == 1
    assert ("warning", "Lab store unavailable") in alerts.sent
    assert ("info", "Lab store back") in alerts.sent
    assert_same_rows(stored(LabStore(path), "run"), reference)
    assert len(result.fills) == len(reference["fills"])


@pytest.fixture()
def held(tmp_path):
    """A store file another process holds from the start: (path, holder)."""
    path = tmp_path / "lab.duckdb"
    LabStore(path)
    holder = Holder(path)
    holder.start()
    yield path, holder
    if holder.proc.poll() is None:
        holder.stop()


def spool_on(path, folder, **options):
    """A spool over the file that gives up on its lock at once (the outage is seen)."""
    return SpoolingStore(lambda: LabStore(path, lock_timeout=0.05), folder / "spool",
                         retry=0.05, new_runs_when_down=True, **options)


@pytest.mark.slow
def test_a_store_down_at_start_is_caught_up(bars, reference, held, tmp_path):
    path, holder = held
    spool = spool_on(path, tmp_path)
    assert spool.degraded
    engine(OutageFeed(bars, {300: holder.stop}), spool, "run").run()
    spool.close()
    assert spool.pending == 0
    assert_same_rows(stored(LabStore(path), "run"), reference)


@pytest.mark.slow
def test_a_spool_left_by_a_stopped_process_is_written_by_the_next(bars, reference, held,
                                                                    tmp_path):
    path, holder = held
    spool = spool_on(path, tmp_path, catch_up=0.2)
    with pytest.raises(StoreUnavailableError, match="not taken yet"):
        engine(ReplayFeed(bars), spool, "run").run()  # the result cannot be read back
    spool.close(timeout=0)
    left = spool.pending
    assert left > 5
    holder.stop()
    again = SpoolingStore(LabStore(path), tmp_path / "spool")  # writes them before reads
    assert again.pending == 0 and not again.degraded
    again.close()
    assert_same_rows(stored(LabStore(path), "run"), reference)


def test_a_batch_the_store_already_holds_is_not_written_twice(tmp_path):
    """The write that failed may have committed before the connection dropped: its
    sequence number in the stored state makes the replay skip it."""
    store = LabStore(tmp_path / "lab.duckdb")
    spool = SpoolingStore(store, tmp_path / "spool", retry=0.05)
    run = spool.record_run("paper", run_id="r")
    t = pd.Timestamp("2024-01-02", tz="UTC")
    rows = pd.DataFrame({"timestamp": [t], "portfolio": "total", "equity": [100.0]})
    spool.record_live(run, equity=rows, state={"bars": 1}, last_bar_time=t)
    # the same batch, as a process that lost the connection after COMMIT would spool it
    spool._degraded = True
    spool._seq -= 1
    spool.record_live(run, equity=rows, state={"bars": 1}, last_bar_time=t)
    assert spool.pending == 1
    assert spool.wait(5)
    spool.close()
    assert len(store.equity(run)) == 1 and store.live_state(run)["bars"] == 1


def test_reads_while_the_spool_is_written_never_see_a_half_gone_batch(held, tmp_path):
    """Readers look through the spool while its thread writes and deletes the batches:
    each look finds every batch whole or not there at all (a reader once met a batch whose
    meta.json was deleted under it)."""
    path, holder = held
    spool = spool_on(path, tmp_path, catch_up=60)
    run = spool.record_run("paper", run_id="r")
    t0 = pd.Timestamp("2024-01-02", tz="UTC")
    for i in range(60):
        t = t0 + pd.Timedelta(minutes=i)
        spool.record_live(run, equity=pd.DataFrame(
            {"timestamp": [t], "portfolio": "total", "equity": [100.0 + i]}),
            state={"bars": i + 1}, last_bar_time=t)
    errors = []

    def look():
        try:
            while spool.pending:
                spool._spooled("other")  # reads every batch's meta.json
        except Exception as exc:  # the test reports whatever escaped
            errors.append(exc)

    threads = [threading.Thread(target=look) for _ in range(3)]
    for th in threads:
        th.start()
    holder.stop()
    for th in threads:
        th.join()
    assert errors == []
    assert len(spool.equity(run)) == 60
    spool.close()
    assert not list((tmp_path / "spool").iterdir())


def test_down_at_start_refuses_to_resume_a_run_it_cannot_see(tmp_path):
    path = tmp_path / "lab.duckdb"
    LabStore(path).record_run("paper", run_id="old")
    holder = Holder(path)
    holder.start()
    try:
        spool = SpoolingStore(lambda: LabStore(path, lock_timeout=0.05), tmp_path / "spool")
        with pytest.raises(StoreUnavailableError, match="cannot look up run 'old'"):
            spool.runs(run_id="old")
        with pytest.raises(StoreUnavailableError, match="cannot resume run 'old'"):
            spool.live_state("old")
        spool.close(timeout=0)
    finally:
        holder.stop()


# ----------------------------------------------------------- a real PostgreSQL server
@pytest.fixture()
def server():
    """A server of this test's own, to shut down and start again."""
    try:
        from alphatrade_lab.testing.postgres import LocalPostgres

        pg = LocalPostgres().start()
    except (ImportError, OSError, RuntimeError) as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and no PostgreSQL server: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")
    pg.create_database("lab")
    yield pg
    pg.stop()


@pytest.mark.slow
def test_the_server_going_down_mid_run_loses_nothing(bars, reference, server, tmp_path):
    url, alerts, seen = server.url_for("lab"), Alerts(), {}
    spool = SpoolingStore(url, tmp_path / "spool", alerts=alerts, retry=0.1)

    def back():
        seen["pending"], seen["degraded"] = spool.pending, spool.degraded
        server.resume()

    result = engine(OutageFeed(bars, {100: server.pause, 400: back}), spool, "run",
                    alerts).run()
    spool.close()
    assert seen["degraded"] and seen["pending"] >= 5
    assert spool.pending == 0 and spool.outages == 1
    assert [t for _, t in alerts.sent] == ["Lab store unavailable", "Lab store back"]
    assert_same_rows(stored(LabStore(url), "run"), reference)
    assert len(result.fills) == len(reference["fills"])


@pytest.mark.slow
def test_a_server_down_at_start_is_caught_up(bars, reference, server, tmp_path):
    url = server.url_for("lab")
    LabStore(url).close()  # the schema exists; then the server goes away
    server.pause()
    with pytest.raises(StoreUnavailableError, match="cannot connect"):
        LabStore(url)
    spool = SpoolingStore(url, tmp_path / "spool", retry=0.1, new_runs_when_down=True)
    assert spool.degraded
    engine(OutageFeed(bars, {300: server.resume}), spool, "run").run()
    spool.close()
    assert spool.pending == 0
    assert_same_rows(stored(LabStore(url), "run"), reference)


def test_wrong_credentials_are_one_clear_error_not_an_outage(server, tmp_path):
    url = server.url_for("lab", server.user, "not-the-password")
    with pytest.raises(StoreError, match="password authentication failed") as info:
        SpoolingStore(url, tmp_path / "spool")
    assert not isinstance(info.value, StoreUnavailableError)
    assert "not-the-password" not in str(info.value)


def test_a_config_on_a_database_server_spools_and_a_file_does_not(server, tmp_path,
                                                                   monkeypatch, hourly_bundle):
    from alphatrade_lab.live.config import build_engine, load_config

    bundle, bars = hourly_bundle
    bars.head(100).to_parquet(tmp_path / "bars.parquet")
    path = tmp_path / "cfg.toml"
    path.write_text(f"""
[broker]
kind = "paper"
[feed]
kind = "replay"
bars = "{tmp_path / 'bars.parquet'}"
[strategy]
bundle = "{bundle}"
[run]
id = "cfg"
""")
    monkeypatch.chdir(tmp_path)
    on_server = build_engine(load_config(path), store=server.url_for("lab"))
    assert isinstance(on_server.store, SpoolingStore)
    assert on_server.store.dir == tmp_path / "data" / "spool"  # the default, under cwd
    assert on_server.store.new_runs_when_down  # the paper broker
    assert on_server.run().bars == 100
    on_server.store.close()
    assert len(LabStore(server.url_for("lab")).equity("cfg")) == 100
    on_file = build_engine(load_config(path), store=tmp_path / "lab.duckdb")
    assert isinstance(on_file.store, LabStore)
    monkeypatch.setenv("ATL_SPOOL_DIR", str(tmp_path / "elsewhere"))
    spooled_file = build_engine(load_config(path), store=tmp_path / "lab.duckdb")
    assert spooled_file.store.dir == tmp_path / "elsewhere"
    spooled_file.store.close()
