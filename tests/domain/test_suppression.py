"""Small-cell suppression: nothing under the threshold is published, and the attacker who
solves the table's totals for its withheld values finds none of them.

The attacker is exact linear algebra over the rationals: the withheld values are the
unknowns, every row and column of the extended table (cells and totals) gives one
equation, and a withheld value is recovered exactly when its unit vector lies in the
span of the equations.  ``test_the_attacker_recovers_a_value_alone_in_its_row`` shows it
does recover what an unprotected table gives away.
"""

from __future__ import annotations

import os
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from referrals.domain.suppression import Published, extend, percentile, protect

EXAMPLES = int(os.environ.get("REFERRALS_SUPPRESSION_EXAMPLES", "300"))
Matrix = list[list[Fraction]]


def reduce_rows(rows: Matrix) -> Matrix:
    """Row echelon form, each pivot 1 (Gauss-Jordan over Fractions)."""
    rows = [list(r) for r in rows]
    echelon: Matrix = []
    width = len(rows[0]) if rows else 0
    for column in range(width):
        pivot = next((r for r in rows if r[column] != 0), None)
        if pivot is None:
            continue
        rows.remove(pivot)
        pivot = [v / pivot[column] for v in pivot]
        rows = [[a - r[column] * b for a, b in zip(r, pivot, strict=True)] for r in rows]
        echelon = [[a - e[column] * b for a, b in zip(e, pivot, strict=True)] for e in echelon]
        echelon.append(pivot)
    return echelon


def in_span(echelon: Matrix, vector: list[Fraction]) -> bool:
    rest = list(vector)
    for row in echelon:
        column = next(i for i, v in enumerate(row) if v != 0)
        if rest[column] != 0:
            rest = [a - rest[column] * b for a, b in zip(rest, row, strict=True)]
    return all(v == 0 for v in rest)


def recoverable(published: Published) -> list[tuple[int, int]]:
    """Positions of the extended table whose withheld value the published ones determine."""
    grid = [[*row, total] for row, total in zip(published.cells, published.row_totals, strict=True)]
    grid.append([*published.column_totals, published.total])
    unknowns = [(r, c) for r, row in enumerate(grid) for c, v in enumerate(row) if v is None]
    if not unknowns:
        return []
    index = {p: i for i, p in enumerate(unknowns)}
    rows, columns = len(grid) - 1, len(grid[0]) - 1
    # sum of a row's cells - its total = 0, and likewise for each column.
    lines = [[(r, c) for c in range(columns + 1)] for r in range(rows + 1)]
    lines += [[(r, c) for r in range(rows + 1)] for c in range(columns + 1)]
    equations = []
    for line in lines:
        coefficients = [Fraction(0)] * len(unknowns)
        for k, (r, c) in enumerate(line):
            sign = -1 if k == len(line) - 1 else 1
            if (r, c) in index:
                coefficients[index[(r, c)]] += sign
        if any(coefficients):
            equations.append(coefficients)
    echelon = reduce_rows(equations) if equations else []
    found = []
    for p, i in index.items():
        unit = [Fraction(int(j == i)) for j in range(len(unknowns))]
        if in_span(echelon, unit):
            found.append(p)
    return found


def recoverable_one_way(counts: list[int | None], total: int | None) -> bool:
    """A one-way table as the API publishes it: counts and their total, one equation."""
    return [*counts, total].count(None) == 1


def published_values(published: Published) -> list[int]:
    values = [v for row in published.cells for v in row]
    values += [*published.row_totals, *published.column_totals, published.total]
    return [v for v in values if v is not None]


tables = st.integers(min_value=1, max_value=6).flatmap(
    lambda rows: st.integers(min_value=1, max_value=6).flatmap(
        lambda columns: st.lists(
            st.lists(
                # Mostly small counts, where suppression bites; some zeros and large ones.
                st.one_of(st.integers(0, 6), st.integers(0, 40)),
                min_size=columns,
                max_size=columns,
            ),
            min_size=rows,
            max_size=rows,
        )
    )
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(cells=tables, min_cell=st.integers(min_value=2, max_value=10))
def test_no_published_value_is_under_the_threshold_and_none_withheld_is_recoverable(
    cells: list[list[int]], min_cell: int
) -> None:
    published = protect(cells, min_cell)

    assert [v for v in published_values(published) if 0 < v < min_cell] == []
    assert recoverable(published) == []
    # What is published is the truth.
    table = extend(cells)
    for r, row in enumerate(published.cells):
        for c, value in enumerate(row):
            assert value in (None, table[r][c])
    assert published.total in (None, table[-1][-1])


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    counts=st.lists(st.one_of(st.integers(0, 6), st.integers(0, 40)), min_size=1, max_size=12),
    min_cell=st.integers(min_value=2, max_value=10),
)
def test_a_one_way_table_never_leaves_one_value_alone(counts: list[int], min_cell: int) -> None:
    published = protect([[n] for n in counts], min_cell)
    column = [row[0] for row in published.cells]
    total = published.column_totals[0]

    assert [v for v in [*column, total] if v is not None and 0 < v < min_cell] == []
    assert not recoverable_one_way(column, total)
    # The row totals of a one-way table are its counts: withheld alike.
    assert published.row_totals == column


def test_the_attacker_recovers_a_value_alone_in_its_row() -> None:
    """Primary suppression alone, as a naive publisher would do it: the attacker wins."""
    naive = Published(
        cells=[[None, 12], [9, 14]], row_totals=[15, 23], column_totals=[12, 26], total=38
    )
    assert recoverable(naive) == [(0, 0)]
    # A rectangle of withheld values is safe: any of them could be more or less by one.
    safe = Published(
        cells=[[None, None], [None, None]], row_totals=[15, 23], column_totals=[12, 26], total=38
    )
    assert recoverable(safe) == []


def test_the_attacker_recovers_a_total_from_the_other_totals() -> None:
    """Withholding the grand total is not enough while every row total is published:
    it is their sum, whatever the cells hide."""
    naive = Published(
        cells=[[None, None, 20], [None, None, 20], [30, None, None]],
        row_totals=[30, 30, 40],
        column_totals=[None, None, None],
        total=None,
    )
    assert recoverable(naive) == [(3, 3)]


@pytest.mark.parametrize(
    ("cells", "expected_withheld"),
    [
        # A 3 alone: its cheapest partners are the other small column and row.
        ([[3, 10], [10, 10]], 4),
        ([[20, 20], [20, 20]], 0),
        # The whole table under the threshold: the grand total too.
        ([[1, 1], [1, 0]], 6),
    ],
)
def test_examples(cells: list[list[int]], expected_withheld: int) -> None:
    published = protect(cells, 5)
    withheld = sum(v is None for row in published.cells for v in row)
    withheld += [*published.row_totals, *published.column_totals, published.total].count(None)
    assert withheld >= expected_withheld
    assert recoverable(published) == []


def test_an_empty_table_is_published_as_zeros() -> None:
    assert protect([], 5, columns=3) == Published(
        cells=[], row_totals=[], column_totals=[0, 0, 0], total=0
    )


@pytest.mark.parametrize(
    ("values", "percent", "expected"),
    [([1, 2, 3, 4], 50, 2), ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, 9), ([7], 99, 7)],
)
def test_percentile_is_nearest_rank(values: list[int], percent: int, expected: int) -> None:
    assert percentile(values, percent) == expected
