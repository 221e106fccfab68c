"""SQL text for psycopg: the DuckDB store's placeholders mapped to psycopg's, and the
check that an untrusted statement is one ``SELECT``.

The store's SQL and :meth:`LabStore.query`'s take ``?`` or ``$1`` placeholders with a
list, or ``$name`` with a dict (DuckDB's styles). psycopg takes ``%s``: :func:`to_psycopg`
rewrites every placeholder outside string literals, quoted identifiers, comments and
dollar-quoted strings as ``%s``, doubles every ``%`` (which psycopg would read as a
placeholder) and returns the values in placeholder order. Values are bound by PostgreSQL,
never formatted into the SQL text.

One difference from DuckDB: a ``?`` outside a literal is always a placeholder, so
PostgreSQL's ``jsonb ? text`` operators are written as the functions ``jsonb_exists``,
``jsonb_exists_any`` and ``jsonb_exists_all``.

>>> to_psycopg("SELECT * FROM t WHERE a = ? AND b LIKE 'x%' AND c = ?", [1, "y"])
("SELECT * FROM t WHERE a = %s AND b LIKE 'x%%' AND c = %s", [1, 'y'])
>>> to_psycopg("SELECT $2, $1, $2", ["a", "b"])
('SELECT %s, %s, %s', ['b', 'a', 'b'])
>>> to_psycopg("SELECT * FROM runs WHERE run_id = $run -- '$not'", {"run": "r1"})
("SELECT * FROM runs WHERE run_id = %s -- '$not'", ['r1'])
>>> check_select("WITH d AS (DELETE FROM trades RETURNING *) SELECT * FROM d")
Traceback (most recent call last):
...
ValueError: query: the SELECT contains a statement that changes data (DELETE); only ...
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["check_select", "to_psycopg"]

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_NUMBERED = re.compile(r"\$(\d+)")
_NAMED = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
# words that make a SELECT change data (a data-modifying WITH, SELECT INTO, row locks)
_WRITES = ("INSERT", "UPDATE", "DELETE", "MERGE", "INTO")


def _segments(sql: str) -> Iterator[tuple[bool, str]]:
    """``(is_code, text)`` pieces of ``sql``: code, or a literal/identifier/comment whose
    text is kept as it is."""
    i, n, start = 0, len(sql), 0
    while i < n:
        ch = sql[i]
        end = -1
        if ch == "'":
            escaped = i > 0 and sql[i - 1] in "eE" and (i == 1 or not (
                sql[i - 2].isalnum() or sql[i - 2] == "_"))
            j = i + 1
            while j < n:
                if escaped and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            end = j + 1
        elif ch == '"':
            j = sql.find('"', i + 1)
            while j != -1 and j + 1 < n and sql[j + 1] == '"':
                j = sql.find('"', j + 2)
            end = n if j == -1 else j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            end = n if j == -1 else j
        elif sql.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            end = j
        elif ch == "$" and not (i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            tag = _DOLLAR_TAG.match(sql, i)
            if tag:
                j = sql.find(tag.group(0), tag.end())
                end = n if j == -1 else j + len(tag.group(0))
        if end < 0:
            i += 1
            continue
        if start < i:
            yield True, sql[start:i]
        yield False, sql[i:min(end, n)]
        i = start = min(end, n)
    if start < n:
        yield True, sql[start:]


def _plain(value: Any) -> Any:
    """numpy scalars as Python values (psycopg adapts Python types)."""
    return value.item() if isinstance(value, np.generic) else value


def to_psycopg(sql: str, params: Sequence[Any] | Mapping[str, Any] | None
               ) -> tuple[str, list[Any]]:
    """``sql`` with ``?``/``$1``/``$name`` placeholders as ``%s`` (and ``%`` as ``%%``),
    and the values in placeholder order.

    Raises
    ------
    ValueError
        A placeholder has no value (too few values, an unknown name), values are given
        that no placeholder uses, or a dict is given for positional placeholders.
    """
    named = isinstance(params, Mapping)
    values: Sequence[Any] | Mapping[str, Any] = params if params is not None else []
    out: list[str] = []
    bound: list[Any] = []
    used: set[Any] = set()
    counter = 0

    def take(key: Any) -> str:
        if named and not isinstance(key, str):
            raise ValueError("query: a dict of values needs $name placeholders")
        if not named and isinstance(key, str):
            raise ValueError(f"query: ${key} is a named placeholder; pass a dict of values")
        try:
            bound.append(_plain(values[key]))  # type: ignore[index]
        except (KeyError, IndexError):
            where = f"${key}" if isinstance(key, str) else f"number {key + 1}"
            raise ValueError(f"query: no value for placeholder {where} "
                             f"({len(values)} given)") from None
        used.add(key)
        return "%s"

    for is_code, text in _segments(sql):
        if not is_code:
            out.append(text.replace("%", "%%"))
            continue
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "%":
                out.append("%%")
            elif ch == "?":
                out.append(take(counter))
                counter += 1
            elif ch == "$" and (m := _NUMBERED.match(text, i)):
                out.append(take(int(m.group(1)) - 1))
                i = m.end()
                continue
            elif ch == "$" and (m := _NAMED.match(text, i)):
                out.append(take(m.group(1)))
                i = m.end()
                continue
            else:
                out.append(ch)
            i += 1
    unused = len(values) - len(used)
    if unused > 0:
        raise ValueError(f"query: {len(values)} values given, the SQL uses {len(used)}")
    return "".join(out), bound


def check_select(sql: str) -> None:
    """Raise ``ValueError`` unless ``sql`` is one statement that starts with ``SELECT``,
    ``WITH`` or ``(`` and has no ``INSERT``, ``UPDATE``, ``DELETE``, ``MERGE`` or ``INTO``
    outside literals and comments.

    This catches honest mistakes with clear messages; what stops a hostile statement is
    PostgreSQL: the store runs it in a ``READ ONLY`` transaction that is rolled back, with
    a ``statement_timeout``, as a role that must not be a superuser (see
    :mod:`alphatrade_lab.store.postgres`).
    """
    if not isinstance(sql, str):
        raise ValueError(f"query: expected SQL text, got {type(sql).__name__}")
    code = " ".join(text for is_code, text in _segments(sql) if is_code)
    parts = [p for p in code.split(";") if p.strip()]  # a ';' may only end the text
    if len(parts) != 1:
        raise ValueError(f"query: expected one SQL statement, got {len(parts)}")
    words = [w.upper() for w in _WORD.findall(code)]
    kind = words[0] if words else "nothing"
    if kind not in ("SELECT", "WITH"):
        raise ValueError(f"query: only SELECT statements are allowed, got {kind}; "
                         "use the record_* methods to write")
    writes = sorted({w for w in words if w in _WRITES})
    if writes:
        raise ValueError("query: the SELECT contains a statement that changes data "
                         f"({', '.join(writes)}); only reads are allowed")
