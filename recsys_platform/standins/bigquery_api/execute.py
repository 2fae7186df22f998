"""Running a query job's statements on DuckDB with BigQuery's semantics.

A job's SQL is one statement or a script. Statements run in order on one DuckDB connection; each is
its own transaction unless the script opened one with `BEGIN TRANSACTION`, which lasts until
`COMMIT TRANSACTION` / `ROLLBACK TRANSACTION`, is rolled back by any failing statement (the job then
fails) and by the end of the script. As in BigQuery, only SELECT, DML (INSERT, UPDATE, DELETE, MERGE,
TRUNCATE TABLE) and DDL on temporary tables may run inside a transaction.

Supported statements: SELECT (with WITH, set operations, QUALIFY, UNNEST, wildcard tables and
`__TABLES__`); INSERT, UPDATE, DELETE (BigQuery requires a WHERE clause), MERGE, TRUNCATE TABLE;
CREATE [OR REPLACE] [TEMP] TABLE [IF NOT EXISTS] with a column list and/or AS SELECT, PARTITION BY a DATE
column / DATE(ts) / TIMESTAMP_TRUNC / DATETIME_TRUNC / DATE_TRUNC, CLUSTER BY and OPTIONS(description);
DROP TABLE; CREATE SCHEMA / DROP SCHEMA; ALTER TABLE ADD COLUMN. A job's result is its (last) SELECT's
rows, written to an Arrow file the paging calls read.

A query job may also write its result to `destinationTable` (`dataset.table` or the partition
`table$YYYYMMDD`) with writeDisposition WRITE_EMPTY (default) / WRITE_APPEND / WRITE_TRUNCATE and
schemaUpdateOptions ALLOW_FIELD_ADDITION / ALLOW_FIELD_RELAXATION, checked as BigQuery checks them.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from recsys_platform.shared.bigquery_on_duckdb import used_params
from recsys_platform.standins.bigquery_api import typecheck
from recsys_platform.standins.bigquery_api.errors import (
    BigQueryError,
    dataset_name,
    duplicate,
    invalid,
    invalid_query,
    not_found,
    table_name,
)
from recsys_platform.standins.bigquery_api.schema import (
    COERCIONS,
    Field,
    conform_sql,
    field_from_duckdb,
    field_from_sql_type,
    merge_for_write,
    needs_cast,
    quote,
)
from recsys_platform.standins.bigquery_api.storage import Session, field_notes, validate_dataset, validate_table
from recsys_platform.standins.bigquery_api.translate import (
    Context,
    TableRef,
    bind_parameter_values,
    check_dataset,
    name_result_columns,
    parameter_nodes,
    qualify_name,
    resolve,
    table_schemas,
    to_duckdb,
)

log = logging.getLogger(__name__)

BATCH_ROWS = 65_536
WRITE_DISPOSITIONS = ("WRITE_EMPTY", "WRITE_APPEND", "WRITE_TRUNCATE")
CREATE_DISPOSITIONS = ("CREATE_IF_NEEDED", "CREATE_NEVER")
SCHEMA_UPDATE_OPTIONS = ("ALLOW_FIELD_ADDITION", "ALLOW_FIELD_RELAXATION")
_PARTITION_UNITS = {"DAY", "HOUR", "MONTH", "YEAR"}
_PARTITION_RULE = ("PARTITION BY expression must be DATE(<timestamp_column>), DATE(<datetime_column>), "
                   "DATETIME_TRUNC(<datetime_column>, DAY/HOUR/MONTH/YEAR), a DATE column, "
                   "TIMESTAMP_TRUNC(<timestamp_column>, DAY/HOUR/MONTH/YEAR), DATE_TRUNC(<date_column>, "
                   "MONTH/YEAR), or RANGE_BUCKET(<int64_column>, GENERATE_ARRAY(<int64_value>, <int64_value>[, "
                   "<int64_value>]))")
_CLUSTERABLE = {"STRING", "INTEGER", "NUMERIC", "BOOLEAN", "DATE", "DATETIME", "TIMESTAMP"}


@dataclass
class QueryResult:
    """A SELECT's rows, in an Arrow IPC file."""

    path: Path
    fields: list[Field]
    total_rows: int


@dataclass
class Outcome:
    """What a job reports about its statements (BigQuery's JobStatistics2)."""

    statement_type: str | None = None
    result: QueryResult | None = None
    affected_rows: int | None = None
    dml_stats: dict | None = None
    ddl_operation: str | None = None
    ddl_target_table: tuple[str, str, str] | None = None
    ddl_target_dataset: tuple[str, str] | None = None
    referenced: dict[tuple[str, str, str], None] = field(default_factory=dict)
    statements: int = 0


@dataclass
class _Change:
    """A catalog change to record once the statement's DuckDB transaction has committed."""

    kind: str  # "touch", "create", "drop", "dataset", "drop_dataset"
    key: tuple
    options: dict = field(default_factory=dict)


def parse_script(sql: str) -> list[exp.Expression]:
    """The statements of a job's SQL, or BigQuery's syntax error (nothing runs if any statement is invalid)."""
    try:
        statements = [tree for tree in sqlglot.parse(sql, read="bigquery") if tree is not None]
    except ParseError as error:
        detail = error.errors[0] if error.errors else {}
        where = f" at [{detail.get('line')}:{detail.get('col')}]" if detail.get("line") else ""
        raise invalid_query(f"Syntax error: {detail.get('description') or error}{where}") from None
    if not statements:
        raise invalid_query("Syntax error: Unexpected end of script")
    for tree in statements:
        if isinstance(tree, exp.Command):
            raise invalid_query(f"Statement not supported by this BigQuery stand-in: {tree.sql('bigquery')[:80]}")
    return statements


