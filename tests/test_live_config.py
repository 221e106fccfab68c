"""The live engine's TOML config and the engine's behaviour when a strategy fails mid-run."""

import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError
from alphatrade_lab.live import Engine, PaperBroker, ReplayFeed, SignalStrategy
from alphatrade_lab.live.config import build_engine, load_config


def write(tmp_path, text):
    p = tmp_path / "live.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, match", [
    ("[broker]\nkind = 'alpaca'\napi_key = 'abc'\n[strategy]\nbundle = 'm.atlb'\n",
     "credentials do not go in the config file \\(setting 'api_key'"),
    ("[brokr]\nkind = 'paper'\n", "unknown section \\[brokr\\]"),
    ("[strategy]\nbundle = 'm.atlb'\nthreshhold = 0.5\n", "unknown setting 'threshhold'"),
    ("[feed]\nkind = 'poll'\n", "bundle .* is required"),
    ("[strategy]\nbundle = 'm.atlb'\n[feed]\nkind = 'poll'\n", "symbols is required"),
    ("[strategy\nbundle = 1", "not valid TOML"),
])
def test_bad_configs_are_named(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        load_config(write(tmp_path, text))


def test_a_replay_config_builds_the_paper_engine(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bars = atl.data.resample(atl.data.load_sample(["AAA"]), "1h")
    X, y = atl.models.align(atl.features.technical(bars), atl.models.labels(bars))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    atl.models.save_bundle(atl.models.train(X, y, model, n_splits=2, progress=False),
                           tmp_path / "m.atlb")
    bars.head(300).to_parquet(tmp_path / "bars.parquet")
    cfg = load_config(write(tmp_path, f"""
[broker]
kind = "paper"
fees = 0.001
[feed]
kind = "replay"
bars = "{tmp_path / 'bars.parquet'}"
[strategy]
bundle = "{tmp_path / 'm.atlb'}"
threshold = 0.4
[store]
path = "{tmp_path / 'lab.duckdb'}"
[run]
id = "cfg-run"
"""))
    result = build_engine(cfg).run()
    assert result.run_id == "cfg-run" and result.bars == 300
    store = atl.store.LabStore(tmp_path / "lab.duckdb", read_only=True)
    assert len(store.equity("cfg-run")) == 300


def test_a_strategy_that_fails_mid_run_leaves_everything_recorded():
    bars = atl.data.load_sample(["AAA"]).head(200)
    boom_at = bars["timestamp"].iloc[150]

    def fn(b):
        if b["timestamp"].iloc[-1] >= boom_at:
            raise RuntimeError("the strategy broke")
        close = atl.data.to_wide(b, "close")
        return close > close.shift(1), close < close.shift(1)

    store = atl.store.LabStore(":memory:")
    engine = Engine(ReplayFeed(bars), SignalStrategy(fn, 2), PaperBroker(fees=0.001),
                    store=store, run_id="boom")
    with pytest.raises(RuntimeError, match="the strategy broke"):
        engine.run()
    fills, equity = store.fills("boom"), store.equity("boom")
    assert len(fills) > 10 and len(equity) == 150  # every bar before the failure
    state = store.live_state("boom")
    assert state["last_bar_time"] == pd.Timestamp(bars["timestamp"].iloc[149])


# ---- the deployment's environment contract: TRADING_MODE, [bus], the store override ----
@pytest.fixture(scope="module")
def replay_files(tmp_path_factory):
    """An exported bundle and 60 hourly bars to replay (trained once for the module)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folder = tmp_path_factory.mktemp("replay")
    bars = atl.data.resample(atl.data.load_sample(["AAA"]), "1h")
    X, y = atl.models.align(atl.features.technical(bars), atl.models.labels(bars))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    atl.models.save_bundle(atl.models.train(X, y, model, n_splits=2, progress=False),
                           folder / "m.atlb")
    bars.head(60).to_parquet(folder / "bars.parquet")
    return folder


def replay_config(folder, broker: str = 'kind = "paper"', store: str = "") -> str:
    return f"""
[broker]
{broker}
[feed]
kind = "replay"
bars = "{folder / 'bars.parquet'}"
[strategy]
bundle = "{folder / 'm.atlb'}"
{store}
"""


def test_a_bus_section_is_refused_the_url_comes_from_the_environment(tmp_path):
    with pytest.raises(DataError, match=r"no \[bus\] section: .* ATL_REDIS_URL or --redis"):
        load_config(write(tmp_path, "[bus]\nstream = 'x'\n[strategy]\nbundle = 'm.atlb'\n"))


@pytest.mark.parametrize("value, mode", [(None, "paper"), ("", "paper"), ("paper", "paper"),
                                         (" LIVE ", "live"), ("Paper", "paper")])
def test_trading_mode_reads_the_environment(monkeypatch, value, mode):
    from alphatrade_lab.live.config import trading_mode

    if value is None:
        monkeypatch.delenv("TRADING_MODE", raising=False)
    else:
        monkeypatch.setenv("TRADING_MODE", value)
    assert trading_mode() == mode


def test_any_other_trading_mode_is_a_clear_error(monkeypatch, tmp_path, replay_files):
    monkeypatch.setenv("TRADING_MODE", "real")
    cfg = load_config(write(tmp_path, replay_config(replay_files)))
    with pytest.raises(DataError, match="TRADING_MODE must be 'paper' .* or 'live', not 'real'"):
        build_engine(cfg)


@pytest.mark.parametrize("broker, real", [
    ({"kind": "paper"}, False),
    ({"kind": "alpaca"}, False),                                   # the paper endpoint
    ({"kind": "alpaca", "base_url": "https://paper-api.alpaca.markets"}, False),
    ({"kind": "alpaca", "base_url": "http://127.0.0.1:8123"}, False),  # a test server
    ({"kind": "alpaca", "base_url": "https://api.alpaca.markets"}, True),
    ({"kind": "ccxt", "exchange": "binance"}, False),              # sandbox by default
    ({"kind": "ccxt", "exchange": "binance", "sandbox": True}, False),
    ({"kind": "ccxt", "exchange": "binance", "sandbox": False}, True),
])
def test_which_brokers_trade_real_money(broker, real):
    from alphatrade_lab.live.config import real_money

    assert (real_money(broker) is not None) is real


def test_paper_mode_refuses_a_real_money_broker_and_live_mode_allows_it(
        monkeypatch, tmp_path, replay_files, caplog):
    monkeypatch.setenv("CCXT_API_KEY", "test-key-0123456789")
    monkeypatch.setenv("CCXT_SECRET", "test-secret-0123456789")
    live_ccxt = 'kind = "ccxt"\nexchange = "binance"\nsandbox = false'
    cfg = load_config(write(tmp_path, replay_config(replay_files, live_ccxt)))
    monkeypatch.delenv("TRADING_MODE", raising=False)
    with pytest.raises(DataError, match="binance with sandbox = false trades real money; "
                                        "TRADING_MODE is 'paper'"):
        build_engine(cfg)
    monkeypatch.setenv("TRADING_MODE", "paper")
    alpaca = load_config(write(tmp_path, replay_config(
        replay_files, 'kind = "alpaca"\nbase_url = "https://api.alpaca.markets"')))
    with pytest.raises(DataError, match="Alpaca broker at https://api.alpaca.markets"):
        build_engine(alpaca)
    monkeypatch.setenv("TRADING_MODE", "live")
    with caplog.at_level("WARNING", "alphatrade_lab.live.config"):
        engine = build_engine(cfg)
    assert not engine.broker.sandbox
    warned = [r for r in caplog.records if "trades real money" in r.getMessage()]
    assert len(warned) == 1 and "TRADING_MODE=live" in warned[0].getMessage()
    assert "test-secret" not in caplog.text
    # a paper broker works in either mode
    for mode in ("paper", "live"):
        monkeypatch.setenv("TRADING_MODE", mode)
        paper = load_config(write(tmp_path, replay_config(replay_files)))
        assert build_engine(paper).run().bars == 60


def test_the_store_argument_replaces_the_configs_store(tmp_path, replay_files):
    cfg = load_config(write(tmp_path, replay_config(
        replay_files, store=f'[store]\npath = "{tmp_path / "toml.duckdb"}"\n[run]\nid = "s"')))
    build_engine(cfg, store=tmp_path / "given.duckdb", mode="paper").run()
    assert not (tmp_path / "toml.duckdb").exists()
    given = atl.store.LabStore(tmp_path / "given.duckdb", read_only=True)
    assert len(given.equity("s")) == 60
