"""The product DB contract: which replica table and column holds each thing the platform reads, and how its
type becomes the platform's. The one place where INT64/NUMERIC keys become STRING ids (GA4's user_id and
item_id are strings), DATETIME/DATE/epoch columns become TIMESTAMPs, and TINYINT flags become BOOLs.

SQL names the normalised tables with the logical dataset `shop` (`shop.orders`); `shop_sql` replaces each
with a subquery over the replica (`product_db.<table>`) that selects the platform's columns, typed as the
platform expects, from whatever the replica has (read from the warehouse's metadata at run time).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from recsys_platform.lib.sql_files import validate_identifier
from recsys_platform.lib.yaml_files import parse_yaml

if TYPE_CHECKING:  # sqlglot is imported where SQL is built or translated, not when definitions load
    from sqlglot import exp


CONTRACTS_DIR = Path(__file__).with_name("contracts")
SHOP_DATASET = "shop"

# What the platform reads of each table, and the kind of value each column holds.
CANONICAL_COLUMNS: dict[str, dict[str, str]] = {
    "items": {"item_id": "id", "item_name": "text", "price": "number", "category_l1": "text",
              "category_l2": "text", "is_available": "flag", "created_at": "time"},
    "users": {"user_id": "id", "created_at": "time"},
    "orders": {"order_id": "id", "user_id": "id", "ordered_at": "time", "status": "text"},
    "order_items": {"order_id": "id", "item_id": "id", "quantity": "count", "unit_price": "number"},
    # Right to erasure: a registered user (user_id), a browser (user_pseudo_id), or both, per request.
    "erasure_requests": {"user_id": "id", "user_pseudo_id": "text", "requested_at": "time"},
}
# Tables a replica may lack: read as empty (a shop that has received no erasure request yet).
OPTIONAL_TABLES = ("erasure_requests",)
# Which replica types each kind accepts (BigQuery type names; the DuckDB engine reports the same names).
ACCEPTED_TYPES = {
    "id": ("STRING", "INT64", "NUMERIC", "BIGNUMERIC"),
    "text": ("STRING", "INT64", "NUMERIC"),
    "number": ("FLOAT64", "NUMERIC", "BIGNUMERIC", "INT64"),
    "count": ("INT64", "NUMERIC"),
    "flag": ("BOOL", "INT64", "STRING"),
    "time": ("TIMESTAMP", "DATETIME", "DATE", "INT64"),
}


class ContractError(ValueError):
    """The replica does not match the contract; the message names the table, the column and the fix."""


@dataclass(frozen=True)
class ReplicaTable:
    table: str  # the replica's table name
    columns: dict[str, str]  # platform column -> replica column


@dataclass(frozen=True)
class ProductDbContract:
    name: str
    tables: dict[str, ReplicaTable]
    datetime_zone: str
    paid_statuses: tuple[str, ...]

    def replica_tables(self) -> list[str]:
        return [t.table for t in self.tables.values()]


def parse_contract(raw: dict, name: str) -> ProductDbContract:
    tables = {}
    for logical, columns in CANONICAL_COLUMNS.items():
        entry = (raw.get("tables") or {}).get(logical)
        if not entry and logical in OPTIONAL_TABLES:
            entry = {"table": logical, "columns": {c: c for c in columns}}
        if not entry or not entry.get("table"):
            raise ContractError(f"product DB contract {name}: tables.{logical}.table is missing")
        mapping = entry.get("columns") or {}
        missing = [c for c in columns if c not in mapping]
        if missing:
            raise ContractError(f"product DB contract {name}: tables.{logical}.columns lacks {', '.join(missing)}")
        tables[logical] = ReplicaTable(
            validate_identifier(entry["table"], f"tables.{logical}.table"),
            {c: validate_identifier(mapping[c], f"tables.{logical}.columns.{c}") for c in columns},
        )
    statuses = tuple(raw.get("paid_statuses") or ())
    if not statuses:
        raise ContractError(f"product DB contract {name}: paid_statuses is empty: no order would count as a purchase")
    return ProductDbContract(name, tables, str(raw.get("datetime_zone", "UTC")), statuses)


@lru_cache(maxsize=None)
def load_contract(name_or_path: str) -> ProductDbContract:
    """A shipped contract by name (`simulator`, `datastream`) or a YAML file of your own."""
    path = CONTRACTS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        path = Path(name_or_path)
    if not path.is_file():
        shipped = sorted(p.stem for p in CONTRACTS_DIR.glob("*.yaml"))
        raise ContractError(f"product DB contract {name_or_path!r}: no such file, and not one of {shipped}")
    return parse_contract(parse_yaml(path.read_text()) or {}, str(name_or_path))


def read_shop_sql(sql: str, contract: ProductDbContract, warehouse) -> str:
    """`shop_sql` with the replica's column types read from the warehouse (one metadata query)."""
    return shop_sql(sql, contract, warehouse.replica_columns(contract.replica_tables()))