def is_script(statements: list[exp.Expression]) -> bool:
    return len(statements) > 1 or isinstance(statements[0], (exp.Transaction, exp.Commit, exp.Rollback))


def write_targets(tree: exp.Expression) -> list[exp.Table]:
    """The tables (or, for schema statements, the dataset names) a statement writes."""
    if isinstance(tree, (exp.Insert, exp.Delete, exp.Update, exp.Merge, exp.Alter)):
        target = tree.this
        return [target.this if isinstance(target, exp.Schema) else target]
    if isinstance(tree, exp.TruncateTable):
        return list(tree.expressions)
    if isinstance(tree, exp.Create):
        target = tree.this
        return [target.this if isinstance(target, exp.Schema) else target]
    if isinstance(tree, exp.Drop):
        return list(tree.args.get("tables") or ([tree.this] if isinstance(tree.this, exp.Table) else []))
    return []


class Execution:
    """One job's statements on one DuckDB session."""

    def __init__(self, session: Session, ctx: Context, results_dir: Path, job_id: str):
        self.session = session
        self.con = session.con
        self.ctx = ctx
        self.results_dir = results_dir
        self.job_id = job_id
        self.in_transaction = False
        self.pending: list[_Change] = []
        self.outcome = Outcome()
        self.result_count = 0

    # script ------------------------------------------------------------------------------------
    def run(self, statements: list[exp.Expression], destination: dict | None, config: dict) -> Outcome:
        script = is_script(statements)
        try:
            for tree in statements:
                self.outcome.statements += 1
                self._statement(tree, destination if not script else None, config)
        except BaseException:
            if self.in_transaction:
                self._rollback()
            raise
        if self.in_transaction:  # the script ended inside a transaction: BigQuery rolls it back
            self._rollback()
        if script:
            self.outcome.statement_type = "SCRIPT"
        return self.outcome

    def _statement(self, tree: exp.Expression, destination: dict | None, config: dict) -> None:
        if isinstance(tree, exp.Transaction):
            if self.in_transaction:
                raise invalid_query("BEGIN TRANSACTION: a transaction is already in progress; transactions "
                                    "cannot be nested")
            self.con.execute("BEGIN TRANSACTION")
            self.in_transaction = True
            return
        if isinstance(tree, (exp.Commit, exp.Rollback)):
            verb = "COMMIT" if isinstance(tree, exp.Commit) else "ROLLBACK"
            if not self.in_transaction:
                raise invalid_query(f"{verb} TRANSACTION: there is no transaction in progress")
            if isinstance(tree, exp.Commit):
                self.con.execute("COMMIT")
                self.in_transaction = False
                self._apply(self.pending)
            else:
                self._rollback()
            self.pending = []
            return
        if self.in_transaction and self._is_permanent_ddl(tree):
            raise invalid_query(f"{_statement_label(tree)} statement is not supported inside a transaction: "
                                "transactions allow SELECT, INSERT, UPDATE, DELETE, MERGE, TRUNCATE TABLE and "
                                "DDL on temporary tables only")
        changes: list[_Change] = []
        if isinstance(tree, exp.Query):
            self._query(tree, destination, config, changes)
        elif destination:
            raise invalid("Cannot set destination table in jobs with DML or DDL statements")
        elif isinstance(tree, exp.Insert):
            self._insert(tree, changes)
        elif isinstance(tree, (exp.Delete, exp.Update)):
            self._delete_or_update(tree, changes)
        elif isinstance(tree, exp.Merge):
            self._merge(tree, changes)
        elif isinstance(tree, exp.TruncateTable):
            self._truncate(tree, changes)
        elif isinstance(tree, exp.Create):
            self._create(tree, changes)
        elif isinstance(tree, exp.Drop):
            self._drop(tree, changes)
        elif isinstance(tree, exp.Alter):
            self._alter(tree, changes)
        else:
            raise invalid_query(f"Statement not supported by this BigQuery stand-in: {tree.sql('bigquery')[:80]}")
        if self.in_transaction:
            self.pending.extend(changes)
        else:
            self._apply(changes)

    def _is_permanent_ddl(self, tree) -> bool:
        if isinstance(tree, exp.Create):
            return not _is_temporary(tree)
        if isinstance(tree, exp.Drop):
            return not all(t.args.get("db") is None and t.name in self.ctx.temp_tables
                           for t in write_targets(tree))
        return isinstance(tree, exp.Alter)

    def _rollback(self) -> None:
        try:
            self.con.execute("ROLLBACK")
        except duckdb.TransactionException:
            pass  # DuckDB already aborted the failed transaction
        self.in_transaction = False
        self.pending = []

    def _apply(self, changes: list[_Change]) -> None:
        catalog = self.session.storage.catalog
        for change in changes:
            if change.kind == "touch":
                catalog.update_table(*change.key, **change.options)
            elif change.kind == "create":
                catalog.create_table(*change.key, **change.options)
            elif change.kind == "drop":
                catalog.delete_table(*change.key)
            elif change.kind == "dataset":
                catalog.put_dataset(*change.key, **change.options)
            elif change.kind == "drop_dataset":
                catalog.delete_dataset(*change.key)
        if changes:
            self.session.forget()

    # preparing statements ----------------------------------------------------------------------
    def _prepare(self, tree: exp.Expression, skip: set[int] = frozenset()) -> tuple[str, dict, list[TableRef]]:
        parameters = parameter_nodes(tree, self.ctx)
        bind_parameter_values(tree, parameters)
        refs = resolve(tree, self.session, self.ctx, skip)
        for ref in refs:
            if ref.kind != "meta":
                self.outcome.referenced[ref.key] = None
        typecheck.check(tree, table_schemas(self.session, refs))
        sql = to_duckdb(tree, refs, self.session)
        values = used_params(sql, {p.duckdb_name: p.value for p in parameters})
        return sql, values, refs

    def _describe(self, sql: str, values: dict) -> list[tuple[Field, str]]:
        """(BigQuery field, DuckDB type) of each column the query returns, from DuckDB's binder."""
        rows = self._run(f"DESCRIBE {sql}", values)
        names = [row[0] for row in rows]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise invalid_query("Duplicate column names in the result are not supported. Found duplicate(s): "
                                + ", ".join(duplicates))
        return [(field_from_duckdb(name, kind), kind) for name, kind, *_ in rows]

    def _canonical(self, sql: str, values: dict) -> tuple[str, list[Field]]:
        """The query wrapped so every column has its BigQuery type's canonical DuckDB type."""
        described = self._describe(sql, values)
        fields = [f for f, _ in described]
        if not any(needs_cast(kind, f) for f, kind in described):
            return sql, fields
        columns = ", ".join(f"CAST({quote(f.name)} AS {f.duckdb_type()}) AS {quote(f.name)}" for f in fields)
        return f"SELECT {columns} FROM ({sql}) AS __result", fields

    def _run(self, sql: str, values: dict | None = None) -> list[tuple]:
        """Run one DuckDB statement and fetch all it returns (DuckDB refuses new work on a connection
        whose last result was not drained)."""
        try:
            return self.con.execute(sql, values or {}).fetchall()
        except duckdb.Error as error:
            raise duckdb_error(error, self.session) from None

    # SELECT ------------------------------------------------------------------------------------
    def _query(self, tree: exp.Query, destination: dict | None, config: dict, changes: list[_Change]) -> None:
        name_result_columns(tree)
        sql, values, _ = self._prepare(tree)
        sql, fields = self._canonical(sql, values)
        path = self.results_dir / (f"{self.job_id}.arrow" if self.result_count == 0 else
                                   f"{self.job_id}.{self.result_count}.arrow")
        self.result_count += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            reader = self.con.sql(sql, params=values).to_arrow_reader(BATCH_ROWS)
        except duckdb.Error as error:
            raise duckdb_error(error, self.session) from None
        total = 0
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, reader.schema) as writer:
            try:
                for batch in reader:
                    writer.write_batch(batch)
                    total += batch.num_rows
            except duckdb.Error as error:
                raise duckdb_error(error, self.session) from None
        result = QueryResult(path, fields, total)
        self.outcome.statement_type = "SELECT"
        self.outcome.result = result
        if destination:
            self._write_destination(result, destination, config, changes)

    # DML ---------------------------------------------------------------------------------------
    def _insert(self, tree: exp.Insert, changes: list[_Change]) -> None:
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        listed = [c.name for c in tree.this.expressions] if isinstance(tree.this, exp.Schema) else None
        project, dataset, table = self._target(target)
        temp = dataset is None
        table_fields = self._temp_fields(table) if temp else self.session.fields(project, dataset, table)
        if listed is not None:
            by_name = {f.name.lower(): f for f in table_fields}
            missing = [c for c in listed if c.lower() not in by_name]
            if missing:
                raise invalid_query(f"Column {missing[0]} is not present in table "
                                    f"{table_name(project, dataset, table)}")
            table_fields = [by_name[c.lower()] for c in listed]
        sql, values, _ = self._prepare(tree)
        source_sql = tree.expression.sql("duckdb")  # the rewritten source, after _prepare
        source_fields = [f for f, _ in self._describe(source_sql, used_params(source_sql, values))]
        if len(source_fields) != len(table_fields):
            raise invalid_query(f"Inserted row has wrong column count; Has {len(source_fields)}, expected "
                                f"{len(table_fields)}")
        for index, (given, expected) in enumerate(zip(source_fields, table_fields), start=1):
            if not assignable(given, expected):
                raise invalid_query(f"Query column {index} has type {given.sql_type()} which cannot be inserted "
                                    f"into column {expected.name}, which has type {expected.sql_type()}")
        (count,) = self._run(sql, values)[0]
        self.outcome.statement_type = "INSERT"
        self._dml(int(count), "insertedRowCount")
        if not temp:
            changes.append(_Change("touch", (project, dataset, table)))

    def _delete_or_update(self, tree, changes: list[_Change]) -> None:
        verb = "DELETE" if isinstance(tree, exp.Delete) else "UPDATE"
        if tree.args.get("where") is None:
            raise invalid_query(f"{verb} must have a WHERE clause")
        project, dataset, table = self._target(tree.this)
        sql, values, _ = self._prepare(tree)
        (count,) = self._run(sql, values)[0]
        self.outcome.statement_type = verb
        self._dml(int(count), "deletedRowCount" if verb == "DELETE" else "updatedRowCount")
        if dataset is not None:
            changes.append(_Change("touch", (project, dataset, table)))

    def _merge(self, tree: exp.Merge, changes: list[_Change]) -> None:
        project, dataset, table = self._target(tree.this)
        sql, values, _ = self._prepare(tree)
        (count,) = self._run(sql, values)[0]
        self.outcome.statement_type = "MERGE"
        self._dml(int(count), None)
        if dataset is not None:
            changes.append(_Change("touch", (project, dataset, table)))

    def _truncate(self, tree: exp.TruncateTable, changes: list[_Change]) -> None:
        deleted = 0
        for target in tree.expressions:
            project, dataset, table = self._target(target)
            ref = self._ref(project, dataset, table)
            (before,) = self._run(f"SELECT count(*) FROM {ref}")[0]
            self._run(f"DELETE FROM {ref}")
            deleted += int(before)
            if dataset is not None:
                changes.append(_Change("touch", (project, dataset, table)))
        self.outcome.statement_type = "TRUNCATE_TABLE"
        self._dml(deleted, "deletedRowCount")

    def _dml(self, count: int, stat: str | None) -> None:
        self.outcome.affected_rows = count
        self.outcome.dml_stats = {stat: str(count)} if stat else None

    def _target(self, node: exp.Table) -> tuple[str, str | None, str]:
        """(project, dataset, table) of a DML target that must exist; dataset None for a temp table."""
        project, dataset, table = qualify_name(node, self.ctx)
        if dataset is None:
            if table not in self.ctx.temp_tables:
                raise not_found(f"Table {table} was not found")
            return project, None, table
        check_dataset(self.session, self.ctx, project, dataset)
        if not self.session.table_exists(project, dataset, table):
            raise not_found(f"Table {table_name(project, dataset, table)} was not found in location "
                            f"{self.ctx.location}")
        return project, dataset, table

    def _ref(self, project: str, dataset: str | None, table: str) -> str:
        return f'"temp"."main".{quote(table)}' if dataset is None else self.session.ref(project, dataset, table)

    def _temp_fields(self, table: str) -> list[Field]:
        rows = self.con.execute(
            "SELECT column_name, data_type, is_nullable FROM duckdb_columns() WHERE database_name = 'temp' "
            "AND table_name = ? ORDER BY column_index", [table]).fetchall()
        return [field_from_duckdb(n, k, nullable) for n, k, nullable in rows]

    # DDL ---------------------------------------------------------------------------------------
    def _create(self, tree: exp.Create, changes: list[_Change]) -> None:
        kind = (tree.args.get("kind") or "").upper()
        if kind == "SCHEMA":
            return self._create_schema(tree, changes)
        if kind != "TABLE":
            raise invalid_query(f"CREATE {kind} is not supported by this BigQuery stand-in")
        schema_node = tree.this if isinstance(tree.this, exp.Schema) else None
        target = schema_node.this if schema_node is not None else tree.this
        temporary = _is_temporary(tree)
        replace = bool(tree.args.get("replace"))
        if_not_exists = bool(tree.args.get("exists"))
        if temporary:
            if target.args.get("db") is not None:
                raise invalid_query("Temporary tables may not be qualified with a dataset")
            project, dataset, table = self.ctx.project, None, target.name
            exists = table in self.ctx.temp_tables
        else:
            project, dataset, table = qualify_name(target, self.ctx)
            validate_table(table)
            check_dataset(self.session, self.ctx, project, dataset)
            exists = self.session.table_exists(project, dataset, table)
        self.outcome.statement_type = "CREATE_TABLE_AS_SELECT" if tree.expression is not None else "CREATE_TABLE"
        if dataset is not None:
            self.outcome.ddl_target_table = (project, dataset, table)
        if exists and if_not_exists:
            self.outcome.ddl_operation = "SKIP"
            return
        if exists and not replace:
            raise duplicate(f"Table {table_name(project, dataset, table) if dataset else table}")
        declared = _declared_fields(schema_node) if schema_node is not None else None
        select_sql, values, fields = None, {}, declared
        if tree.expression is not None:
            query = tree.expression
            name_result_columns(query)
            select_sql, values, _ = self._prepare(query, skip={id(target)})
            queried = [f for f, _ in self._describe(select_sql, values)]
            if declared is not None:
                if len(declared) != len(queried):
                    raise invalid_query(f"The number of columns in the column definition list does not match the "
                                        f"number of columns produced by the query ({len(declared)} vs {len(queried)})")
                for given, expected in zip(queried, declared):
                    if not assignable(given, expected):
                        raise invalid_query(f"Column {expected.name} of type {expected.sql_type()} cannot take "
                                            f"query column of type {given.sql_type()}")
            else:
                fields = queried
        if fields is None:
            raise invalid_query("CREATE TABLE needs a column list or AS SELECT")
        partitioning, clustering, description = self._table_options(tree, fields)
        ref = f'"temp"."main".{quote(table)}' if temporary else self.session.ref(project, dataset, table)
        prefix = "CREATE OR REPLACE" if replace else "CREATE"
        columns = ", ".join(f"{quote(f.name)} {f.duckdb_type()}{' NOT NULL' if f.mode == 'REQUIRED' else ''}"
                            for f in fields)
        with self._atomic():
            self._run(f"{prefix} {'TEMP ' if temporary else ''}TABLE {ref} ({columns})")
            if select_sql is not None:
                casts = ", ".join(f"CAST(__q.{quote(q.name)} AS {f.duckdb_type()})"
                                  for q, f in zip(queried, fields))
                order = f" ORDER BY {', '.join(quote(c) for c in clustering['fields'])}" if clustering else ""
                self._run(f"INSERT INTO {ref} SELECT {casts} FROM ({select_sql}) AS __q{order}", values)
        self.outcome.ddl_operation = "REPLACE" if exists else "CREATE"
        if temporary:
            self.ctx.temp_tables.add(table)
            return
        changes.append(_Change("create", (project, dataset, table), {
            "partitioning": partitioning, "clustering": clustering, "description": description,
            "notes": field_notes(fields)}))

    def _table_options(self, tree: exp.Create, fields: list[Field]):
        partitioning = clustering = description = None
        properties = tree.args.get("properties")
        for prop in properties.expressions if properties else ():
            if isinstance(prop, exp.PartitionedByProperty):
                partitioning = partition_spec(prop.this, fields)
            elif isinstance(prop, exp.ClusterProperty):
                clustering = {"fields": [c.name for c in prop.expressions]}
                check_clustering(clustering["fields"], fields)
            elif isinstance(prop, exp.Property) and prop.name.lower() == "description":
                description = prop.args["value"].name
            elif isinstance(prop, exp.TemporaryProperty):
                continue
            elif isinstance(prop, exp.Property):
                continue  # other OPTIONS (labels, expiration, ...) are accepted and not kept
            else:
                raise invalid_query(f"Table option not supported by this BigQuery stand-in: {prop.sql('bigquery')}")
        return partitioning, clustering, description

    def _create_schema(self, tree: exp.Create, changes: list[_Change]) -> None:
        target = tree.this
        dataset = validate_dataset(target.args["db"].name if target.args.get("db") else target.name)
        project = target.args["catalog"].name if target.args.get("catalog") else self.ctx.project
        self.outcome.statement_type = "CREATE_SCHEMA"
        self.outcome.ddl_target_dataset = (project, dataset)
        location = self.ctx.location or self.session.storage.default_location
        for prop in (tree.args.get("properties").expressions if tree.args.get("properties") else ()):
            if isinstance(prop, exp.LocationProperty):
                location = prop.this.name
        if self.session.dataset_exists(project, dataset):
            if tree.args.get("exists"):
                self.outcome.ddl_operation = "SKIP"
                return
            raise duplicate(f"Dataset {dataset_name(project, dataset)}")
        if self.session.place(project, dataset) is None:
            raise invalid(f"Dataset {dataset_name(project, dataset)} cannot be created in this job")
        self.session.create_dataset(project, dataset)
        self.outcome.ddl_operation = "CREATE"
        changes.append(_Change("dataset", (project, dataset, location)))

    def _drop(self, tree: exp.Drop, changes: list[_Change]) -> None:
        kind = (tree.args.get("kind") or "").upper()
        if kind == "SCHEMA":
            target = write_targets(tree)[0]
            dataset = target.args["db"].name if target.args.get("db") else target.name
            project = target.args["catalog"].name if target.args.get("catalog") else self.ctx.project
            self.outcome.statement_type = "DROP_SCHEMA"
            self.outcome.ddl_target_dataset = (project, dataset)
            if not self.session.dataset_exists(project, dataset):
                if tree.args.get("exists"):
                    self.outcome.ddl_operation = "SKIP"
                    return
                raise not_found(f"Dataset {dataset_name(project, dataset)}")
            if self.session.tables(project, dataset) and not tree.args.get("cascade"):
                raise invalid_query(f"Dataset {dataset_name(project, dataset)} is not empty; use DROP SCHEMA ... "
                                    "CASCADE to drop it with its tables")
            self.session.drop_dataset(project, dataset)
            self.outcome.ddl_operation = "DROP"
            changes.append(_Change("drop_dataset", (project, dataset)))
            return
        if kind != "TABLE":
            raise invalid_query(f"DROP {kind} is not supported by this BigQuery stand-in")
        self.outcome.statement_type = "DROP_TABLE"
        for target in write_targets(tree):
            project, dataset, table = qualify_name(target, self.ctx)
            if dataset is None:
                self._run(f'DROP TABLE "temp"."main".{quote(table)}')
                self.ctx.temp_tables.discard(table)
                self.outcome.ddl_operation = "DROP"
                continue
            check_dataset(self.session, self.ctx, project, dataset)
            self.outcome.ddl_target_table = (project, dataset, table)
            if not self.session.table_exists(project, dataset, table):
                if tree.args.get("exists"):
                    self.outcome.ddl_operation = "SKIP"
                    continue
                raise not_found(f"Table {table_name(project, dataset, table)}")
            self._run(f"DROP TABLE {self.session.ref(project, dataset, table)}")
            self.outcome.ddl_operation = "DROP"
            changes.append(_Change("drop", (project, dataset, table)))

    def _alter(self, tree: exp.Alter, changes: list[_Change]) -> None:
        project, dataset, table = self._target(tree.this)
        if dataset is None:
            raise invalid_query("ALTER TABLE on a temporary table is not supported")
        self.outcome.statement_type = "ALTER_TABLE"
        self.outcome.ddl_target_table = (project, dataset, table)
        existing = {f.name.lower() for f in self.session.fields(project, dataset, table)}
        ref = self.session.ref(project, dataset, table)
        added = []
        for action in tree.args.get("actions") or ():
            if not isinstance(action, exp.ColumnDef):
                raise invalid_query(f"ALTER TABLE action not supported by this BigQuery stand-in: "
                                    f"{action.sql('bigquery')}")
            new = field_from_sql_type(action.name, action.args["kind"])
            if any(isinstance(c.args.get("kind"), exp.NotNullColumnConstraint)
                   for c in action.args.get("constraints") or ()):
                raise invalid_query(f"Cannot add a REQUIRED column ({action.name}) to an existing table")
            if new.name.lower() in existing:
                if action.args.get("exists"):
                    continue
                raise invalid_query(f"Column already exists: {new.name}")
            self._run(f"ALTER TABLE {ref} ADD COLUMN {quote(new.name)} {new.duckdb_type()}")
            existing.add(new.name.lower())
            added.append(new.name)
        self.outcome.ddl_operation = "ALTER" if added else "SKIP"
        changes.append(_Change("touch", (project, dataset, table)))

    # destination tables ------------------------------------------------------------------------
    def _write_destination(self, result: QueryResult, destination: dict, config: dict,
                           changes: list[_Change]) -> None:
        project = destination.get("projectId") or self.ctx.project
        dataset = validate_dataset(destination.get("datasetId", ""))
        table, _, decorator = str(destination.get("tableId", "")).partition("$")
        validate_table(table)
        name = table_name(project, dataset, table)
        write = (config.get("writeDisposition") or "WRITE_EMPTY").upper()
        create = (config.get("createDisposition") or "CREATE_IF_NEEDED").upper()
        options = [str(o).upper() for o in config.get("schemaUpdateOptions") or ()]
        if write not in WRITE_DISPOSITIONS:
            raise invalid(f"Invalid value for writeDisposition: {write}")
        if create not in CREATE_DISPOSITIONS:
            raise invalid(f"Invalid value for createDisposition: {create}")
        unknown = [o for o in options if o not in SCHEMA_UPDATE_OPTIONS]
        if unknown:
            raise invalid(f"Invalid schema update option: {unknown[0]}")
        if options and not (write == "WRITE_APPEND" or (write == "WRITE_TRUNCATE" and decorator)):
            raise invalid("Schema update options should only be specified with WRITE_APPEND disposition, or with "
                          "WRITE_TRUNCATE disposition on a table partition.")
        check_dataset(self.session, self.ctx, project, dataset)
        requested_partitioning = partitioning_from_api(config.get("timePartitioning"))
        requested_clustering = config.get("clustering") or None
        exists = self.session.table_exists(project, dataset, table)
        recorded = self.session.storage.catalog.table(project, dataset, table) or {} if exists else {}
        partitioning = recorded.get("partitioning") if exists else requested_partitioning
        if exists and requested_partitioning and requested_partitioning != recorded.get("partitioning"):
            raise invalid(f"Incompatible table partitioning specification. Expects partitioning specification "
                          f"{_describe_partitioning(recorded.get('partitioning'))}, but input partitioning "
                          f"specification is {_describe_partitioning(requested_partitioning)}")
        day = _partition_day(decorator, partitioning, name) if decorator else None
        self.session.con.register("__result", pa.ipc.open_file(pa.memory_map(str(result.path))).read_all())
        try:
            with self._atomic():
                if not exists:
                    if create == "CREATE_NEVER":
                        raise not_found(f"Table {name} was not found in location {self.ctx.location}")
                    if partitioning:
                        check_partition_field(partitioning, result.fields)
                    if requested_clustering:
                        check_clustering(requested_clustering.get("fields") or [], result.fields)
                    self._check_rows_in_partition(day, partitioning, decorator, result.fields)
                    self._create_from_result(project, dataset, table, result.fields, requested_clustering)
                    changes.append(_Change("create", (project, dataset, table), {
                        "partitioning": partitioning, "clustering": requested_clustering}))
                    return
                table_fields = self.session.fields(project, dataset, table)
                ref = self.session.ref(project, dataset, table)
                in_target = ("" if day is None else
                             f" WHERE {_partition_expression(quote(partitioning['field']), table_fields, partitioning)}"
                             f" = DATE '{day.isoformat()}'")
                if write == "WRITE_EMPTY":
                    (rows,) = self._run(f"SELECT count(*) FROM {ref}{in_target}")[0]
                    if rows:
                        raise duplicate(f"Table {name}{'$' + decorator if decorator else ''}")
                self._check_rows_in_partition(day, partitioning, decorator, result.fields)
                if write == "WRITE_TRUNCATE" and day is None:
                    if partitioning:
                        check_partition_field(partitioning, result.fields)
                    self._run(f"DROP TABLE {ref}")
                    self._create_from_result(project, dataset, table, result.fields, recorded.get("clustering"))
                    changes.append(_Change("touch", (project, dataset, table), {"notes": {}}))
                    return
                merged = merge_for_write(table_fields, result.fields, name, "ALLOW_FIELD_ADDITION" in options,
                                         "ALLOW_FIELD_RELAXATION" in options)
                self._evolve(ref, table_fields, merged)
                if write == "WRITE_TRUNCATE":
                    self._run(f"DELETE FROM {ref}{in_target}")
                self._insert_result(ref, result.fields, merged, recorded.get("clustering"))
                changes.append(_Change("touch", (project, dataset, table)))
        finally:
            self.session.con.unregister("__result")

    def _check_rows_in_partition(self, day, partitioning, decorator, fields: list[Field]) -> None:
        if day is None:
            return
        expression = _partition_expression(quote(partitioning["field"]), fields, partitioning)
        (outside,) = self._run(
            f"SELECT count(*) FROM __result WHERE ({expression}) IS DISTINCT FROM DATE '{day.isoformat()}'"
        )[0]
        if outside:
            raise invalid(f"Some rows belong to different partitions rather than destination partition {decorator}")

    def _create_from_result(self, project, dataset, table, fields: list[Field], clustering) -> None:
        ref = self.session.ref(project, dataset, table)
        columns = ", ".join(f"{quote(f.name)} {f.duckdb_type()}" for f in fields)
        self._run(f"CREATE TABLE {ref} ({columns})")
        self._insert_result(ref, fields, fields, clustering)

    def _insert_result(self, ref: str, source: list[Field], target: list[Field], clustering) -> None:
        by_name = {f.name.lower(): f for f in source}
        columns = []
        for f in target:
            match = by_name.get(f.name.lower())
            columns.append(f"CAST(NULL AS {f.duckdb_type()})" if match is None else
                           conform_sql(f"__result.{quote(match.name)}", match, f))
        names = ", ".join(quote(f.name) for f in target)
        order = f" ORDER BY {', '.join(quote(c) for c in clustering['fields'])}" if clustering else ""
        self._run(f"INSERT INTO {ref} ({names}) SELECT {', '.join(columns)} FROM __result{order}")

    def _evolve(self, ref: str, current: list[Field], merged: list[Field]) -> None:
        try:
            evolve_table(self.con, ref, current, merged)
        except duckdb.Error as error:
            raise duckdb_error(error, self.session) from None

    def _atomic(self):
        return _Atomic(self)


