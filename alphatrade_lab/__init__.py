"""alphatrade_lab: a research toolkit for quantitative trading.

Subpackages are imported on first use, so ``import alphatrade_lab`` stays fast and a
script that only needs the data layer does not compile the backtest kernels.

>>> import alphatrade_lab as atl
>>> bars = atl.data.load_sample()
>>> sorted(bars.columns) == sorted(atl.data.BAR_COLUMNS)
True
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from alphatrade_lab.errors import AlphaTradeError, AlphaTradeWarning, DataError

try:
    __version__ = version("alphatrade-lab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_SUBPACKAGES = ("alerts", "backtest", "data", "errors", "features", "models", "monitoring",
               "pipeline", "risk", "signals", "store", "testing")

__all__ = ["AlphaTradeError", "AlphaTradeWarning", "DataError", "__version__", *_SUBPACKAGES]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        module = import_module(f"alphatrade_lab.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'alphatrade_lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