def contract_params(contract: ProductDbContract) -> dict:
    return {"replica_datetime_zone": contract.datetime_zone, "paid_statuses": list(contract.paid_statuses)}


def check_table(contract: ProductDbContract, logical: str, types: dict[str, str] | None) -> list[str]:
    """How the replica table behind `logical` (its `{column: type}`, None if absent) breaks the contract."""
    replica = contract.tables[logical]
    if types is None:
        return [f"product_db.{replica.table} (the contract's {logical}) does not exist in the replica"]
    problems = []
    for column, kind in CANONICAL_COLUMNS[logical].items():
        source = replica.columns[column]
        found = types.get(source)
        if found is None:
            problems.append(f"product_db.{replica.table} has no column {source} (the contract's "
                            f"{logical}.{column}); it has {', '.join(sorted(types))}")
        elif found not in ACCEPTED_TYPES[kind]:
            problems.append(f"product_db.{replica.table}.{source} is {found}; {logical}.{column} needs one of "
                            f"{', '.join(ACCEPTED_TYPES[kind])}")
    return problems


def check_replica(contract: ProductDbContract, column_types: dict[str, dict[str, str]]) -> list[str]:
    """Every way the replica (`{table: {column: type}}`) breaks the contract, each naming table and column."""
    return [problem for logical, replica in contract.tables.items()
            if not (logical in OPTIONAL_TABLES and replica.table not in column_types)
            for problem in check_table(contract, logical, column_types.get(replica.table))]


def _normalised(kind: str, source_type: str, column: exp.Expression) -> exp.Expression:
    from sqlglot import exp

    def cast(to: str) -> exp.Expression:
        return exp.cast(column, exp.DataType.build(to, dialect="bigquery"))

    if kind in ("id", "text"):
        # A NUMERIC key becomes "7", as BigQuery writes it, on DuckDB too (bigquery_on_duckdb.py).
        return column if source_type == "STRING" else cast("STRING")
    if kind == "number":
        return column if source_type == "FLOAT64" else cast("FLOAT64")
    if kind == "count":
        return column if source_type == "INT64" else cast("INT64")
    if kind == "flag":
        if source_type == "BOOL":
            return column
        if source_type == "INT64":
            return exp.NEQ(this=column, expression=exp.Literal.number(0))
        return exp.In(this=exp.Lower(this=column), expressions=[exp.Literal.string(v) for v in ("1", "true", "t", "yes", "y")])
    if kind == "time":
        if source_type == "TIMESTAMP":
            return column
        if source_type == "INT64":  # epoch seconds
            return exp.func("TIMESTAMP_SECONDS", column)
        # DATETIME and DATE hold wall-clock time of the zone the contract names.
        return exp.Timestamp(this=column, zone=exp.Placeholder(this="replica_datetime_zone"))
    raise ValueError(f"unknown column kind {kind!r}")


def shop_relation(logical: str, contract: ProductDbContract, column_types: dict[str, dict[str, str]]) -> exp.Subquery:
    """SELECT <platform columns> FROM product_db.<replica table>, each column normalised."""
    from sqlglot import exp

    replica = contract.tables[logical]
    if logical in OPTIONAL_TABLES and replica.table not in column_types:
        kinds = {"id": "STRING", "text": "STRING", "time": "TIMESTAMP"}
        empty = exp.select(*[
            exp.alias_(exp.cast(exp.null(), exp.DataType.build(kinds[kind], dialect="bigquery")), column)
            for column, kind in CANONICAL_COLUMNS[logical].items()
        ]).where(exp.false())
        return empty.subquery()
    problems = check_table(contract, logical, column_types.get(contract.tables[logical].table))
    if problems:
        raise ContractError("; ".join(problems) + f" (contract {contract.name}; `recsys-platform doctor` lists all)")
    types = column_types[replica.table]
    select = exp.select(*[
        exp.alias_(_normalised(kind, types[replica.columns[column]], exp.column(replica.columns[column])), column)
        for column, kind in CANONICAL_COLUMNS[logical].items()
    ]).from_(exp.table_(replica.table, db="product_db"))
    return select.subquery()


def shop_sql(sql: str, contract: ProductDbContract, column_types: dict[str, dict[str, str]]) -> str:
    """`sql` with every `shop.<table>` replaced by the normalised replica table (keeping its alias)."""
    import sqlglot
    from sqlglot import exp

    trees = [t for t in sqlglot.parse(sql, read="bigquery") if t is not None]
    for tree in trees:
        for table in list(tree.find_all(exp.Table)):
            if table.args.get("db") is None or table.db != SHOP_DATASET:
                continue
            if table.name not in contract.tables:
                raise ContractError(f"shop.{table.name} is not a table of the product DB contract")
            relation = shop_relation(table.name, contract, column_types)
            relation.set("alias", exp.TableAlias(this=exp.to_identifier(table.alias_or_name)))
            table.replace(relation)
    return ";\n".join(t.sql("bigquery") for t in trees)
