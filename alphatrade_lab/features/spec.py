"""The parameters of the technical features, as a value that can be stored and replayed."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["FeatureSpec"]

_INT_TUPLES = ("return_horizons", "vol_windows", "ma_windows")
_INTS = {  # name: smallest allowed value
    "rsi_window": 1,
    "macd_fast": 1,
    "macd_slow": 2,
    "macd_signal": 1,
    "atr_window": 1,
    "bb_window": 2,
    "volume_window": 2,
    "skew_window": 3,
}
_TUPLE_MIN = {"return_horizons": 1, "vol_windows": 2, "ma_windows": 1}
SPEC_VERSION = 1


def _fail(name: str, value: Any, what: str) -> None:
    raise ValueError(f"FeatureSpec argument {name!r}: {what} (got {value!r})")


def _as_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        _fail(name, value, "must be a whole number")
    if value < minimum:
        _fail(name, value, f"must be >= {minimum}")
    return int(value)


@dataclass(frozen=True)
class FeatureSpec:
    """The windows of :func:`~alphatrade_lab.features.technical`, frozen and JSON-able.

    Store ``spec.to_dict()`` with a model and rebuild the same features in
    production with ``FeatureSpec.from_dict(d).compute(bars)``.

    Parameters
    ----------
    return_horizons
        Horizons (bars) of the log returns ``ret_{h}``.
    vol_windows
        Windows of the rolling volatility ``vol_{w}`` (sample std of 1-bar log returns).
    ma_windows
        Windows of the moving averages in ``ma_dist_{w}`` (close / SMA - 1).
    rsi_window
        Wilder RSI period (``rsi_{w}``).
    macd_fast, macd_slow, macd_signal
        EMA spans of MACD (``macd``, ``macd_signal``, ``macd_hist``).
    atr_window
        Wilder ATR period (``atr_{w}``).
    bb_window, bb_k
        Bollinger window and band width in population standard deviations
        (``bb_pctb_{w}``).
    volume_window
        Window of the volume z-score ``volume_z_{w}`` (sample std).
    skew_window
        Window of the rolling skew of 1-bar log returns ``skew_{w}``.

    Raises
    ------
    ValueError
        Naming the argument, for a non-positive or non-integer window, an empty or
        repeated list, ``macd_fast >= macd_slow`` or ``bb_k <= 0``.

    Examples
    --------
    >>> spec = FeatureSpec(ma_windows=(10, 30), rsi_window=7)
    >>> FeatureSpec.from_dict(spec.to_dict()) == spec
    True
    >>> spec.feature_names[:4]
    ['ret_1', 'ret_5', 'ret_15', 'ret_60']
    >>> FeatureSpec(rsi_window=0)
    Traceback (most recent call last):
    ...
    ValueError: FeatureSpec argument 'rsi_window': must be >= 1 (got 0)
    """

    return_horizons: tuple[int, ...] = (1, 5, 15, 60)
    vol_windows: tuple[int, ...] = (20, 60)
    ma_windows: tuple[int, ...] = (20, 50, 200)
    rsi_window: int = 14
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    atr_window: int = 14
    bb_window: int = 20
    bb_k: float = 2.0
    volume_window: int = 20
    skew_window: int = 60

    def __post_init__(self) -> None:
        for name in _INT_TUPLES:
            value = getattr(self, name)
            if isinstance(value, int | float | str) or value is None:
                value = (value,)
            items = tuple(_as_int(name, v, _TUPLE_MIN[name]) for v in value)
            if not items:
                _fail(name, value, "must not be empty")
            if len(set(items)) != len(items):
                _fail(name, value, "has repeated values")
            object.__setattr__(self, name, items)
        for name, minimum in _INTS.items():
            object.__setattr__(self, name, _as_int(name, getattr(self, name), minimum))
        if self.macd_fast >= self.macd_slow:
            _fail("macd_fast", self.macd_fast, f"must be < macd_slow ({self.macd_slow})")
        k = self.bb_k
        if isinstance(k, bool) or not isinstance(k, int | float) or not k > 0:
            _fail("bb_k", k, "must be a positive number")
        object.__setattr__(self, "bb_k", float(k))

    @property
    def feature_names(self) -> list[str]:
        """The feature columns, in output order."""
        names = [f"ret_{h}" for h in self.return_horizons]
        names += [f"vol_{w}" for w in self.vol_windows]
        names += [f"ma_dist_{w}" for w in self.ma_windows]
        names += [f"rsi_{self.rsi_window}", "macd", "macd_signal", "macd_hist",
                  f"atr_{self.atr_window}", f"bb_pctb_{self.bb_window}",
                  f"volume_z_{self.volume_window}", "hl_range", f"skew_{self.skew_window}"]
        return names

    @property
    def warmup(self) -> int:
        """Rows of a symbol before every feature can be defined (the longest warm-up)."""
        return max(max(self.return_horizons), max(self.vol_windows), max(self.ma_windows) - 1,
                   self.rsi_window, self.macd_slow + self.macd_signal - 2, self.atr_window,
                   self.bb_window - 1, self.volume_window - 1, self.skew_window)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (lists for the tuples) with the spec's kind and version."""
        out: dict[str, Any] = {"kind": "technical", "version": SPEC_VERSION}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def to_json(self) -> str:
        """``json.dumps(self.to_dict())``."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        """Rebuild a spec from :meth:`to_dict` output (unknown keys are an error)."""
        d = dict(d)
        kind = d.pop("kind", "technical")
        version = d.pop("version", SPEC_VERSION)
        if kind != "technical":
            raise ValueError(f"FeatureSpec.from_dict: kind {kind!r} is not 'technical'")
        if version != SPEC_VERSION:
            raise ValueError(f"FeatureSpec.from_dict: unsupported version {version!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"FeatureSpec.from_dict: unknown keys {unknown}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> FeatureSpec:
        """A copy with some parameters changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def compute(self, bars: pd.DataFrame) -> pd.DataFrame:
        """``technical(bars, spec=self)``."""
        from alphatrade_lab.features.technical import technical

        return technical(bars, spec=self)
