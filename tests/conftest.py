"""Shared fixtures: the sample market and small hand-made bars."""

from __future__ import annotations

import uuid

import matplotlib
import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

import alphatrade_lab as atl

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def sample_bars() -> pd.DataFrame:
    return atl.data.load_sample()


@pytest.fixture()
def small_bars() -> pd.DataFrame:
    """Two symbols, six minute bars each, valid and sorted."""
    ts = pd.date_range("2024-03-01 00:00", periods=6, freq="1min", tz="UTC")
    rows = []
    for sym, p in (("AAA", 100.0), ("BBB", 20.0)):
        for i, t in enumerate(ts):
            o = p + i * 0.1
            c = o + 0.05
            rows.append((t, sym, o, c + 0.2, o - 0.2, c, 10.0 + i))
    return pd.DataFrame(rows, columns=list(atl.data.BAR_COLUMNS))


# Property-based tests: the same examples on every run (derandomize, no example database),
# a bounded number of them, and no per-example deadline (a cold import can be slow).
settings.register_profile("atl", derandomize=True, database=None, max_examples=150,
                          deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("atl")


@pytest.fixture
def secret_file(tmp_path):
    """A local file holding a unique secret: (path, value). Nothing untrusted may read it."""
    value = f"secret-{uuid.uuid4().hex}"
    path = tmp_path / "secret.txt"
    path.write_text(value + "\n")
    return path, value
