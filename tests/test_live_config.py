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
