"""Strategies: what the engine asks, on each closed bar, for the signals of that bar.

- :class:`SignalStrategy` runs the vectorized function a researcher backtests on a
  window of the last ``lookback`` bars and keeps the last row: the entries and exits that
  :func:`atl.backtest.from_signals` would see at that bar.
- :class:`ModelStrategy` scores an exported bundle bar by bar through
  :class:`~alphatrade_lab.models.StreamingScorer`, with the rule of
  :func:`atl.models.signals` (``rule="argmax"`` for an exported policy:
  :func:`alphatrade_lab.rl.export_policy`).

Both return one :class:`Signal` per bar given.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError
from alphatrade_lab.live.orders import Bar
from alphatrade_lab.models import ModelBundle, StreamingScorer, load_bundle

__all__ = ["ModelStrategy", "Signal", "SignalStrategy", "Strategy"]

_COLUMNS = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]


@dataclass(frozen=True)
class Signal:
    """A bar's signals for one symbol: ``entry``/``exit`` as ``from_signals`` takes them for
    the engine's direction; ``direction`` (-1/0/1) and ``confidence`` when a model gave them."""

    timestamp: pd.Timestamp
    symbol: str
    entry: bool
    exit: bool
    direction: int = 0
    confidence: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"timestamp": self.timestamp, "symbol": self.symbol, "entry": self.entry,
                "exit": self.exit, "direction": self.direction, "confidence": self.confidence}


class Strategy(Protocol):
    """``on_bars(bars, direction)``: the signals of these closed bars (one timestamp)."""

    name: str
    lookback: int

    def on_bars(self, bars: list[Bar], direction: str) -> list[Signal]:
        ...


def _row(frame: Any, t: pd.Timestamp, symbols: list[str], what: str) -> dict[str, bool]:
    if isinstance(frame, pd.Series):
        if len(symbols) != 1:
            raise DataError(f"SignalStrategy: fn returned a Series of {what} for "
                            f"{len(symbols)} symbols; return a timestamp x symbol frame")
        value = frame.get(t, False)
        return {symbols[0]: bool(value) if not pd.isna(value) else False}
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"SignalStrategy: fn must return (entries, exits) frames, got "
                        f"{type(frame).__name__} for {what}")
    if t not in frame.index:
        return dict.fromkeys(symbols, False)
    row = frame.loc[t]
    return {s: bool(row[s]) if s in row.index and not pd.isna(row[s]) else False
            for s in symbols}


class SignalStrategy:
    """The researcher's vectorized signal function, evaluated on the last closed bar.

    Parameters
    ----------
    fn
        ``fn(bars) -> (entries, exits)``: long-form bars in, boolean timestamp × symbol
        frames out (a Series for a single symbol), as passed to ``from_signals``. It must
        be causal (the lookahead harness checks it) and need at most ``lookback`` bars.
    lookback
        Bars per symbol kept and passed to ``fn``.
    name
        Shown in the store and the dashboard.

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> def breakout(bars):
    ...     close = atl.data.to_wide(bars, "close")
    ...     return close > close.shift(1), close < close.shift(1)
    >>> s = SignalStrategy(breakout, lookback=2)
    >>> t0, t1 = pd.Timestamp("2024-01-02 09:30", tz="UTC"), pd.Timestamp("2024-01-02 09:31",
    ...                                                                   tz="UTC")
    >>> _ = s.on_bars([Bar(t0, "AAA", 10, 10, 10, 10, 1)], "longonly")
    >>> [(x.entry, x.exit) for x in s.on_bars([Bar(t1, "AAA", 11, 11, 11, 11, 1)], "longonly")]
    [(True, False)]
    """

    def __init__(self, fn: Callable[[pd.DataFrame], tuple[Any, Any]], lookback: int, *,
                 name: str | None = None):
        if not callable(fn):
            raise TypeError(f"SignalStrategy: fn must be callable, got {type(fn).__name__}")
        if int(lookback) < 1:
            raise ValueError(f"SignalStrategy: lookback must be >= 1, got {lookback!r}")
        self.fn = fn
        self.lookback = int(lookback)
        self.name = name or getattr(fn, "__name__", "signal_fn")
        self._windows: dict[str, deque[Bar]] = {}

    def window(self) -> pd.DataFrame:
        """The long-form bars ``fn`` sees now (sorted by symbol and time)."""
        rows = [b for s in sorted(self._windows) for b in self._windows[s]]
        frame = pd.DataFrame.from_records(rows, columns=_COLUMNS)
        if len(frame):
            frame["timestamp"] = pd.DatetimeIndex(frame["timestamp"])
        return frame

    def on_bars(self, bars: list[Bar], direction: str) -> list[Signal]:
        for b in bars:
            w = self._windows.get(b.symbol)
            if w is None:
                w = self._windows[b.symbol] = deque(maxlen=self.lookback)
            w.append(b)
        if not bars:
            return []
        t = bars[0].timestamp
        symbols = [b.symbol for b in bars]
        out = self.fn(self.window())
        if not (isinstance(out, tuple) and len(out) == 2):
            raise DataError(f"SignalStrategy: {self.name} must return (entries, exits), got "
                            f"{type(out).__name__}")
        entries = _row(out[0], t, symbols, "entries")
        exits = _row(out[1], t, symbols, "exits")
        return [Signal(t, s, entries[s], exits[s], int(entries[s]) - int(exits[s]))
                for s in symbols]


