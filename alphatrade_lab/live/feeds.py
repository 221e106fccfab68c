"""Feeds of closed bars, and the guard that keeps bad bars away from the engine.

A feed is an iterable of :class:`~alphatrade_lab.live.orders.Bar` in time order (bars of
one timestamp together, symbols in sorted order), possibly with ``None`` between them: a
``None`` says "nothing more for now", so the engine processes what it holds without
waiting for the next timestamp (a polling feed yields one after every poll).

- :class:`ReplayFeed` replays stored bars (a long-form frame, a CSV/Parquet/DuckDB file or
  a DuckDB query), as fast as possible or ``speed`` times real time.
- :class:`PollingFeed` polls a broker's bars endpoint (a
  :class:`~alphatrade_lab.live.brokers.BarSource`) and yields each bar once it has closed.

:class:`BarGuard` checks each bar before the engine sees it: a bar that is a duplicate,
out of order, late (its timestamp was already processed) or of a symbol the run does not
trade is skipped with a :class:`~alphatrade_lab.errors.FeedWarning` and reported; a gap
(a symbol's bar missing) is reported and the bar used.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.data import bar_length, load, validate
from alphatrade_lab.data.duckdb_io import check_select, connect
from alphatrade_lab.errors import DataError, FeedError, FeedWarning
from alphatrade_lab.live.brokers.base import BarSource
from alphatrade_lab.live.orders import Bar

__all__ = ["BarGuard", "FeedEvent", "PollingFeed", "ReplayFeed", "bars_of"]


def bars_of(frame: pd.DataFrame, chunk: int = 8192) -> Iterator[Bar]:
    """The rows of a validated long-form frame as bars, in (timestamp, symbol) order
    (timestamps and numbers boxed a chunk at a time: memory stays small for long replays)."""
    frame = frame.sort_values(["timestamp", "symbol"], kind="stable")
    ts = frame["timestamp"].array
    ns = ts.asi8
    cols = [frame[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume")]
    symbols = frame["symbol"].astype(str).to_numpy()
    for lo in range(0, len(frame), chunk):
        hi = lo + chunk
        # the symbols of one timestamp share its (immutable) Timestamp: boxed once
        first = np.flatnonzero(np.diff(ns[lo:hi], prepend=ns[lo] - 1))
        boxed = list(ts[lo:hi][first])
        counts = np.diff(first, append=min(hi, len(ns)) - lo).tolist()
        stamps = [t for t, k in zip(boxed, counts, strict=True) for _ in range(k)]
        yield from map(Bar._make, zip(stamps, symbols[lo:hi].tolist(),
                                      *(c[lo:hi].tolist() for c in cols), strict=True))


class ReplayFeed:
    """Replay stored bars as a live feed.

    Parameters
    ----------
    bars
        Long-form bars (validated here), or a path that :func:`atl.data.load` reads.
    speed
        None: as fast as the engine takes them. A number: that many times real time (the
        wait between two timestamps is their distance divided by ``speed``).
    start, end
        Only bars opened at or after ``start`` and before ``end``.
    symbols
        Only these symbols.

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> feed = ReplayFeed(atl.data.load_sample(["AAA", "BBB"]).groupby("symbol").head(2))
    >>> [(b.symbol, b.timestamp.minute) for b in feed]
    [('AAA', 0), ('BBB', 0), ('AAA', 1), ('BBB', 1)]
    """

    def __init__(self, bars: pd.DataFrame | str | Path, *, speed: float | None = None,
                 start: Any = None, end: Any = None, symbols: Iterable[str] | None = None):
        if isinstance(bars, (str, Path)):
            frame = load(bars)
            self.source = str(bars)
        elif isinstance(bars, pd.DataFrame):
            frame = validate(bars)
            self.source = "<frame>"
        else:
            raise FeedError(f"ReplayFeed: expected long-form bars or a file path, got "
                            f"{type(bars).__name__}")
        if symbols is not None:
            frame = frame[frame["symbol"].isin(list(symbols))]
        if start is not None:
            frame = frame[frame["timestamp"] >= _utc(start)]
        if end is not None:
            frame = frame[frame["timestamp"] < _utc(end)]
        if speed is not None and not speed > 0:
            raise ValueError(f"ReplayFeed: speed must be > 0 or None, got {speed!r}")
        self.frame = frame.reset_index(drop=True)
        self.speed = speed
        self._stop = threading.Event()

    @classmethod
    def from_duckdb(cls, path: str | Path, sql: str, **kwargs: Any) -> ReplayFeed:
        """Bars from a SELECT on a DuckDB file (opened read-only; the query is checked to
        only read, and runs in a read-only transaction)."""
        con = connect(path, read_only=True)
        try:
            check_select(con, sql)
            con.execute("BEGIN TRANSACTION READ ONLY")
            frame = con.sql(sql).df()
            con.execute("ROLLBACK")
        finally:
            con.close()
        feed = cls(validate(frame, source=f"{path}: query"), **kwargs)
        feed.source = f"{path}: query"
        return feed

    @property
    def symbols(self) -> list[str]:
        return sorted(self.frame["symbol"].astype(str).unique())

    @property
    def bar_length(self) -> pd.Timedelta | None:
        try:
            return bar_length(self.frame)
        except ValueError:
            return None

    def stop(self) -> None:
        """End the replay after the bar being yielded (another thread may call this)."""
        self._stop.set()

    def __len__(self) -> int:
        return len(self.frame)

    def __iter__(self) -> Iterator[Bar]:
        self._stop.clear()
        last: pd.Timestamp | None = None
        t0 = time.monotonic()
        first: pd.Timestamp | None = None
        for bar in bars_of(self.frame):
            if self._stop.is_set():
                return
            if self.speed is not None and bar.timestamp != last:
                first = first if first is not None else bar.timestamp
                due = t0 + (bar.timestamp - first).total_seconds() / self.speed
                while (wait := due - time.monotonic()) > 0:
                    if self._stop.wait(min(wait, 0.5)):
                        return
                last = bar.timestamp
            yield bar


class PollingFeed:
    """Closed bars from a broker's bars endpoint, polled every ``interval`` seconds.

    Parameters
    ----------
    source
        A :class:`~alphatrade_lab.live.brokers.BarSource` (``fetch_bars``).
    symbols, timeframe
        What to ask for; ``bar`` is the bar length (``timeframe`` as a Timedelta, e.g. "1min").
    start
        The first bar wanted (default: the current bar's open minus ``warmup`` bars).
    interval, grace
        Seconds between polls; seconds after a bar's close before it counts as closed
        (the provider needs a moment to publish it).
    clock
        Returns the current time as a UTC Timestamp (tests pass a fake clock).
    max_polls
        Stop after this many polls (None: until :meth:`stop`).
    """

    def __init__(self, source: BarSource, symbols: Iterable[str], *, timeframe: str = "1Min",
                 bar: str | pd.Timedelta = "1min", start: Any = None, warmup: int = 0,
                 interval: float = 5.0, grace: float = 2.0,
                 clock: Callable[[], pd.Timestamp] | None = None,
                 max_polls: int | None = None):
        self.source = source
        self.symbols = sorted(str(s) for s in symbols)
        if not self.symbols:
            raise FeedError("PollingFeed: no symbols")
        self.timeframe = timeframe
        self.bar = pd.Timedelta(bar)
        self.clock = clock or (lambda: pd.Timestamp.now(tz="UTC"))
        now = self.clock()
        self.start = (_utc(start) if start is not None
                      else now.floor(self.bar) - self.bar * int(warmup))
        self.interval, self.grace, self.max_polls = float(interval), float(grace), max_polls
        self.errors = 0
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    @property
    def bar_length(self) -> pd.Timedelta:
        return self.bar

    def poll(self, since: pd.Timestamp) -> list[Bar]:
        """Bars opened at or after ``since`` that have closed (``grace`` seconds ago)."""
        frame = self.source.fetch_bars(self.symbols, since, self.timeframe)
        if frame is None or len(frame) == 0:
            return []
        frame = validate(frame, source=f"{type(self.source).__name__}.fetch_bars",
                         sort=True, drop_duplicates="last")
        closed = frame["timestamp"] + self.bar <= self.clock() - pd.Timedelta(seconds=self.grace)
        return list(bars_of(frame[closed & (frame["timestamp"] >= since)]))

    def __iter__(self) -> Iterator[Bar | None]:
        self._stop.clear()
        since, polls = self.start, 0
        while not self._stop.is_set():
            try:
                bars = self.poll(since)
            except (DataError, OSError, RuntimeError) as exc:
                self.errors += 1
                warnings.warn(f"PollingFeed: poll failed ({type(exc).__name__}: {exc}); "
                              "trying again", FeedWarning, stacklevel=2)
                bars = []
            yield from bars
            if bars:
                since = max(b.timestamp for b in bars) + self.bar
            yield None
            polls += 1
            if self.max_polls is not None and polls >= self.max_polls:
                return
            self._stop.wait(self.interval)


@dataclass(frozen=True)
class FeedEvent:
    """A bar the guard skipped or a gap it saw."""

    kind: str  # duplicate, out_of_order, late, unknown_symbol, gap
    symbol: str
    timestamp: pd.Timestamp
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "symbol": self.symbol, "timestamp": self.timestamp,
                "detail": self.detail}


class BarGuard:
    """Decide, bar by bar, whether the engine may act on it.

    Parameters
    ----------
    symbols
        The symbols the run trades (None: any symbol).
    bar
        The bar length, to report gaps (None: gaps are not checked).
    """

    def __init__(self, symbols: Iterable[str] | None = None,
                 bar: pd.Timedelta | None = None):
        self.symbols = None if symbols is None else set(map(str, symbols))
        self.bar = bar
        self._bar_ns = 0 if bar is None else pd.Timedelta(bar).value
        self.last: dict[str, int] = {}  # symbol -> its last bar's time in nanoseconds
        self._processed: int | None = None

    def check(self, bar: Bar) -> FeedEvent | None:
        """None when ``bar`` may be used, else why it is skipped (a gap is an event the
        caller records while still using the bar: its ``kind`` is ``"gap"``)."""
        sym = bar.symbol
        ts = bar.timestamp.value  # nanoseconds: integer comparisons on the hot path
        if self.symbols is not None and sym not in self.symbols:
            return FeedEvent("unknown_symbol", sym, bar.timestamp,
                             f"symbol {sym!r} is not traded by this run")
        prev = self.last.get(sym)
        if prev is not None and ts <= prev:
            when = pd.Timestamp(prev, tz="UTC")
            if ts == prev:
                return FeedEvent("duplicate", sym, bar.timestamp,
                                 f"a second bar for {sym} at {bar.timestamp}")
            return FeedEvent("out_of_order", sym, bar.timestamp,
                             f"bar at {bar.timestamp} after the one at {when}")
        if self._processed is not None and ts <= self._processed:
            return FeedEvent("late", sym, bar.timestamp, f"bar at {bar.timestamp} arrived "
                             f"after {pd.Timestamp(self._processed, tz='UTC')} was processed")
        if not (bar.close > 0 and bar.open > 0 and math.isfinite(bar.close)
                and math.isfinite(bar.open)):
            return FeedEvent("bad_price", sym, bar.timestamp,
                             f"open {bar.open!r}, close {bar.close!r}")
        self.last[sym] = ts
        if prev is not None and self._bar_ns and ts - prev > self._bar_ns:
            missing = (ts - prev) // self._bar_ns - 1
            return FeedEvent("gap", sym, bar.timestamp, f"{missing} bar(s) missing after "
                             f"{pd.Timestamp(prev, tz='UTC')}")
        return None

    @property
    def processed(self) -> pd.Timestamp | None:
        """The last timestamp the engine completed."""
        return None if self._processed is None else pd.Timestamp(self._processed, tz="UTC")

    @processed.setter
    def processed(self, t: pd.Timestamp | None) -> None:
        self._processed = None if t is None else t.value

    @staticmethod
    def warn(event: FeedEvent) -> None:
        if event.kind != "gap":
            warnings.warn(f"skipped a bar: {event.detail} ({event.kind})", FeedWarning,
                          stacklevel=3)


def _utc(t: Any) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
