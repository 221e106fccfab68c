"""alphatrade_lab: a research toolkit for quantitative trading.

>>> import alphatrade_lab as atl
>>> bars = atl.data.load_sample()
>>> sorted(bars.columns) == sorted(atl.data.BAR_COLUMNS)
True
"""

from importlib.metadata import PackageNotFoundError, version

from alphatrade_lab import data, errors, testing
from alphatrade_lab.errors import DataError

try:
    __version__ = version("alphatrade-lab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["DataError", "__version__", "data", "errors", "testing"]
