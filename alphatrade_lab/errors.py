"""Exceptions and warnings raised by alphatrade_lab."""

from __future__ import annotations

__all__ = ["DataError", "RepairWarning"]


class DataError(ValueError):
    """Bad input data.

    The message names the source (file or ``<frame>``), the column and the
    first offending row, so the problem can be found without a debugger.
    """


class RepairWarning(UserWarning):
    """An explicit repair option (``sort=True``, ``drop_duplicates=...``) changed the data."""
