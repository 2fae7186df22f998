"""Snapshot assets: the three Personalize datasets of one training run, as immutable CSV objects in the lake.

Rows are streamed from the warehouse in Arrow batches and written with pyarrow's CSV writer, so no
step holds a whole dataset in memory. The CSVs follow Personalize's rules: the header is the schema's
field names, timestamps are epoch seconds, multi-value categoricals are `|`-joined, text is UTF-8.
Each asset hands the next step a `DatasetSnapshot` (URI, rows, content hash, training window). The
interactions snapshot also writes the training day's rows alone (the increment an INCREMENTAL import
appends; held-out users' rows are never in it, since the whole day lies after the holdout cut).
"""

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
)

from recsys_platform.defs.personalize.handoffs import DatasetSnapshot, SnapshotPart, TrainingWindow
from recsys_platform.defs.personalize.personalize_setup import DatasetSpec, PersonalizeSetup
from recsys_platform.defs.product_db.contract import ProductDbContract, contract_params, read_shop_sql
from recsys_platform.lib.lake import LakeResource
from recsys_platform.lib.sql_files import read_sql
from recsys_platform.lib.warehouse.interface import Warehouse
from recsys_platform.shared.personalize_facts import MIN_INTERACTIONS, MIN_USERS_WITH_TWO_INTERACTIONS

if TYPE_CHECKING:  # imported where used: loading the definitions (webserver, run worker) does without pyarrow
    import pyarrow as pa

GROUP = "personalize"
HANDOFF_IO_MANAGER = "handoff_io_manager"
PREVIEW_ROWS = 5



@dataclass
class SnapshotStats:
    rows: int = 0
    null_counts: dict[str, int] = field(default_factory=dict)
    preview: "pa.Table | None" = None
    sha256: str = ""


def training_window(partition_key: str, setup: PersonalizeSetup, timezone: str) -> TrainingWindow:
    """The configured training window (personalize.yaml `training.window_days`) ending on the partition's day."""
    return TrainingWindow(dt.date.fromisoformat(partition_key), setup.window_days, setup.holdout.days, timezone)


def window_params(window: TrainingWindow, setup: PersonalizeSetup) -> dict:
    return {
        "window_start": window.start,
        "window_end": window.training_date,
        "holdout_cut": window.holdout_cut,
        "holdout_seed": setup.holdout.seed,
        "holdout_percent": setup.holdout.percent_users,
    }


def snapshot_key(dataset: str, training_date: dt.date, run_id: str, part: str = "") -> str:
    """Immutable per training run: an import job always reads what the run that named it wrote."""
    return f"personalize/{dataset}/{training_date.isoformat()}/{run_id}{'.' + part if part else ''}.csv"


def csv_type(avro: str) -> "pa.DataType":
    """The Arrow type a CSV column of Avro type `avro` is written as. Floats go out as float64 so prices print
    as stored."""
    import pyarrow as pa

    return {"string": pa.string(), "int": pa.int32(), "long": pa.int64(), "float": pa.float64(),
            "double": pa.float64(), "boolean": pa.bool_()}[avro]


def csv_schema(spec: DatasetSpec) -> "pa.Schema":
    import pyarrow as pa

    fields = json.loads(spec.schema_json())["fields"]
    arrow_fields = []
    for f in fields:
        avro = f["type"]
        nullable = isinstance(avro, list)
        base = next(t for t in avro if t != "null") if nullable else avro
        arrow_fields.append(pa.field(f["name"], csv_type(base), nullable=nullable))
    return pa.schema(arrow_fields)


