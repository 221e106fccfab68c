"""A realistic synthetic market and the embedded sample built from it."""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from alphatrade_lab.data.kernels import simulate_log_prices_nb
from alphatrade_lab.data.schema import BAR_COLUMNS, PRICE_COLUMNS, validate
from alphatrade_lab.errors import DataError, UnknownNameError

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


def _regimes(day_of_bar: np.ndarray, bars_per_day: float, kappa_per_bar: float,
             rng: np.random.Generator) -> _Regimes:
    """Markov regimes lasting whole days (mean 10 days), the market trend sign drawn per stretch.

    ``day_of_bar`` numbers each bar's day (or session) from 0, in order; a trend moves
    1% a day, spread over ``bars_per_day`` bars, and mean reversion pulls by
    ``kappa_per_bar`` a bar.
    """
    n_days = int(day_of_bar[-1]) + 1
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
    state = day_state[day_of_bar]
    drift = np.where(state == 1, day_sign[day_of_bar] * 0.01 / bars_per_day, 0.0)
    kappa = np.where(state == 2, kappa_per_bar, 0.0)
    reset = np.zeros(len(day_of_bar), dtype=bool)
    reset[np.searchsorted(day_of_bar, np.flatnonzero(day_start))] = True
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
    missing_rate: float | None = None,
    vol_shift: tuple[float, float, float] = (0.5, 0.65, 2.0),
    return_regimes: bool = False,
    calendar: str | None = None,
    annual_vol: float | Sequence[float] | None = None,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Generate a deterministic, realistic synthetic market of OHLCV bars.

    The calendar is 24/7 (as for crypto assets) by default: every ``freq`` bar of
    every day, UTC, minus a few missing bars. With ``calendar="XNYS"`` (or any other
    ``exchange_calendars`` name) the bars are that exchange's sessions instead:
    one bar per session stamped at the session open (UTC; a bar is stamped with its
    open time, as everywhere in the library) for ``freq="1D"``, or
    intraday bars within each session (a shortened last bar at an early close),
    with weekends and holidays absent. The generating model, per bar t and symbol i:

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
      towards the price at the regime's start with a half-life of 4 hours (2 bars
      for bars longer than 2 hours). On an exchange calendar a day is a session.
    - **Volatility regime change.** Between the fractions ``vol_shift[0]`` and
      ``vol_shift[1]`` of the span every volatility is multiplied by ``vol_shift[2]``.
    - **Gaps.** Price jumps at the open (about one every 4 days per symbol, 1.5%
      standard deviation), isolated missing bars (``missing_rate``) and outages of
      5 minutes to 2 hours (three a year per symbol, none on an exchange calendar),
      after which trading resumes at wherever the price went meanwhile.
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
        Probability that any single bar is missing (default 2e-4 on the 24/7
        calendar, 0 on an exchange calendar, where every session is there).
    vol_shift
        ``(start_fraction, end_fraction, multiplier)`` of the volatility regime change.
    return_regimes
        Also return the regime of each day.
    calendar
        An ``exchange_calendars`` name (``"XNYS"``, ``"XLON"``, ...) whose sessions
        the bars follow; per-bar volatilities are scaled by the bars in that
        calendar's year (about 252 sessions) instead of the 24/7 year.
    annual_vol
        Base annual volatility of every symbol (one number) or of each symbol (one
        per symbol); default 55% to 90%, as for crypto assets (try 0.2 to 0.3 for an
        equity-like market). The volatility clustering and regime change come on top.

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

    Daily bars of the New York Stock Exchange's 2024 sessions (no bar on Christmas):

    >>> nyse = synthetic(n_symbols=1, days=366, freq="1D", calendar="XNYS")
    >>> len(nyse), str(nyse["timestamp"].iloc[0])
    (252, '2024-01-02 14:30:00+00:00')
    >>> bool((nyse["timestamp"].dt.strftime("%m-%d") == "12-25").any())
    False
    """
    if not 1 <= n_symbols <= len(SYMBOLS):
        raise ValueError(f"n_symbols must be between 1 and {len(SYMBOLS)}, not {n_symbols}")
    if days <= 0:
        raise ValueError(f"days must be positive, not {days}")
    vols = np.asarray(_ANNUAL_VOL[:n_symbols] if annual_vol is None else annual_vol,
                      dtype=float)
    if vols.ndim == 0:
        vols = np.full(n_symbols, float(vols))
    if vols.shape != (n_symbols,) or not (np.isfinite(vols) & (vols > 0)).all():
        raise ValueError(f"annual_vol must be a positive number or {n_symbols} of them "
                         f"(one per symbol), not {annual_vol!r}")
    rng = np.random.default_rng(seed)
    step = pd.Timedelta(freq)
    if calendar is None:
        n_bars = int(pd.Timedelta(days=days) / step)
        timestamps = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=n_bars, freq=step)
        per_day = int(pd.Timedelta("1D") / step)
        bars_per_day: float = per_day  # a whole number here; a session mean with a calendar
        day_of_bar = np.repeat(np.arange(-(-n_bars // per_day)), per_day)[:n_bars]
        days_index = pd.date_range(timestamps[0], periods=day_of_bar[-1] + 1, freq="1D")
        bars_per_year = _MINUTES_PER_YEAR * pd.Timedelta("1min") / step
    else:
        timestamps, day_of_bar, days_index, bars_per_year = _session_bars(
            calendar, start, days, step)
        bars_per_day = len(timestamps) / len(days_index)
    if missing_rate is None:
        missing_rate = 2e-4 if calendar is None else 0.0
    n, k = len(timestamps), n_symbols

    df = 5.0
    t_scale = np.sqrt((df - 2.0) / df)
    loading = np.asarray(_FACTOR_LOADING[:k])
    factor = rng.standard_t(df, size=n) * t_scale
    idio = rng.standard_t(df, size=(n, k)) * t_scale
    z = factor[:, None] * loading + idio * np.sqrt(1.0 - loading**2)

    jumps = rng.random((n, k)) < 1.0 / (4 * bars_per_day)
    gap = np.where(jumps, rng.normal(0.0, 0.015, size=(n, k)), 0.0)

    if calendar is not None and step >= pd.Timedelta("1D"):
        vol_mult = volume_mult = np.ones(n)
    else:
        vol_mult, volume_mult = _intraday_profile(timestamps)
    lo, hi, mult = vol_shift
    shift = np.ones(n)
    shift[int(lo * n):int(hi * n)] = mult
    # Mean reversion: a half-life of 4 hours, or 2 bars if bars are longer than 2 hours.
    kappa_per_bar = np.log(2) / max(pd.Timedelta("4h") / step, 2.0)
    regimes = _regimes(day_of_bar, bars_per_day, kappa_per_bar, rng)
    base_sigma = vols / np.sqrt(bars_per_year)
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
    from scipy.signal import lfilter  # lazy: scipy.signal takes over a second to import

    level = lfilter([np.sqrt(1.0 - phi**2) * 0.35], [1.0, -phi], rng.standard_normal((n, k)),
                    axis=0)
    volume = (base_volume * volume_mult[:, None] * excess_vol**0.8 * (0.5 + 0.5 * move)
              * np.exp(level + rng.normal(-0.08, 0.4, size=(n, k))))
    volume = np.round(volume, 3)

    keep = rng.random((n, k)) >= missing_rate
    n_outages = max(1, round(3 * days / 365)) if calendar is None else 0
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
    return bars, _regime_frame(days_index, regimes.day_state, regimes.day_sign)


def _exchange_calendar(name: str, first: pd.Timestamp, last: pd.Timestamp):
    """The ``exchange_calendars`` calendar ``name`` covering the days ``first`` to ``last``."""
    import exchange_calendars as xcals  # imported here: it takes about a second to import

    names = xcals.get_calendar_names(include_aliases=True)
    if name not in names:
        close = difflib.get_close_matches(str(name).upper(), names, n=3, cutoff=0.4)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise UnknownNameError(
            f"synthetic(calendar={name!r}): no such exchange calendar: {hint}"
            "pass an exchange_calendars name such as 'XNYS' (New York), 'XLON' or 'XTKS' "
            "(all names: exchange_calendars.get_calendar_names()), or calendar=None for 24/7 bars")
    return xcals.get_calendar(name, start=first, end=last)


def _session_bars(
    calendar: str, start: str | pd.Timestamp, days: int, step: pd.Timedelta,
) -> tuple[pd.DatetimeIndex, np.ndarray, pd.DatetimeIndex, float]:
    """Bars of the sessions of ``calendar`` dated from ``start`` for ``days`` days.

    Returns the bar timestamps (the session open for daily bars, each bar's open
    within the session for intraday ones, UTC), the session number of each bar,
    the sessions (UTC midnight) and the number of bars in the year from ``start``.
    """
    if step > pd.Timedelta("1D"):
        raise ValueError(f"synthetic(calendar={calendar!r}): freq={step} is longer than a "
                         "session; use freq='1D' (one bar per session) or an intraday freq")
    first = pd.Timestamp(start)
    if first.tz is not None:
        first = first.tz_convert("UTC").tz_localize(None)
    first = first.normalize()
    span_end = first + pd.Timedelta(days=days)
    year_end = first + pd.Timedelta(days=365)
    cal = _exchange_calendar(calendar, first, max(span_end, year_end))
    all_sessions = cal.sessions
    sessions = all_sessions[all_sessions < span_end]
    if len(sessions) == 0:
        raise ValueError(f"synthetic(calendar={calendar!r}): no session between {first.date()} "
                         f"and {span_end.date()}; give more days or another start")
    if step == pd.Timedelta("1D"):
        timestamps = pd.DatetimeIndex(cal.opens.loc[sessions].to_numpy(), tz="UTC")
        day_of_bar = np.arange(len(sessions))
        bars_per_year = float((all_sessions < year_end).sum())
    else:
        year = cal.trading_index(all_sessions[0], all_sessions[all_sessions < year_end][-1],
                                 period=step, intervals=True, closed="left", force=True)
        bars_per_year = float(len(year))
        in_span = cal.trading_index(sessions[0], sessions[-1], period=step, intervals=True,
                                    closed="left", force=True)
        timestamps = pd.DatetimeIndex(in_span.left).tz_convert("UTC")
        opens = pd.DatetimeIndex(cal.opens.loc[sessions]).tz_convert("UTC")
        day_of_bar = np.searchsorted(opens, timestamps, side="right") - 1
    days_index = pd.DatetimeIndex(sessions).tz_localize("UTC").rename("day")
    return timestamps.rename(None), day_of_bar.astype(np.int64), days_index, bars_per_year


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