class _Atomic:
    """One DuckDB transaction for a statement's several writes, unless the script already has one."""

    def __init__(self, execution: Execution):
        self.execution = execution
        self.owner = False

    def __enter__(self):
        if not self.execution.in_transaction:
            self.execution.con.execute("BEGIN TRANSACTION")
            self.owner = True
        return self

    def __exit__(self, kind, error, traceback):
        if not self.owner:
            return False
        if kind is None:
            self.execution.con.execute("COMMIT")
        else:
            try:
                self.execution.con.execute("ROLLBACK")
            except duckdb.TransactionException:
                pass
        return False


def evolve_table(con, ref: str, current: list[Field], merged: list[Field]) -> None:
    """ALTER a table from schema `current` to `merged`: added columns, added nested fields (the column's
    values are rebuilt with the new field NULL), REQUIRED relaxed to NULLABLE."""
    by_name = {f.name.lower(): f for f in current}
    for f in merged:
        old = by_name.get(f.name.lower())
        if old is None:
            con.execute(f"ALTER TABLE {ref} ADD COLUMN {quote(f.name)} {f.duckdb_type()}")
            continue
        if old.shape() != f.shape():
            con.execute(f"ALTER TABLE {ref} ALTER COLUMN {quote(f.name)} SET DATA TYPE {f.duckdb_type()} "
                        f"USING {conform_sql(quote(old.name), old, f)}")
        if old.mode == "REQUIRED" and f.mode != "REQUIRED":
            con.execute(f"ALTER TABLE {ref} ALTER COLUMN {quote(f.name)} DROP NOT NULL")


