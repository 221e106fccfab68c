"""A realistic synthetic market and the embedded sample built from it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.signal import lfilter

from alphatrade_lab.data.kernels import simulate_log_prices_nb
from alphatrade_lab.data.schema import BAR_COLUMNS, PRICE_COLUMNS, validate
from alphatrade_lab.errors import DataError

__all__ = [
    "REGIME_NAMES",
    "SAMPLE_SEED",
    "SYMBOLS",
    "load_sample",
    "sample_path",
    "sample_regimes",
    "synthetic",
    "write_sample",
]

SAMPLE_SEED = 20240101
SYMBOLS: tuple[str, ...] = ("AAA", "BBB", "CCC", "DDD", "EEE")
_START_PRICE = (100.0, 45.0, 250.0, 12.0, 1800.0)
_ANNUAL_VOL = (0.55, 0.70, 0.60, 0.90, 0.65)
_FACTOR_LOADING = (0.80, 0.70, 0.75, 0.60, 0.70)
_MINUTES_PER_YEAR = 365 * 24 * 60
_SAMPLE_FILE = "sample_bars.parquet"
REGIME_NAMES: tuple[str, ...] = ("random_walk", "trend", "mean_reversion")


@dataclass(frozen=True)
class _Regimes:
    """Per-bar regime inputs of the simulation kernel."""

    day_state: np.ndarray  # 0 random walk, 1 trend, 2 mean reversion (per day)
    day_sign: np.ndarray   # direction of the trend (per day)
    drift: np.ndarray
    kappa: np.ndarray
    reset: np.ndarray


def _regimes(n_bars: int, bars_per_day: int, rng: np.random.Generator) -> _Regimes:
    """Markov regimes lasting whole days (mean 10 days), the market trend sign drawn per stretch."""
    n_days = -(-n_bars // bars_per_day)
    day_state = np.empty(n_days, dtype=np.int64)
    day_sign = np.empty(n_days)
    day_start = np.zeros(n_days, dtype=bool)
    state, sign = 0, 1.0
    for d in range(n_days):
        if d == 0 or rng.random() < 0.1:
            state = int(rng.choice(3, p=(0.4, 0.3, 0.3))) if d else 0
            sign = 1.0 if rng.random() < 0.5 else -1.0
            day_start[d] = True
        day_state[d], day_sign[d] = state, sign
    per_bar = np.repeat(np.arange(n_days), bars_per_day)[:n_bars]
    state = day_state[per_bar]
    # Trend: 1% a day in the drawn direction. Mean reversion: half-life of 4 hours.
    drift = np.where(state == 1, day_sign[per_bar] * 0.01 / bars_per_day, 0.0)
    kappa = np.where(state == 2, np.log(2) / (4 * bars_per_day / 24), 0.0)
    reset = np.zeros(n_bars, dtype=bool)
    reset[np.flatnonzero(day_start) * bars_per_day] = True
    return _Regimes(day_state, day_sign, drift, kappa, reset)


def _intraday_profile(timestamps: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Volatility and volume multipliers by UTC time of day and weekday (mean about 1)."""
    hour = timestamps.hour.to_numpy() + timestamps.minute.to_numpy() / 60.0
    activity = (1.0 + 0.9 * np.exp(-(((hour - 14.5) / 2.0) ** 2))   # US session
                + 0.4 * np.exp(-(((hour - 8.0) / 1.5) ** 2))        # Europe
                + 0.2 * np.exp(-(((hour - 1.5) / 1.5) ** 2)))       # Asia
    weekend = timestamps.day_of_week.to_numpy() >= 5
    activity = activity * np.where(weekend, 0.7, 1.0)
    vol_mult = activity / activity.mean()
    volume_mult = activity**1.8
    return vol_mult, volume_mult / volume_mult.mean()


