"""Figures that show themselves in a notebook without pyplot.

A :class:`matplotlib.figure.Figure` made directly (not through pyplot) works headless and
is never left open in pyplot's registry, but IPython displays it only after
``%matplotlib inline`` has registered a formatter for figures. :class:`NotebookFigure`
carries its own PNG representation, so a plot returned as a cell's last expression shows
in Jupyter by itself (and once: pyplot does not know the figure, so it is not shown again
at the end of the cell).

>>> fig = NotebookFigure(figsize=(2, 1))
>>> _ = fig.subplots().plot([1, 2, 3])
>>> fig._repr_png_()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure

__all__ = ["NotebookFigure"]


class NotebookFigure(Figure):
    """A :class:`~matplotlib.figure.Figure` that IPython renders as a PNG."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png")
        return buf.getvalue()