def assignable(given: Field, expected: Field) -> bool:
    """Whether a value of `given` may be stored in a column of `expected` (INSERT's rule: STRUCT
    fields match by position, scalars coerce only as BigQuery coerces)."""
    if given.repeated != expected.repeated:
        return False
    if given.type == "RECORD" or expected.type == "RECORD":
        return given.type == expected.type and len(given.fields) == len(expected.fields) and all(
            assignable(a, b) for a, b in zip(given.fields, expected.fields))
    return given.type == expected.type or (given.type, expected.type) in COERCIONS


def partition_spec(expression: exp.Expression, fields: list[Field]) -> dict:
    """BigQuery's timePartitioning for a `PARTITION BY` expression, validated against the columns."""
    by_name = {f.name.lower(): f for f in fields}

    def column(node) -> Field:
        if not isinstance(node, (exp.Column, exp.Identifier)):
            raise invalid_query(_PARTITION_RULE)
        found = by_name.get(node.name.lower())
        if found is None:
            raise invalid_query(f"Unrecognized name: {node.name}")
        return found

    unit = "DAY"
    if isinstance(expression, (exp.Column, exp.Identifier)):
        f = column(expression)
        if f.type != "DATE" or f.repeated:
            raise invalid_query(_PARTITION_RULE)
    elif isinstance(expression, exp.Date) and expression.args.get("zone") is None:
        f = column(expression.this)
        if f.type not in ("TIMESTAMP", "DATETIME"):
            raise invalid_query(_PARTITION_RULE)
    elif isinstance(expression, (exp.TimestampTrunc, exp.DatetimeTrunc, exp.DateTrunc)):
        f = column(expression.this)
        unit = (expression.text("unit") or "DAY").upper()
        allowed = {exp.TimestampTrunc: ("TIMESTAMP", _PARTITION_UNITS), exp.DatetimeTrunc: ("DATETIME", _PARTITION_UNITS),
                   exp.DateTrunc: ("DATE", {"MONTH", "YEAR"})}[type(expression)]
        if f.type != allowed[0] or unit not in allowed[1]:
            raise invalid_query(_PARTITION_RULE)
    else:
        raise invalid_query(_PARTITION_RULE)
    return {"type": unit, "field": f.name}


