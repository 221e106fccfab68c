"""What every step of the research job shares: its inputs (:class:`Context`) and its
output (:class:`StepResult`).

A step is a function ``step(ctx: Context) -> StepResult``. It computes, records what
belongs in the lab store through :class:`~alphatrade_lab.store.LabStore`'s ``record_*``
methods, and returns its report lines with the frames and figures behind them; the
runner writes those next to ``report.md`` (``<name>.csv``, ``<name>.png``). A later step
reads an earlier one's results from ``ctx.results``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Context", "StepResult", "md_table", "new_run_dir"]


def new_run_dir(root: str | Path, prefix: str = "demo") -> Path:
    """A new folder ``root/<prefix>-<UTC time>`` (with a counter if that exists).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     a, b = new_run_dir(d), new_run_dir(d)
    ...     a != b and a.is_dir() and b.name.startswith(a.name)
    True
    """
    root = Path(root)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = root / f"{prefix}-{stamp}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = root / f"{prefix}-{stamp}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir


def md_table(frame: pd.DataFrame, fmt: str = "{:,.4f}", **to_string: Any) -> str:
    """A frame as a fixed-width block for a Markdown report.

    >>> print(md_table(pd.DataFrame({"x": [1.5]})))
    ```
           x
    0 1.5000
    ```
    """
    return ("```\n" + frame.to_string(float_format=fmt.format, **to_string) + "\n```")


@dataclass
class StepResult:
    """One step's output.

    Attributes
    ----------
    lines
        Markdown lines of the report (images refer to ``<figure name>.png``).
    frames
        Tables, written as ``<name>.csv`` (with the index unless it is an unnamed range).
    figures
        matplotlib figures, written as ``<name>.png`` and closed.
    values
        Anything later steps or callers need (a portfolio, a run id, a bundle...).
    """

    lines: list[str]
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def save(self, run_dir: Path, dpi: int = 110) -> None:
        """Write the frames and figures into ``run_dir``; close the figures."""
        import matplotlib.pyplot as plt

        for name, frame in self.frames.items():
            plain = isinstance(frame.index, pd.RangeIndex) and frame.index.name is None
            frame.to_csv(run_dir / f"{name}.csv", index=not plain)
        for name, fig in self.figures.items():
            fig.savefig(run_dir / f"{name}.png", dpi=dpi)
            plt.close(fig)


@dataclass
class Context:
    """The inputs of a run, shared by its steps.

    Attributes
    ----------
    bars
        The long-form minute bars (the embedded sample in the demo).
    run_dir
        The run's folder (report, tables, plots, the model bundle).
    store_path
        The DuckDB lab store.
    echo
        Where progress lines go.
    env
        Environment of the alert sinks (``None``: ``os.environ``).
    results
        Results of the steps run so far, by step name.
    """

    bars: pd.DataFrame
    run_dir: Path
    store_path: Path
    echo: Callable[[str], Any] = print
    env: dict[str, str] | None = None
    results: dict[str, StepResult] = field(default_factory=dict)

    @cached_property
    def hourly(self) -> pd.DataFrame:
        """The bars resampled to one hour."""
        from alphatrade_lab import data

        return data.resample(self.bars, "1h")

    @cached_property
    def close(self) -> pd.DataFrame:
        """Hourly closes, one column per symbol."""
        from alphatrade_lab import data

        return data.to_wide(self.hourly, "close")

    @cached_property
    def store(self):
        """The lab store at :attr:`store_path` (created or migrated on first use)."""
        from alphatrade_lab.store import LabStore

        return LabStore(self.store_path)
