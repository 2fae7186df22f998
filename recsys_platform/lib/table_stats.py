"""Row counts, null counts and previews of a partition range: the numbers every materialization and
check reports. Statements are built with sqlglot from validated identifiers; values are bound.

Each function takes anything with the warehouse's `query(sql, params)`: the warehouse itself, or the
staged rows of a replacement being validated (`dataset="staged"`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dagster import MetadataValue

from recsys_platform.lib.partitions import PartitionRange
from recsys_platform.lib.sql_files import validate_identifier
from recsys_platform.lib.warehouse.interface import Warehouse

if TYPE_CHECKING:  # sqlglot is imported where SQL is built or translated, not when definitions load
    from sqlglot import exp


PREVIEW_ROWS = 10


def _in_range(table: str, date_column: str, dataset: str = "recsys") -> exp.Select:
    from sqlglot import exp

    return (
        exp.select()
        .from_(exp.table_(validate_identifier(table, "table"), db=validate_identifier(dataset, "dataset")))
        .where(
            exp.column(validate_identifier(date_column, "column")).between(
                exp.Placeholder(this="first_day"), exp.Placeholder(this="last_day")
            )
        )
    )


def null_counts(
    warehouse: Warehouse, table: str, columns: Sequence[str], days: PartitionRange, date_column: str = "event_date",
    flag_columns: Sequence[str] = (), dataset: str = "recsys",
) -> dict[str, int]:
    """{"rows": n, "<column>_nulls": n, ..., "<flag>_true": n, ...} for the range, in one scan."""
    from sqlglot import exp

    select = _in_range(table, date_column, dataset).select(exp.alias_(exp.Count(this=exp.Star()), "rows"))
    for column in columns:
        validate_identifier(column, "column")
        select = select.select(
            exp.alias_(exp.func("COUNTIF", exp.column(column).is_(exp.null())), f"{column}_nulls")
        )
    for column in flag_columns:
        validate_identifier(column, "column")
        select = select.select(exp.alias_(exp.func("COUNTIF", exp.column(column)), f"{column}_true"))
    row = warehouse.query(_bigquery(select), days.params).to_pylist()[0]
    return {k: int(v or 0) for k, v in row.items()}


def total_rows(warehouse: Warehouse, dataset: str, table: str) -> int:
    """Rows of a whole table (e.g. a product DB table, which has no partitions)."""
    from sqlglot import exp

    select = exp.select(exp.alias_(exp.Count(this=exp.Star()), "n")).from_(
        exp.table_(validate_identifier(table, "table"), db=validate_identifier(dataset, "dataset"))
    )
    return int(warehouse.query(_bigquery(select)).to_pylist()[0]["n"])


def rows_per_day(warehouse: Warehouse, table: str, days: PartitionRange, date_column: str = "event_date",
                 dataset: str = "recsys") -> dict[str, int]:
    from sqlglot import exp

    column = exp.column(validate_identifier(date_column, "column"))
    select = (
        _in_range(table, date_column, dataset)
        .select(exp.alias_(column, "day"), exp.alias_(exp.Count(this=exp.Star()), "rows"))
        .group_by(column)
    )
    counts = {str(r["day"]): int(r["rows"]) for r in warehouse.query(_bigquery(select), days.params).to_pylist()}
    return {day.isoformat(): counts.get(day.isoformat(), 0) for day in days.days}


def preview(warehouse: Warehouse, table: str, columns: Sequence[str], days: PartitionRange,
            order_by: str, date_column: str = "event_date") -> MetadataValue:
    from sqlglot import exp

    select = _in_range(table, date_column).select(
        *[exp.column(validate_identifier(c, "column")) for c in columns]
    ).order_by(exp.column(validate_identifier(order_by, "column"))).limit(PREVIEW_ROWS)
    rows = warehouse.query(_bigquery(select), days.params).to_pylist()
    return MetadataValue.md(markdown_table(rows, columns))


def markdown_table(rows: list[dict], columns: Sequence[str]) -> str:
    if not rows:
        return "_no rows_"
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "\n".join("| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows)
    return head + body


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|")[:60]


def _bigquery(select: exp.Expression) -> str:
    # Placeholders render as @name in BigQuery's dialect.
    return select.sql("bigquery")