def check_clustering(columns: list[str], fields: list[Field]) -> None:
    by_name = {f.name.lower(): f for f in fields}
    if len(columns) > 4:
        raise invalid_query("Too many clustering columns: at most 4 are allowed")
    for name in columns:
        f = by_name.get(name.lower())
        if f is None:
            raise invalid(f"The field specified for clustering cannot be found in the schema. Invalid field: {name}")
        if f.repeated or f.type not in _CLUSTERABLE:
            raise invalid(f"Field {name} is of type {f.sql_type()} which is not supported for clustering")


def check_partition_field(partitioning: dict, fields: list[Field]) -> None:
    names = {f.name.lower(): f for f in fields}
    f = names.get(str(partitioning.get("field", "")).lower())
    if f is None or f.type not in ("DATE", "TIMESTAMP", "DATETIME") or f.repeated:
        raise invalid(f"The field specified for time partitioning can only be of type TIMESTAMP, DATE or DATETIME. "
                      f"The type found is: {f.sql_type() if f else 'missing'} (field {partitioning.get('field')})")


def partitioning_from_api(resource: dict | None) -> dict | None:
    if not resource:
        return None
    if not resource.get("field"):
        raise invalid("Ingestion-time partitioning (timePartitioning without a field) is not supported by this "
                      "BigQuery stand-in")
    unit = str(resource.get("type") or "DAY").upper()
    if unit not in _PARTITION_UNITS:
        raise invalid(f"Invalid value for timePartitioning.type: {unit}")
    return {"type": unit, "field": resource["field"]}