def _conform(batch: "pa.RecordBatch", schema: "pa.Schema") -> "pa.RecordBatch":
    import pyarrow as pa

    by_upper = {name.upper(): name for name in batch.schema.names}
    missing = [f.name for f in schema if f.name.upper() not in by_upper]
    if missing:
        raise ValueError(f"query result lacks schema fields {missing}; it has {batch.schema.names}")
    columns = []
    for f in schema:
        column = batch.column(by_upper[f.name.upper()])
        if pa.types.is_temporal(column.type) and pa.types.is_integer(f.type):
            # Arrow would cast to micro- or nanoseconds since the epoch; Personalize reads seconds.
            raise ValueError(f"{f.name} is {column.type}, but Personalize needs epoch seconds; "
                             "convert it in the query (UNIX_SECONDS)")
        columns.append(column.cast(f.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class _HashingWriter:
    """A binary file wrapper that hashes what goes through it (the snapshot's content identity)."""

    def __init__(self, handle):
        self._handle, self.digest = handle, hashlib.sha256()

    def write(self, data) -> int:
        self.digest.update(data)
        return self._handle.write(data)

    def flush(self) -> None:
        self._handle.flush()

    @property
    def closed(self) -> bool:
        return self._handle.closed


def write_csv_snapshot(batches: Iterable["pa.RecordBatch"], schema: "pa.Schema", lake: LakeResource, key: str) -> SnapshotStats:
    """Streams batches into a Personalize CSV at `key`; returns row and null counts, a preview and the hash."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    stats = SnapshotStats(null_counts={name: 0 for name in schema.names})
    with lake.open_writer(key) as raw_handle:
        handle = _HashingWriter(raw_handle)
        # The header is the schema's field names as written (pyarrow would quote them, like every string).
        handle.write((",".join(schema.names) + "\n").encode("utf-8"))
        with pa_csv.CSVWriter(handle, schema, write_options=pa_csv.WriteOptions(include_header=False)) as writer:
            for raw in batches:
                batch = _conform(raw, schema)
                writer.write_batch(batch)
                stats.rows += batch.num_rows
                for name in schema.names:
                    stats.null_counts[name] += batch.column(name).null_count
                if stats.preview is None or stats.preview.num_rows < PREVIEW_ROWS:
                    head = pa.Table.from_batches([batch.slice(0, PREVIEW_ROWS)])
                    stats.preview = head if stats.preview is None else pa.concat_tables([stats.preview, head])
        stats.sha256 = handle.digest.hexdigest()
    return stats


def markdown_table(table: "pa.Table | None", limit: int = PREVIEW_ROWS) -> str:
    if table is None or table.num_rows == 0:
        return "(no rows)"
    rows = table.slice(0, limit).to_pylist()
    header = "| " + " | ".join(table.schema.names) + " |"
    rule = "|" + "---|" * len(table.schema.names)
    # Multi-value categoricals hold '|', which would otherwise split a Markdown cell.
    body = ["| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row.values()) + " |"
            for row in rows]
    return "\n".join([header, rule, *body])


def schema_check(spec: DatasetSpec, schema: "pa.Schema", lake: LakeResource, key: str, stats: SnapshotStats) -> AssetCheckResult:
    """The CSV's header is the schema's field names, in order, and required fields have no empty values."""
    first_line = lake.read_head(key).split(b"\n", 1)[0].decode("utf-8")
    written = first_line.rstrip("\r").split(",")
    expected = spec.field_names()
    problems = []
    if written != expected:
        problems.append(f"header {written} != schema fields {expected}")
    for f in schema:
        if not f.nullable and stats.null_counts.get(f.name, 0):
            problems.append(f"{stats.null_counts[f.name]} rows have no {f.name} (required)")
    return AssetCheckResult(
        check_name="csv_matches_schema",
        passed=not problems,
        metadata={"problems": "; ".join(problems) or "none", "fields": ", ".join(expected)},
    )


def minimums_check(warehouse: Warehouse, params: dict, event_type: str | None) -> AssetCheckResult:
    counts = warehouse.query(
        read_sql(__file__, "personalize_interactions_minimums.sql"), {**params, "event_type": event_type or ""}
    ).to_pylist()[0]
    interactions = int(counts["interactions"] or 0)
    users = int(counts["users_with_two_interactions"] or 0)
    failures = []
    if interactions < MIN_INTERACTIONS:
        failures.append(f"{interactions} interactions (Personalize needs at least {MIN_INTERACTIONS})")
    if users < MIN_USERS_WITH_TWO_INTERACTIONS:
        failures.append(
            f"{users} users with 2+ interactions (Personalize needs at least {MIN_USERS_WITH_TWO_INTERACTIONS})"
        )
    return AssetCheckResult(
        check_name="personalize_minimums",
        passed=not failures,
        description="; ".join(failures) or None,
        metadata={
            "event_type_filter": event_type or "(all event types)",
            "interactions": MetadataValue.int(interactions),
            "users_with_two_interactions": MetadataValue.int(users),
            "failures": "; ".join(failures) or "none",
        },
    )


def _snapshot(dataset: str, lake: LakeResource, key: str, stats: SnapshotStats,
              window: TrainingWindow | None = None) -> DatasetSnapshot:
    return DatasetSnapshot(dataset=dataset, uri=lake.uri(key), key=key, rows=stats.rows, sha256=stats.sha256,
                           window=window)


def _snapshot_metadata(snapshot: DatasetSnapshot, stats: SnapshotStats) -> dict:
    return {
        "uri": MetadataValue.path(snapshot.uri),
        "dagster/row_count": MetadataValue.int(snapshot.rows),
        "sha256": snapshot.sha256,
        "preview": MetadataValue.md(markdown_table(stats.preview)),
    }


def build_interactions_snapshot(setup: PersonalizeSetup, partitions: DailyPartitionsDefinition,
                                timezone: str) -> AssetsDefinition:
    @asset(
        group_name=GROUP,
        kinds={"duckdb", "bigquery", "s3"},
        partitions_def=partitions,
        io_manager_key=HANDOFF_IO_MANAGER,
        # Lineage follows the configured window: the snapshot reads that many days of interactions.
        deps=[AssetDep("interactions",
                       partition_mapping=TimeWindowPartitionMapping(start_offset=-(setup.window_days - 1)))],
        check_specs=[
            AssetCheckSpec("csv_matches_schema", asset="personalize_interactions_csv", blocking=True,
                           description="Header is the Avro schema's field names; required fields are never empty."),
            AssetCheckSpec("personalize_minimums", asset="personalize_interactions_csv", blocking=True,
                           description="At least 1,000 interactions and 25 users with 2+ interactions after the "
                                       "solution's event-type filter."),
        ],
    )
    def personalize_interactions_csv(
        context: AssetExecutionContext, warehouse: Warehouse, lake: LakeResource
    ):
        """Personalize interactions dataset for the training run of this day: USER_ID, ITEM_ID, TIMESTAMP
        (epoch s), EVENT_TYPE, EVENT_VALUE from `interactions` over the rolling training window ending on
        the partition's day, minus the platform holdout's target period. Written once per run to an
        immutable lake key that the dataset import job reads."""
        spec = setup.datasets["interactions"]
        window = training_window(context.partition_key, setup, timezone)
        params = window_params(window, setup)
        key = snapshot_key("interactions", window.training_date, context.run.run_id)
        schema = csv_schema(spec)
        sql = read_sql(__file__, "personalize_interactions.sql")
        stats = write_csv_snapshot(warehouse.iter_batches(sql, params), schema, lake, key)
        # The same rows for the training day alone: what an INCREMENTAL import appends to the datasets.
        increment_key = snapshot_key("interactions", window.training_date, context.run.run_id, "increment")
        increment_stats = write_csv_snapshot(
            warehouse.iter_batches(sql, {**params, "window_start": window.training_date}), schema, lake, increment_key
        )
        increment = SnapshotPart(lake.uri(increment_key), increment_key, increment_stats.rows, increment_stats.sha256,
                                 window.training_date, window.training_date)
        snapshot = dataclasses.replace(_snapshot("interactions", lake, key, stats, window), increment=increment)
        return MaterializeResult(
            value=snapshot,
            metadata={
                **_snapshot_metadata(snapshot, stats),
                "window": window.label,
                "window_days": MetadataValue.int(window.window_days),
                "holdout_cut": f"{window.holdout_start} (epoch {window.holdout_cut})",
                "increment_uri": MetadataValue.path(increment.uri),
                "increment_rows": MetadataValue.int(increment.rows),
                "increment_sha256": increment.sha256,
            },
            check_results=[
                schema_check(spec, schema, lake, key, stats),
                minimums_check(warehouse, params, setup.solution.event_type),
            ],
        )

    return personalize_interactions_csv


def build_product_db_snapshot(dataset: str, id_field: str, description: str, setup: PersonalizeSetup,
                              partitions: DailyPartitionsDefinition, contract: ProductDbContract) -> AssetsDefinition:
    """The snapshot asset of one product DB table (`items` or `users`): the same steps, a different dataset."""
    asset_name = f"personalize_{dataset}_csv"

    @asset(
        name=asset_name,
        description=description,
        group_name=GROUP,
        kinds={"duckdb", "bigquery", "s3"},
        partitions_def=partitions,
        io_manager_key=HANDOFF_IO_MANAGER,
        deps=[AssetDep(["product_db", dataset])],
        check_specs=[AssetCheckSpec("csv_matches_schema", asset=asset_name, blocking=True,
                                    description=f"Header is the Avro schema's field names; {id_field} is never empty.")],
    )
    def product_db_snapshot(context: AssetExecutionContext, warehouse: Warehouse, lake: LakeResource):
        spec = setup.datasets[dataset]
        schema = csv_schema(spec)
        key = snapshot_key(dataset, dt.date.fromisoformat(context.partition_key), context.run.run_id)
        sql = read_shop_sql(read_sql(__file__, f"personalize_{dataset}.sql"), contract, warehouse)
        rows = warehouse.iter_batches(sql, contract_params(contract))
        stats = write_csv_snapshot(rows, schema, lake, key)
        snapshot = _snapshot(dataset, lake, key, stats)
        return MaterializeResult(
            value=snapshot,
            metadata=_snapshot_metadata(snapshot, stats),
            check_results=[schema_check(spec, schema, lake, key, stats)],
        )

    return product_db_snapshot


def build_snapshot_assets(setup: PersonalizeSetup, partitions: DailyPartitionsDefinition, timezone: str,
                          contract: ProductDbContract) -> list[AssetsDefinition]:
    return [
        build_interactions_snapshot(setup, partitions, timezone),
        build_product_db_snapshot(
            "items", "ITEM_ID",
            "Personalize items dataset for this day's training run: the product DB catalogue with PRICE, "
            "CATEGORIES (`l1|l2`), IS_AVAILABLE and CREATION_TIMESTAMP, as an immutable CSV in the lake.",
            setup, partitions, contract,
        ),
        build_product_db_snapshot(
            "users", "USER_ID",
            "Personalize users dataset for this day's training run: the product DB's users with "
            "SIGNUP_TIMESTAMP, as an immutable CSV in the lake.",
            setup, partitions, contract,
        ),
    ]
