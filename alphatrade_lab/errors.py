"""Exceptions and warnings raised by alphatrade_lab."""

from __future__ import annotations

from typing import Any

from alphatrade_lab.redact import redact

__all__ = ["DataError", "RepairWarning", "StoreError"]


class DataError(ValueError):
    """Bad input data.

    The message names the source (file or ``<frame>``), the column and the
    first offending row, so the problem can be found without a debugger. It echoes
    the rejected value, so its text arguments are redacted
    (:func:`alphatrade_lab.redact.redact`): a credential in a data cell is not printed.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class StoreError(DataError):
    """A lab store file cannot be used: corrupt, not a database, unreadable or unwritable."""


class RepairWarning(UserWarning):
    """An explicit repair option (``sort=True``, ``drop_duplicates=...``) changed the data."""
