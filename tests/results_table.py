"""The Results table of a recipe module, for the quality tests to check
the measured figures against what the recipe prints.

A recipe's `## Results` section (a comment block or docstring) holds one
markdown table:

    # | strategy           | test accuracy |
    # |--------------------|---------------|
    # | scratch            | 0.750         |

`results_table(module)` returns its rows as dicts of the cells' text,
keyed by the header; `figure(rows, column, **match)` the one cell of the
one row matching `match`, as text (so a test compares to the printed
digits). A module without such a section or table is an error: a Results
section must hold the figures, not point elsewhere.
"""

import inspect
import re


def _prose_lines(source):
    """Source lines with a comment's `#` (and the indentation) removed."""
    for line in source.splitlines():
        yield re.sub(r"^\s*#\s?", "", line).strip()


def results_table(module, first_column=None):
    """Rows of the first markdown table after the `## Results` heading in
    `module`'s source (with `first_column`, of the first one whose header
    starts with that column): `[{column: cell text}, ...]`."""
    lines = list(_prose_lines(inspect.getsource(module)))
    try:
        start = lines.index("## Results")
    except ValueError:
        raise AssertionError(f"{module.__name__} has no '## Results' "
                             "section") from None
    tables, table = [], []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip("|").split("|")])
        elif table:
            tables.append(table)
            table = []
    if table:
        tables.append(table)
    if first_column is not None:
        tables = [t for t in tables if t and t[0][0] == first_column]
    table = tables[0] if tables else []
    if len(table) < 3 or not set("".join(table[1])) <= set("-: "):
        raise AssertionError(f"{module.__name__}: no markdown table "
                             "(header, rule, rows) in its Results section"
                             + (f" starting with {first_column!r}"
                                if first_column else ""))
    header = table[0]
    rows = [dict(zip(header, cells)) for cells in table[2:]]
    for cells in table[2:]:
        assert len(cells) == len(header), (module.__name__, cells)
    return rows


def figure(rows, column, **match):
    """The `column` cell of the one row whose cells equal `match` (keys
    with `_` for spaces)."""
    match = {k.replace("_", " "): str(v) for k, v in match.items()}
    found = [row for row in rows
             if all(row.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (f"{len(found)} rows match {match} in the "
                             f"Results table: {rows}")
    return found[0][column]


def printed(value, like):
    """`value` printed with as many decimals as `like` (a table cell)."""
    decimals = len(like.partition(".")[2])
    return f"{value:.{decimals}f}"