def synthetic(
    n_symbols: int = 5,
    start: str | pd.Timestamp = "2024-01-01",
    days: int = 365,
    freq: str = "1min",
    seed: int = SAMPLE_SEED,
    missing_rate: float = 2e-4,
    vol_shift: tuple[float, float, float] = (0.5, 0.65, 2.0),
    return_regimes: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Generate a deterministic, realistic synthetic market of OHLCV bars.

    The calendar is 24/7 (as for crypto assets): every ``freq`` bar of every day,
    UTC, minus a few missing bars. The generating model, per bar t and symbol i:

    - **Correlated fat tails.** ``z[t, i] = b_i f[t] + sqrt(1 - b_i^2) u[t, i]`` with the
      market factor ``f`` and idiosyncratic ``u`` drawn from Student-t(5), scaled to
      unit variance; loadings ``b`` between 0.6 and 0.8 give return correlations of
      about 0.4 to 0.6.
    - **Volatility clustering.** A GARCH(1,1) unit-mean variance multiplier
      ``g[t] = (1 - a - b) + (a z[t-1]^2 + b) g[t-1]`` with ``a = 0.02, b = 0.978``.
    - **Intraday seasonality.** Volatility follows a UTC activity profile with US,
      European and Asian session peaks, 30% lower on weekends; volume follows the
      same profile more steeply (power 1.8), rises with the conditional volatility
      and the bar's absolute move, and has a persistent random level (an AR(1) in
      logs with a one-day memory).
    - **Regimes.** A day-level Markov chain (switching with probability 0.1 a day, so
      stretches last 10 days on average) between a random walk, a trend of 1% a day
      in a random direction (scaled by each symbol's loading), and mean reversion
      towards the price at the regime's start with a half-life of 4 hours.
    - **Volatility regime change.** Between the fractions ``vol_shift[0]`` and
      ``vol_shift[1]`` of the span every volatility is multiplied by ``vol_shift[2]``.
    - **Gaps.** Price jumps at the open (about one every 4 days per symbol, 1.5%
      standard deviation), isolated missing bars (``missing_rate``) and outages of
      5 minutes to 2 hours (three a year per symbol), after which trading resumes at
      wherever the price went meanwhile.
    - **Bars.** Open is the previous close (plus any jump), close adds the bar's
      return, high and low extend beyond the body by half-normal amounts scaled by
      the bar's volatility. Prices are rounded to a tick of about 1e-5 of the
      starting price, volumes to 0.001.

    Parameters
    ----------
    n_symbols
        Number of symbols (at most 5, named ``AAA`` to ``EEE``).
    start, days, freq
        First bar's open time (UTC), length in days and bar length.
    seed
        Seed of every random draw; the same seed gives the same bars.
    missing_rate
        Probability that any single bar is missing.
    vol_shift
        ``(start_fraction, end_fraction, multiplier)`` of the volatility regime change.
    return_regimes
        Also return the regime of each day.

    Returns
    -------
    pandas.DataFrame
        Validated long-form bars sorted by (symbol, timestamp). With
        ``return_regimes=True``, a tuple of the bars and a frame indexed by day with
        the columns ``regime`` (``random_walk``, ``trend``, ``mean_reversion``) and
        ``direction`` (+1 or -1 for a trend, 0 otherwise), so that strategies can be
        judged per regime.

    Examples
    --------
    >>> bars = synthetic(n_symbols=2, days=2, seed=7)
    >>> bool(bars.groupby("symbol").size().between(2700, 2880).all())
    True
    >>> synthetic(n_symbols=2, days=2, seed=7).equals(bars)
    True
    """
    if not 1 <= n_symbols <= len(SYMBOLS):
        raise ValueError(f"n_symbols must be between 1 and {len(SYMBOLS)}, not {n_symbols}")
    if days <= 0:
        raise ValueError(f"days must be positive, not {days}")
    rng = np.random.default_rng(seed)
    step = pd.Timedelta(freq)
    n_bars = int(pd.Timedelta(days=days) / step)
    timestamps = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=n_bars, freq=step)
    n, k = len(timestamps), n_symbols
    bars_per_day = int(pd.Timedelta("1D") / step)
    bars_per_year = _MINUTES_PER_YEAR * pd.Timedelta("1min") / step

    df = 5.0
    t_scale = np.sqrt((df - 2.0) / df)
    loading = np.asarray(_FACTOR_LOADING[:k])
    factor = rng.standard_t(df, size=n) * t_scale
    idio = rng.standard_t(df, size=(n, k)) * t_scale
    z = factor[:, None] * loading + idio * np.sqrt(1.0 - loading**2)

    jumps = rng.random((n, k)) < 1.0 / (4 * bars_per_day)
    gap = np.where(jumps, rng.normal(0.0, 0.015, size=(n, k)), 0.0)

    vol_mult, volume_mult = _intraday_profile(timestamps)
    lo, hi, mult = vol_shift
    shift = np.ones(n)
    shift[int(lo * n):int(hi * n)] = mult
    regimes = _regimes(n, bars_per_day, rng)
    base_sigma = np.asarray(_ANNUAL_VOL[:k]) / np.sqrt(bars_per_year)
    log_close, sigma = simulate_log_prices_nb(
        z, gap, base_sigma, vol_mult * shift, loading, regimes.drift, regimes.kappa,
        regimes.reset, 0.02, 0.978)

    p0 = np.asarray(_START_PRICE[:k])
    tick = _ticks(k)
    log_open = np.vstack([np.zeros((1, k)), log_close[:-1]]) + gap
    close = p0 * np.exp(log_close)
    open_ = p0 * np.exp(log_open)
    wick = 0.5 * sigma
    high = np.maximum(open_, close) * np.exp(np.abs(rng.standard_normal((n, k))) * wick)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.standard_normal((n, k))) * wick)
    open_, high, low, close = (np.round(a / tick) * tick for a in (open_, high, low, close))
    high = np.maximum(high, np.maximum(open_, close))
    low = np.minimum(low, np.minimum(open_, close))

    base_volume = 1e6 / p0  # about a million in quote currency per average bar
    move = np.abs(np.log(close / open_)) / sigma
    # Volume rises with the conditional volatility and the bar's own move, and has a
    # persistent (about one day) random level of its own.
    excess_vol = sigma / (base_sigma * vol_mult[:, None])
    phi = 1.0 - 1.0 / bars_per_day
    level = lfilter([np.sqrt(1.0 - phi**2) * 0.35], [1.0, -phi], rng.standard_normal((n, k)),
                    axis=0)
    volume = (base_volume * volume_mult[:, None] * excess_vol**0.8 * (0.5 + 0.5 * move)
              * np.exp(level + rng.normal(-0.08, 0.4, size=(n, k))))
    volume = np.round(volume, 3)

    keep = rng.random((n, k)) >= missing_rate
    n_outages = max(1, round(3 * days / 365))
    for j in range(k):
        for _ in range(n_outages):
            first = int(rng.integers(0, n))
            keep[first:first + int(rng.integers(5, 121)) * bars_per_day // 1440, j] = False

    frames = []
    for j, sym in enumerate(SYMBOLS[:k]):
        m = keep[:, j]
        frames.append(pd.DataFrame({
            "timestamp": timestamps[m], "symbol": sym, "open": open_[m, j], "high": high[m, j],
            "low": low[m, j], "close": close[m, j], "volume": volume[m, j]}))
    bars = validate(pd.concat(frames, ignore_index=True), source=f"synthetic(seed={seed})")
    if not return_regimes:
        return bars
    days_index = pd.date_range(timestamps[0], periods=len(regimes.day_state), freq="1D")
    return bars, _regime_frame(days_index, regimes.day_state, regimes.day_sign)


def _regime_frame(days: pd.DatetimeIndex, state: np.ndarray, sign: np.ndarray) -> pd.DataFrame:
    direction = np.where(np.asarray(state) == 1, np.asarray(sign), 0.0).astype(np.int64)
    return pd.DataFrame({"regime": np.asarray(REGIME_NAMES)[np.asarray(state)],
                         "direction": direction}, index=pd.Index(days, name="day"))


def sample_path() -> Path:
    """Path of the embedded sample file (``data/sample_bars.parquet`` in a source checkout)."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "data" / _SAMPLE_FILE,        # source / editable install
                      here.parents[1] / "_sample" / _SAMPLE_FILE):    # wheel install
        if candidate.exists():
            return candidate
    raise DataError(f"{_SAMPLE_FILE}: embedded sample data not found next to the package; "
                    "regenerate it with `alphatrade-lab make-sample`")


