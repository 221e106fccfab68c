"""The ``alphatrade-lab`` command and the demo job."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.cli import _parser, main


@pytest.mark.slow
def test_demo_writes_a_report(tmp_path, sample_bars, capsys):
    store = tmp_path / "store" / "lab.duckdb"
    assert main(["demo", "--out", str(tmp_path / "runs"), "--store", str(store)]) == 0
    printed = capsys.readouterr().out
    (run_dir,) = (tmp_path / "runs").iterdir()
    for name in ("report.md", "summary.csv", "market.png"):
        assert (run_dir / name).stat().st_size > 0, name
    assert (run_dir / "market.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = pd.read_csv(run_dir / "summary.csv", index_col="symbol")
    counts = sample_bars.groupby("symbol").size()
    assert summary["bars"].to_dict() == counts.to_dict()
    last = sample_bars.groupby("symbol")["close"].last()
    first = sample_bars.groupby("symbol")["close"].first()
    np.testing.assert_allclose(summary["total_return"], (last / first - 1).to_numpy(), rtol=1e-12)
    assert f"{len(sample_bars):,} bars" in printed and "report written to" in printed
    report = (run_dir / "report.md").read_text()
    assert "![market](market.png)" in report and "Correlation of hourly returns" in report
    for image in ("backtest.png", "sweep_heatmap.png"):
        assert f"]({image})" in report and (run_dir / image).read_bytes()[:4] == b"\x89PNG"
    # The backtest in the report is the one recorded in the store.
    stats = pd.read_csv(run_dir / "backtest_stats.csv", index_col=0)
    lab = atl.store.LabStore(store)
    trades = lab.trades()
    assert len(lab.runs()) == 2  # the backtest and the drift monitoring
    levels = set(lab.alerts()["level"])
    assert {"warning"} <= levels  # drift alerts (and risk breaches) went through the sinks
    closed = stats["closed_trade_count"].sum()
    assert closed <= len(trades) <= stats["trade_count"].sum()


def test_summary_volatility_matches_a_hand_computation(sample_bars):
    aaa = sample_bars[sample_bars["symbol"] == "AAA"]
    daily_close = aaa.groupby(aaa["timestamp"].dt.floor("1D"))["close"].last()
    expected = np.log(daily_close).diff().std() * np.sqrt(365)
    assert np.isclose(atl.data.summarize(aaa).loc["AAA", "annual_vol"], expected, rtol=1e-12)


def test_console_script_reports_bad_usage():
    out = subprocess.run([sys.executable, "-m", "alphatrade_lab.cli", "nonsense"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "invalid choice" in out.stderr


def _help(*args: str) -> str:
    script = Path(sys.executable).with_name("alphatrade-lab")  # the installed console script
    out = subprocess.run([str(script), *args, "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_help_is_plain_text_and_describes_every_command():
    text = _help()
    for markup in ("``", ":func:", ":class:", "::"):
        assert markup not in text, markup
    assert text.split("\n\n")[1].startswith("alphatrade_lab: quantitative trading research")
    subs = _subcommands()
    assert set(subs) == {"demo", "make-sample", "paper", "live", "serve"}
    # each command is listed with a one-line description of its own
    lines = [line.strip() for line in text.splitlines()]
    for name in subs:
        i = lines.index(name) if name in lines else next(
            k for k, line in enumerate(lines) if line.startswith(name + " "))
        described = lines[i][len(name):].strip() or lines[i + 1]
        assert len(described.split()) >= 4, (name, described)
    assert "run the research job" in text and "regenerate the embedded sample" in text


def test_each_command_help_says_what_it_does():
    for name, parser in _subcommands().items():
        text = _help(name)
        assert text.startswith(f"usage: alphatrade-lab {name}")
        assert "``" not in text and ":func:" not in text
        description = text.split("\n\n")[1]
        assert description == parser.format_help().split("\n\n")[1]
        assert len(description.split()) >= 15, (name, description)
        for option in [o for a in parser._actions for o in a.option_strings if o != "-h"]:
            assert option in text


# ---- the deployment's environment contract ----------------------------------------------
def test_help_documents_the_environment_contract():
    text = " ".join(_help().split())
    for name in ("ATL_STORE", "ATL_REDIS_URL", "TRADING_MODE", "ALPHATRADE_API_TOKEN"):
        assert name in text, name
    assert "precedence: --store, then ATL_STORE, then the TOML's [store] path" in text
    for name in ("paper", "live", "serve"):
        sub = " ".join(_help(name).split())
        assert "ATL_STORE" in sub and "ATL_REDIS_URL" in sub and "--redis" in sub, name
    assert "TRADING_MODE=paper" in " ".join(_help("live").split())


@pytest.fixture(scope="module")
def live_config(tmp_path_factory, hourly_bundle):
    """A replay config (40 hourly bars, an exported model) with a [store] path."""
    bundle, bars = hourly_bundle
    folder = tmp_path_factory.mktemp("cli-live")
    bars.head(40).to_parquet(folder / "bars.parquet")
    path = folder / "live.toml"
    path.write_text(f"""
[feed]
kind = "replay"
bars = "{folder / 'bars.parquet'}"
[strategy]
bundle = "{bundle}"
[store]
path = "{folder / 'toml.duckdb'}"
""")
    return path


def _runs(store: Path) -> int:
    return len(atl.store.LabStore(store, read_only=True).runs()) if store.exists() else 0


def test_live_store_precedence_is_flag_then_env_then_toml(live_config, tmp_path, monkeypatch,
                                                          capsys):
    toml_store = live_config.parent / "toml.duckdb"
    env_store, flag_store = tmp_path / "env.duckdb", tmp_path / "flag.duckdb"
    monkeypatch.delenv("ATL_REDIS_URL", raising=False)
    monkeypatch.delenv("TRADING_MODE", raising=False)
    monkeypatch.delenv("ATL_STORE", raising=False)
    before = _runs(toml_store)
    assert main(["live", "--config", str(live_config)]) == 0
    assert _runs(toml_store) == before + 1
    monkeypatch.setenv("ATL_STORE", str(env_store))
    assert main(["live", "--config", str(live_config)]) == 0
    assert _runs(env_store) == 1 and _runs(toml_store) == before + 1
    assert main(["live", "--config", str(live_config), "--store", str(flag_store)]) == 0
    assert _runs(flag_store) == 1 and _runs(env_store) == 1
    assert "40 bars" in capsys.readouterr().out


def test_live_refuses_a_bad_trading_mode(live_config, monkeypatch, capsys):
    monkeypatch.setenv("TRADING_MODE", "yolo")
    assert main(["live", "--config", str(live_config)]) == 2
    assert "TRADING_MODE must be 'paper' (the default) or 'live', not 'yolo'" in \
        capsys.readouterr().err


def test_live_refuses_a_redis_url_that_is_not_one(live_config, monkeypatch, capsys):
    monkeypatch.delenv("TRADING_MODE", raising=False)
    monkeypatch.setenv("ATL_REDIS_URL", "http://user:Pa55-w0rd-xyz@cache:6379")
    assert main(["live", "--config", str(live_config)]) == 2
    err = capsys.readouterr().err
    assert "ATL_REDIS_URL: a Redis URL starts with redis://" in err
    assert "Pa55-w0rd-xyz" not in err and "[REDACTED]@cache" in err
