"""alphatrade_lab: a research toolkit for quantitative trading.

Subpackages are imported on first use, so ``import alphatrade_lab`` stays fast and a
script that only needs the data layer does not compile the backtest kernels.

>>> import alphatrade_lab as atl
>>> bars = atl.data.load_sample()
>>> sorted(bars.columns) == sorted(atl.data.BAR_COLUMNS)
True
"""

from importlib import import_module

from alphatrade_lab.errors import AlphaTradeError, AlphaTradeWarning, DataError

_SUBPACKAGES = ("alerts", "backtest", "data", "errors", "features", "live", "models",
               "monitoring", "pipeline", "risk", "rl", "sentiment", "service", "signals",
               "store", "testing")

__all__ = ["AlphaTradeError", "AlphaTradeWarning", "DataError", "__version__", *_SUBPACKAGES]


def _version() -> str:
    # importlib.metadata costs 0.1-0.2 s to import: only when the version is asked for
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("alphatrade-lab")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        globals()["__version__"] = value = _version()
        return value
    if name in _SUBPACKAGES:
        module = import_module(f"alphatrade_lab.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'alphatrade_lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
