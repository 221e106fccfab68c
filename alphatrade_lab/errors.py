"""Exceptions and warnings raised by alphatrade_lab.

Every exception is an :class:`AlphaTradeError` and every warning an
:class:`AlphaTradeWarning`, so ``except AlphaTradeError`` catches what the library raises
on purpose; each also keeps the built-in base that says what kind of problem it is
(:class:`DataError` is a ``ValueError``, :class:`StoreLockedError` a ``TimeoutError``).
The one class defined elsewhere, ``alphatrade_lab.data.duckdb_io.ConfigConflictError``,
is also a ``duckdb.ConnectionException``, and defining it here would load DuckDB with
every import of this module.

>>> issubclass(UnknownNameError, AlphaTradeError) and issubclass(UnknownNameError, KeyError)
True
"""

from __future__ import annotations

from typing import Any

from alphatrade_lab.redact import redact

__all__ = [
    "AlertDeliveryError",
    "AlphaTradeError",
    "AlphaTradeWarning",
    "BrokerError",
    "BrokerUnavailable",
    "BundleIntegrityError",
    "DataError",
    "FeatureMismatchWarning",
    "FeedError",
    "FeedWarning",
    "LegacyBundleWarning",
    "LockTimeout",
    "NewsSourceError",
    "OrderRejected",
    "RepairWarning",
    "SchemaVersionError",
    "StoreError",
    "StoreLockedError",
    "StoreUnavailableError",
    "UnknownNameError",
    "UntrustedBundleError",
    "VersionMismatchWarning",
]


class AlphaTradeError(Exception):
    """Base class of every exception alphatrade_lab raises."""


class AlphaTradeWarning(UserWarning):
    """Base class of every warning alphatrade_lab issues."""


class DataError(AlphaTradeError, ValueError):
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


class UntrustedBundleError(DataError):
    """A bundle needs types that are not trusted, or a legacy pickle was not vouched for."""


class BundleIntegrityError(DataError):
    """A bundle's content does not match the SHA-256 recorded at export."""


class SchemaVersionError(AlphaTradeError, RuntimeError):
    """The store file was written by a newer schema version than this code knows."""


class LockTimeout(AlphaTradeError, TimeoutError):
    """Another process held a lab lock file for longer than the allowed wait."""


class StoreLockedError(AlphaTradeError, TimeoutError):
    """Another process held the store file's lock for longer than ``lock_timeout``."""


class StoreUnavailableError(AlphaTradeError, ConnectionError):
    """The store's database server cannot be reached: down, refusing connections, or it
    dropped the connection mid-write (nothing of that write was committed)."""


class AlertDeliveryError(AlphaTradeError, RuntimeError):
    """A sink could not deliver an alert; the message names the sink, never a secret."""

    def __init__(self, sink: str, reason: str, attempts: int = 0):
        self.sink, self.reason, self.attempts = sink, reason, attempts
        tries = f" after {attempts} attempt{'s' * (attempts != 1)}" if attempts else ""
        super().__init__(f"{sink}: {reason}{tries}")


class BrokerError(AlphaTradeError, RuntimeError):
    """A broker could not do what was asked; the message names the broker and the order,
    never a key."""


class OrderRejected(BrokerError):
    """The broker refused an order (insufficient buying power, unknown symbol, ...):
    a recorded, alerted event for the engine, not a crash."""

    def __init__(self, message: str, *, reason: str = "rejected", client_order_id: str = ""):
        self.reason, self.client_order_id = reason, client_order_id
        super().__init__(message)


class BrokerUnavailable(BrokerError):
    """The broker did not answer usably after the allowed retries (timeouts, 5xx, 429)."""


class FeedError(DataError):
    """A bar feed cannot go on: a source that is not bars, a symbol the run does not know."""


class NewsSourceError(FeedError):
    """A news source cannot be read: its API refused the key or the request, retries ran
    out, a feed could not be fetched."""


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


class RepairWarning(AlphaTradeWarning):
    """An explicit repair option (``sort=True``, ``drop_duplicates=...``) changed the data."""


class FeedWarning(AlphaTradeWarning):
    """A bar was skipped (out of order, duplicate, late) or a gap was seen in a feed."""


class FeatureMismatchWarning(AlphaTradeWarning):
    """Input features differ from the bundle's: some were filled or dropped."""


class VersionMismatchWarning(AlphaTradeWarning):
    """A bundle was saved with another scikit-learn version than the running one."""


class LegacyBundleWarning(AlphaTradeWarning):
    """A file in the old pickle/joblib format was loaded (no feature spec, maybe no means)."""


def location(source: str, column: Any = None, row: int | None = None, *,
             line: int | None = None, label: Any = None) -> str:
    """Where a bad value is, as every error message names it: the source (a file, a table,
    ``<frame>``), the column and the row (0-based position), then the file ``line`` or the
    index ``label`` of that row when known (a timestamp is shown as it is).

    >>> location("bars.csv", "high", 2, line=4)
    "bars.csv, column 'high', row 2 (line 4)"
    >>> location("trades", "symbol", 1, label=7)
    "trades, column 'symbol', row 1 (index 7)"
    >>> import pandas as pd
    >>> location("close", "b", 3, label=pd.Timestamp("2024-01-04", tz="UTC"))
    "close, column 'b', row 3 (2024-01-04 00:00:00+00:00)"
    """
    parts = [str(source)]
    if column is not None:
        parts.append(f"column {column!r}" if isinstance(column, str) else f"column {column}")
    if row is not None:
        where = f"row {row}"
        if line is not None:
            where += f" (line {line})"
        elif label is not None:
            where += (f" ({label})" if hasattr(label, "isoformat")
                      else f" (index {label!r})")
        parts.append(where)
    return ", ".join(parts)