def _describe_partitioning(spec: dict | None) -> str:
    if not spec:
        return "none"
    return f"interval(type:{spec['type'].lower()},field:{spec['field']})"


def _partition_day(decorator: str, partitioning: dict | None, name: str) -> dt.date:
    if not partitioning:
        raise invalid(f"Cannot write to a partition of {name}: the table is not partitioned")
    if partitioning["type"] != "DAY" or not re.fullmatch(r"\d{8}", decorator):
        raise invalid(f"Invalid partition decorator ${decorator} for a table partitioned by "
                      f"{partitioning['type']} (this stand-in writes day partitions: $YYYYMMDD)")
    try:
        return dt.datetime.strptime(decorator, "%Y%m%d").date()
    except ValueError:
        raise invalid(f"Invalid partition decorator ${decorator}") from None


def _partition_expression(column_sql: str, fields: list[Field], partitioning: dict) -> str:
    by_name = {f.name.lower(): f for f in fields}
    f = by_name.get(partitioning["field"].lower())
    if f is None:
        raise invalid(f"The partitioning field {partitioning['field']} is missing from the rows written")
    return column_sql if f.type == "DATE" else f"CAST({column_sql} AS DATE)"


def _declared_fields(schema_node: exp.Schema) -> list[Field]:
    fields = []
    for column in schema_node.expressions:
        if not isinstance(column, exp.ColumnDef):
            raise invalid_query(f"Unsupported column definition: {column.sql('bigquery')}")
        f = field_from_sql_type(column.name, column.args["kind"])
        description = None
        for constraint in column.args.get("constraints") or ():
            kind = constraint.args.get("kind")
            if isinstance(kind, exp.NotNullColumnConstraint) and not f.repeated:
                f = Field(f.name, f.type, "REQUIRED", f.fields)
            elif isinstance(kind, exp.Properties):
                for prop in kind.expressions:
                    if isinstance(prop, exp.Property) and prop.name.lower() == "description":
                        description = prop.args["value"].name
        if description:
            f = Field(f.name, f.type, f.mode, f.fields, description)
        fields.append(f)
    return fields


