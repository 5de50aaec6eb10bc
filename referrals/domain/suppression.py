"""Small-cell suppression of a two-way table of counts and its totals (pure).

The table is handled *extended*: its R x C counts, one more column holding each row's
total, one more row holding each column's total, and the grand total in the corner.
Every published number is one of those (R+1) x (C+1) values, so every one of them is
protected alike: a total under the threshold counts people as surely as a cell does.

1. Primary suppression: any value from 1 to ``min_cell - 1`` is withheld.  Zeros are
   published: a zero counts nobody.
2. Complementary suppression: with the totals' signs flipped, every row and column of
   the extended table sums to zero, so the withheld values are the edges of a bipartite
   graph (rows x columns) and the published ones are known constants.  A withheld value
   can be solved for from the published ones exactly when its edge lies on no cycle of
   withheld edges, that is, when it is a *bridge* (a value alone in its row is the
   simplest case).  While a bridge remains, the cheapest rectangle through it (three
   more cells, fewest people withheld, zeros last) is withheld too; a rectangle is a
   cycle, and adding edges never turns a cycle edge back into a bridge, so this ends.

A one-way table (C = 1) is the same with its row totals equal to its cells: a rectangle
there is two rows of both columns, so a withheld count always has a withheld partner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Position = tuple[int, int]


@dataclass(frozen=True)
class Published:
    """A protected table: None where a value is withheld."""

    cells: list[list[int | None]]
    row_totals: list[int | None]
    column_totals: list[int | None]
    total: int | None


def extend(cells: Sequence[Sequence[int]]) -> list[list[int]]:
    """The counts with their row totals (last column), column totals and grand total."""
    rows = [[*row, sum(row)] for row in cells]
    width = len(rows[0]) if rows else 1
    return [*rows, [sum(row[c] for row in rows) for c in range(width)]]


def withheld(cells: Sequence[Sequence[int]], min_cell: int) -> set[Position]:
    """Positions in the extended table to withhold (primary and complementary)."""
    if not cells or not cells[0]:
        return set()
    table = extend(cells)
    hidden = {
        (r, c) for r, row in enumerate(table) for c, value in enumerate(row) if 0 < value < min_cell
    }
    while (bridge := first_bridge(hidden)) is not None:
        hidden |= cheapest_rectangle(table, hidden, bridge)
    return hidden


def protect(cells: Sequence[Sequence[int]], min_cell: int, *, columns: int = 1) -> Published:
    """The table as it may be published.  ``columns``: its width when it has no rows."""
    if not cells:
        return Published(cells=[], row_totals=[], column_totals=[0] * columns, total=0)
    table = extend(cells)
    hidden = withheld(cells, min_cell)
    rows, columns = len(cells), len(cells[0])

    def value(r: int, c: int) -> int | None:
        return None if (r, c) in hidden else table[r][c]

    return Published(
        cells=[[value(r, c) for c in range(columns)] for r in range(rows)],
        row_totals=[value(r, columns) for r in range(rows)],
        column_totals=[value(rows, c) for c in range(columns)],
        total=value(rows, columns),
    )


def first_bridge(hidden: set[Position]) -> Position | None:
    """A withheld position on no cycle of withheld positions (Tarjan), or None."""
    adjacent: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for r, c in hidden:
        adjacent.setdefault(("r", r), []).append(("c", c))
        adjacent.setdefault(("c", c), []).append(("r", r))
    for nodes in adjacent.values():
        nodes.sort()
    order: dict[tuple[str, int], int] = {}
    low: dict[tuple[str, int], int] = {}
    bridges: list[Position] = []

    def visit(node: tuple[str, int], parent: tuple[str, int] | None) -> None:
        order[node] = low[node] = len(order)
        for other in adjacent[node]:
            if other == parent:
                continue  # no parallel edges: a position is one edge
            if other in order:
                low[node] = min(low[node], order[other])
                continue
            visit(other, node)
            low[node] = min(low[node], low[other])
            if low[other] > order[node]:
                row, column = (node, other) if node[0] == "r" else (other, node)
                bridges.append((row[1], column[1]))

    for node in sorted(adjacent):
        if node not in order:
            visit(node, None)
    return min(bridges) if bridges else None


def cheapest_rectangle(
    table: Sequence[Sequence[int]], hidden: set[Position], corner: Position
) -> set[Position]:
    """The three positions that, with ``corner``, close the cheapest rectangle."""
    r, c = corner
    ceiling = sum(table[-1]) + 1  # more than any published value: zeros go last

    def cost(position: Position) -> int:
        if position in hidden:
            return 0
        value = table[position[0]][position[1]]
        return value if value > 0 else ceiling

    best: tuple[int, Position, set[Position]] | None = None
    for r2 in range(len(table)):
        for c2 in range(len(table[0])):
            if r2 == r or c2 == c:
                continue
            corners = {(r, c2), (r2, c), (r2, c2)}
            candidate = (sum(cost(p) for p in corners), (r2, c2), corners)
            if best is None or candidate[:2] < best[:2]:
                best = candidate
    assert best is not None, "an extended table has at least two rows and two columns"
    return best[2]


def percentile(ordered: Sequence[float], percent: int) -> float:
    """Nearest-rank percentile (1-100) of non-empty, sorted values: always one of them."""
    rank = max(1, -(-percent * len(ordered) // 100))
    return ordered[rank - 1]