class ModelStrategy:
    """An exported model bundle, scored bar by bar.

    Parameters
    ----------
    bundle
        A :class:`~alphatrade_lab.models.ModelBundle` or the path of an exported one
        (loaded with :func:`atl.models.load_bundle`: hash-checked, no pickle).
    threshold, exit_on_flat
        As in :func:`atl.models.signals`: long-only entries where the model says up,
        exits where it does not (``exit_on_flat``) or says down; short-only mirrors it;
        ``direction="both"`` enters long on up and short on down (a flat direction holds
        there: the engine has no signal that closes without reversing).
    rule
        ``"threshold"`` or ``"argmax"`` (the most probable class decides; with
        ``exit_on_flat`` a flat answer closes a long-only or short-only position), as in
        :func:`atl.models.signals`.
    compiled
        Score with the numba-compiled model when its family allows (see
        :class:`~alphatrade_lab.models.StreamingScorer`).
    """

    def __init__(self, bundle: ModelBundle | str | Path, threshold: float = 0.5, *,
                 exit_on_flat: bool = True, compiled: bool = True, name: str | None = None,
                 rule: str = "threshold"):
        if isinstance(bundle, (str, Path)):
            bundle = load_bundle(bundle)
        if not isinstance(bundle, ModelBundle):
            raise TypeError(f"ModelStrategy: expected a ModelBundle or a path, got "
                            f"{type(bundle).__name__}")
        self.bundle = bundle
        self.scorer = StreamingScorer(bundle, threshold, exit_on_flat=exit_on_flat,
                                      compiled=compiled, rule=rule)
        self.exit_on_flat = exit_on_flat
        spec = self.scorer.spec
        self.lookback = int(max(max(spec.return_horizons) + 1, max(spec.ma_windows),
                                spec.bb_window, max(spec.vol_windows), spec.skew_window,
                                spec.volume_window, spec.macd_slow + spec.macd_signal))
        self.name = name or f"model:{type(bundle.model).__name__}"
        self._rules: dict[str, dict[int, tuple[bool, bool]]] = {}

    @property
    def model_version(self) -> str:
        return f"{type(self.bundle.model).__name__}@{self.bundle.created}"

    def _rule(self, direction: str) -> dict[int, tuple[bool, bool]]:
        """``(entry, exit)`` for each direction the model can give (-1, 0, 1), as
        :func:`atl.models.signals` has them."""
        rule = self._rules.get(direction)
        if rule is None:
            flat = self.exit_on_flat
            rule = {}
            for d in (-1, 0, 1):
                if direction == "longonly":
                    rule[d] = (d == 1, (d != 1) if flat else (d == -1))
                elif direction == "shortonly":
                    rule[d] = (d == -1, (d != -1) if flat else (d == 1))
                else:
                    rule[d] = (d == 1, d == -1)
            self._rules[direction] = rule
        return rule

    def on_bars(self, bars: list[Bar], direction: str) -> list[Signal]:
        if not bars:
            return []
        times, symbols, _, high, low, close, volume = zip(*bars, strict=True)
        t = np.array([x.value for x in times], dtype=np.int64)
        cols = np.array((high, low, close, volume), dtype=np.float64)
        d_all, conf_all, _ = self.scorer.update_arrays(list(symbols), t, cols[0], cols[1],
                                                       cols[2], cols[3])
        rule = self._rule(direction)
        nan = float("nan")
        return [Signal(ts, sym, *rule[d], d, conf if math.isfinite(conf) else nan)
                for ts, sym, d, conf in zip(times, symbols, d_all.tolist(), conf_all.tolist(),
                                            strict=True)]
