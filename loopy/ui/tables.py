# -*- test-case-name: tests.test_ui_tables -*-
"""
The UI's tables, as pure functions: a L{Table} of L{Column}s and records in,
fixed-width text rows out, sorted by one column and filtered by a search
text.  What each screen's table holds is in the screen's module
(L{loopy.ui.views}, L{loopy.ui.alertviews}, L{loopy.ui.hubs}).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from attrs import evolve, frozen


@frozen
class Column:
    """
    A table column: a title, a width, a function of the row's record to the
    sort key, and one to the cell text.
    """

    title: str
    width: int
    key: Callable[[Any], Any]
    text: Callable[[Any], str]
    right: bool = True


@frozen
class Table:
    """
    A table's shape: its columns and which column sorts it.
    """

    columns: tuple[Column, ...]
    sort: int = 0
    descending: bool = True


def render(
    table: Table,
    records: Iterable[Any],
    filter_text: str = "",
    searchable: Callable[[Any], str] = lambda r: "",
) -> tuple[str, list[str], list[Any]]:
    """
    Render records as fixed-width rows.

    :param filter_text: keep only records whose C{searchable} text contains
        it (case-insensitive); empty keeps all.
    :returns: the header line, the rows, and the records in row order.
    """
    needle = filter_text.lower()
    kept = [r for r in records if not needle or needle in searchable(r).lower()]
    column = table.columns[table.sort]
    kept.sort(key=lambda r: _sortable(column.key(r)), reverse=table.descending)
    header = " ".join(_title(table, i) for i in range(len(table.columns)))
    rows = [" ".join(_cell(c.text(r), c) for c in table.columns) for r in kept]
    return header, rows, kept


def _arrow(table: Table, index: int) -> str:
    if index != table.sort:
        return ""
    return "▼" if table.descending else "▲"


def _title(table: Table, index: int) -> str:
    # The sort arrow always shows: a title too long for it is cut instead.
    column = table.columns[index]
    arrow = _arrow(table, index)
    title = column.title
    if arrow and len(title) + 1 > column.width:
        title = title[: column.width - 2] + "…"
    return _cell(title + arrow, column)


def _sortable(value: Any) -> Any:
    # None sorts below everything; tuples sort item by item; mixed types
    # sort by text.
    if value is None:
        return (0, 0)
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, tuple):
        return (3, tuple(_sortable(v) for v in value))
    return (2, str(value))


def _cell(text: str, column: Column) -> str:
    text = str(text)
    if len(text) > column.width:
        text = text[: column.width - 1] + "…"
    return text.rjust(column.width) if column.right else text.ljust(column.width)


def with_text(table: Table, title: str, text: Callable[[Any], str]) -> Table:
    """
    C{table} with the cell text of its column titled C{title} made by
    C{text} instead: for cells that depend on more than their record (the
    time of rendering, the state of the mesh).  Sorting is unchanged.

    :raises ValueError: if no column has that title.
    """
    index = [c.title for c in table.columns].index(title)
    columns = list(table.columns)
    columns[index] = evolve(columns[index], text=text)
    return Table(tuple(columns), table.sort, table.descending)


def next_sort(table: Table) -> Table:
    """
    Sort by the next column (``s``); sorting by the same column twice
    (``S``) reverses — see L{reverse_sort}.
    """
    return Table(table.columns, (table.sort + 1) % len(table.columns), table.descending)


def reverse_sort(table: Table) -> Table:
    """
    Sort the other way by the same column (``S``).
    """
    return Table(table.columns, table.sort, not table.descending)