def _is_temporary(tree: exp.Create) -> bool:
    properties = tree.args.get("properties")
    return bool(properties and any(isinstance(p, exp.TemporaryProperty) for p in properties.expressions))


def _statement_label(tree: exp.Expression) -> str:
    if isinstance(tree, exp.Create):
        return f"CREATE {(tree.args.get('kind') or '').upper()}"
    if isinstance(tree, exp.Drop):
        return f"DROP {(tree.args.get('kind') or '').upper()}"
    return "ALTER TABLE"


_DUCKDB_ERRORS = (
    (duckdb.ParserException, "invalidQuery", "Syntax error: "),
    (duckdb.BinderException, "invalidQuery", ""),
    (duckdb.CatalogException, "invalidQuery", ""),
    (duckdb.ConversionException, "invalidQuery", ""),
    (duckdb.OutOfRangeException, "invalidQuery", ""),
    (duckdb.InvalidInputException, "invalidQuery", ""),
    (duckdb.NotImplementedException, "invalidQuery", "Not supported: "),
    (duckdb.ConstraintException, "invalid", ""),
    (duckdb.TransactionException, "invalidQuery", ""),
    (duckdb.InterruptException, "stopped", "Job execution was cancelled: "),
)


def duckdb_error(error: duckdb.Error, session: Session | None = None) -> BigQueryError:
    """A DuckDB failure in BigQuery's terms (a query problem is the caller's: invalidQuery, HTTP 400)."""
    # DuckDB appends the statement's line and candidate signatures; the first part names the problem.
    message = str(error).split("\n\nLINE ")[0].split("\n\t")[0].strip()
    message = re.sub(r"^[A-Za-z ]+ Error: ", "", message)
    if session is not None:
        message = session.clean_message(message)
    for kind, reason, prefix in _DUCKDB_ERRORS:
        if isinstance(error, kind):
            return BigQueryError(reason, prefix + message, location="query" if reason == "invalidQuery" else None)
    if isinstance(error, duckdb.IOException) and "lock" in str(error).lower():
        return BigQueryError("backendError", f"Storage busy: {message}")
    log.exception("unexpected DuckDB error", exc_info=error)
    return BigQueryError("internalError", f"An internal error occurred: {type(error).__name__}: {message}")