def _ticks(n_symbols: int) -> np.ndarray:
    """Price tick of each symbol: about 1e-5 of its starting price."""
    return 10.0 ** (np.floor(np.log10(np.asarray(_START_PRICE[:n_symbols]))) - 5)


_VOLUME_SCALE = 1000  # volumes are rounded to 0.001


def write_sample(path: str | Path | None = None, seed: int = SAMPLE_SEED) -> Path:
    """Generate the one-year, five-symbol sample and write it as zstd Parquet.

    Prices are stored as integer ticks and volumes as integer thousandths, with
    delta encoding, which packs a year of minute bars into about 22 MB; the tick
    of each symbol is kept in the file's metadata. :func:`load_sample` turns them
    back into exactly the floats :func:`synthetic` produced.
    """
    if path is None:
        path = Path(__file__).resolve().parents[2] / "data" / _SAMPLE_FILE
    path = Path(path)
    bars, regimes = synthetic(seed=seed, return_regimes=True)
    tick = dict(zip(SYMBOLS, _ticks(len(SYMBOLS)).tolist(), strict=True))
    per_row = bars["symbol"].map(tick).to_numpy(np.float64)
    encoded = bars.assign(**{c: np.round(bars[c].to_numpy() / per_row).astype(np.int64)
                             for c in PRICE_COLUMNS})
    encoded["volume"] = np.round(bars["volume"].to_numpy() * _VOLUME_SCALE).astype(np.int64)
    table = pa.Table.from_pandas(encoded, preserve_index=False)
    meta = {"seed": seed, "tick": tick, "volume_scale": _VOLUME_SCALE,
            "regime_start": str(regimes.index[0]),
            "regime_state": [REGIME_NAMES.index(r) for r in regimes["regime"]],
            "regime_direction": regimes["direction"].tolist()}
    table = table.replace_schema_metadata({b"alphatrade_lab": json.dumps(meta).encode()})
    pq.write_table(table, path, compression="zstd", compression_level=19,
                   use_dictionary=["symbol"],
                   column_encoding={c: "DELTA_BINARY_PACKED" for c in BAR_COLUMNS if c != "symbol"})
    return path


