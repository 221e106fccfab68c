"""Exceptions and warnings raised by alphatrade_lab."""

from __future__ import annotations

from typing import Any

from alphatrade_lab.redact import redact

__all__ = ["DataError", "RepairWarning", "StoreError", "UnknownNameError"]


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


class UnknownNameError(DataError, KeyError):
    """A name (a metric, a column, a group) that is not there.

    Also a ``KeyError``, so code that caught the lookup error keeps working; its
    message lists the names that are there and the closest match.
    """

    __str__ = ValueError.__str__


def unknown_name(kind: str, name: Any, known: Any, where: str) -> UnknownNameError:
    """The error for ``name`` missing from ``known``, suggesting a match that differs
    only in case (``"Sharpe"`` for ``"sharpe"``) or the list of what is there.

    >>> str(unknown_name("metric", "Sharpe", ["total_return", "sharpe"], "the sweep results"))
    "no metric 'Sharpe' in the sweep results: did you mean 'sharpe'? (there: total_return, sharpe)"
    """
    known = list(known)
    folded = [k for k in known if str(k).lower() == str(name).lower()]
    hint = f"did you mean {folded[0]!r}? " if folded else ""
    listed = ", ".join(str(k) for k in known[:30]) + (", ..." if len(known) > 30 else "")
    return UnknownNameError(f"no {kind} {name!r} in {where}: {hint}(there: {listed})")


class RepairWarning(UserWarning):
    """An explicit repair option (``sort=True``, ``drop_duplicates=...``) changed the data."""