def load_sample(symbols: list[str] | None = None) -> pd.DataFrame:
    """The embedded sample market: one year of 1-minute bars for five correlated symbols.

    A 24/7 calendar, 2024-01-01 to 2024-12-30 UTC, generated by :func:`synthetic`
    with ``seed=SAMPLE_SEED`` (see its docstring for the model). Validated on load;
    :func:`sample_regimes` gives the regime of each day.

    Parameters
    ----------
    symbols
        Keep only these symbols (default: all of ``AAA`` to ``EEE``).

    Examples
    --------
    >>> bars = load_sample(["AAA"])
    >>> bars["symbol"].unique().tolist(), str(bars["timestamp"].dtype)
    (['AAA'], 'datetime64[ns, UTC]')
    """
    filters = [("symbol", "in", list(symbols))] if symbols is not None else None
    table = pq.read_table(sample_path(), filters=filters)
    meta = json.loads(table.schema.metadata[b"alphatrade_lab"])
    bars = table.to_pandas()
    codes, uniques = pd.factorize(bars["symbol"])
    per_row = np.array([meta["tick"][sym] for sym in uniques], dtype=np.float64)[codes]
    for col in PRICE_COLUMNS:
        bars[col] = bars[col].to_numpy(np.float64) * per_row
    bars["volume"] = bars["volume"].to_numpy(np.float64) / meta["volume_scale"]
    if symbols is not None:
        unknown = sorted(set(symbols) - set(bars["symbol"].unique()))
        if unknown:
            raise DataError(f"{sample_path()}, column 'symbol': no symbols {unknown} "
                            f"in the sample (it has {list(SYMBOLS)})")
    return validate(bars, source=str(sample_path()))


def sample_regimes() -> pd.DataFrame:
    """The regime of each day of the sample market (see :func:`synthetic`).

    >>> bool(sample_regimes()["regime"].isin(REGIME_NAMES).all())
    True
    """
    meta = json.loads(pq.read_schema(sample_path()).metadata[b"alphatrade_lab"])
    state = np.asarray(meta["regime_state"])
    days = pd.date_range(pd.Timestamp(meta["regime_start"]), periods=len(state), freq="1D")
    return _regime_frame(days, state, np.asarray(meta["regime_direction"]))
