"""Snapshot assets: the three Personalize datasets of one training run, as immutable CSV objects in the lake.

Rows are streamed from the warehouse in Arrow batches and written with pyarrow's CSV writer, so no
step holds a whole dataset in memory. The CSVs follow Personalize's rules: the header is the schema's
field names, timestamps are epoch seconds, multi-value categoricals are `|`-joined, booleans are
lower-case `true`/`false`, text is UTF-8.
"""


import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.csv as pa_csv
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
)
from pydantic import Field

from recsys_platform.partitions import daily_partitions
from recsys_platform.personalize.config import DatasetSpec, PersonalizeSetup, load_setup
from recsys_platform.resources.lake import LakeResource
from recsys_platform.resources.warehouse import Warehouse, read_sql
from recsys_platform.settings import ga4_timezone

GROUP = "personalize"
DEFAULT_WINDOW_DAYS = 90
MIN_INTERACTIONS = 1000
MIN_USERS_WITH_TWO_INTERACTIONS = 25
PREVIEW_ROWS = 5

# Avro type -> Arrow type written to the CSV. Floats go out as float64 so prices print as stored.
_CSV_TYPES = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
}


@dataclass
class SnapshotStats:
    rows: int = 0
    null_counts: dict[str, int] = field(default_factory=dict)
    preview: pa.Table | None = None


@dataclass(frozen=True)
class TrainingWindow:
    """The days one training run learns from, and where the platform's holdout starts."""

    training_date: dt.date
    window_days: int
    holdout_days: int
    timezone: str

    @property
    def start(self) -> dt.date:
        return self.training_date - dt.timedelta(days=self.window_days - 1)

    @property
    def holdout_start(self) -> dt.date:
        return self.training_date - dt.timedelta(days=self.holdout_days - 1)

    @property
    def holdout_cut(self) -> int:
        """Epoch seconds of the holdout's first day's midnight in the property's time zone."""
        midnight = dt.datetime.combine(self.holdout_start, dt.time(), tzinfo=ZoneInfo(self.timezone))
        return int(midnight.timestamp())


def training_window(partition_key: str, window_days: int, setup: PersonalizeSetup) -> TrainingWindow:
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days}")
    if setup.holdout.days >= window_days:
        raise ValueError(
            f"the holdout ({setup.holdout.days} days) must be shorter than the training window ({window_days} days)"
        )
    return TrainingWindow(dt.date.fromisoformat(partition_key), window_days, setup.holdout.days, ga4_timezone())


def window_params(window: TrainingWindow, setup: PersonalizeSetup) -> dict:
    return {
        "window_start": window.start,
        "window_end": window.training_date,
        "holdout_cut": window.holdout_cut,
        "holdout_seed": setup.holdout.seed,
        "holdout_percent": setup.holdout.percent_users,
    }


def snapshot_key(dataset: str, training_date: dt.date, run_id: str) -> str:
    """Immutable per training run: an import job always reads what the run that named it wrote."""
    return f"personalize/{dataset}/{training_date.isoformat()}/{run_id}.csv"


def csv_schema(spec: DatasetSpec) -> pa.Schema:
    fields = json.loads(spec.schema_json())["fields"]
    arrow_fields = []
    for f in fields:
        avro = f["type"]
        nullable = isinstance(avro, list)
        base = next(t for t in avro if t != "null") if nullable else avro
        arrow_fields.append(pa.field(f["name"], _CSV_TYPES[base], nullable=nullable))
    return pa.schema(arrow_fields)


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
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


def write_csv_snapshot(batches: Iterable[pa.RecordBatch], schema: pa.Schema, lake: LakeResource, key: str) -> SnapshotStats:
    """Streams batches into a Personalize CSV at `key`; returns row and null counts and a preview."""
    stats = SnapshotStats(null_counts={name: 0 for name in schema.names})
    with lake.open_writer(key) as handle:
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
    return stats


def markdown_table(table: pa.Table | None, limit: int = PREVIEW_ROWS) -> str:
    if table is None or table.num_rows == 0:
        return "(no rows)"
    rows = table.slice(0, limit).to_pylist()
    header = "| " + " | ".join(table.schema.names) + " |"
    rule = "|" + "---|" * len(table.schema.names)
    # Multi-value categoricals hold '|', which would otherwise split a Markdown cell.
    body = ["| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row.values()) + " |"
            for row in rows]
    return "\n".join([header, rule, *body])


def schema_check(spec: DatasetSpec, schema: pa.Schema, lake: LakeResource, key: str, stats: SnapshotStats) -> AssetCheckResult:
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


def _snapshot_metadata(lake: LakeResource, key: str, stats: SnapshotStats, extra: dict) -> dict:
    return {
        "uri": MetadataValue.path(lake.uri(key)),
        "key": key,
        "rows": MetadataValue.int(stats.rows),
        "preview": MetadataValue.md(markdown_table(stats.preview)),
        **extra,
    }


class InteractionsSnapshotConfig(Config):
    window_days: int = Field(default=DEFAULT_WINDOW_DAYS, description="Days of interactions one training run learns from.")


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


@asset(
    group_name=GROUP,
    kinds={"duckdb", "bigquery", "s3"},
    partitions_def=daily_partitions,
    deps=[AssetDep("interactions", partition_mapping=TimeWindowPartitionMapping(start_offset=-(DEFAULT_WINDOW_DAYS - 1)))],
    check_specs=[
        AssetCheckSpec("csv_matches_schema", asset="personalize_interactions_csv", blocking=True,
                       description="Header is the Avro schema's field names; required fields are never empty."),
        AssetCheckSpec("personalize_minimums", asset="personalize_interactions_csv", blocking=True,
                       description="At least 1,000 interactions and 25 users with 2+ interactions after the "
                                   "solution's event-type filter."),
    ],
)
def personalize_interactions_csv(
    context: AssetExecutionContext, config: InteractionsSnapshotConfig, warehouse: Warehouse, lake: LakeResource
) -> MaterializeResult:
    """Personalize interactions dataset for the training run of this day: USER_ID, ITEM_ID, TIMESTAMP
    (epoch s), EVENT_TYPE, EVENT_VALUE from `interactions` over the rolling training window ending on
    the partition's day, minus the platform holdout's target period. Written once per run to an
    immutable lake key that the dataset import job reads."""
    setup = load_setup()
    spec = setup.datasets["interactions"]
    window = training_window(context.partition_key, config.window_days, setup)
    params = window_params(window, setup)
    key = snapshot_key("interactions", window.training_date, context.run.run_id)
    schema = csv_schema(spec)
    stats = write_csv_snapshot(
        warehouse.iter_batches(read_sql(__file__, "personalize_interactions.sql"), params), schema, lake, key
    )
    return MaterializeResult(
        metadata=_snapshot_metadata(lake, key, stats, {
            "window": f"{window.start} .. {window.training_date}",
            "window_days": MetadataValue.int(config.window_days),
            "holdout_cut": f"{window.holdout_start} (epoch {window.holdout_cut})",
        }),
        check_results=[
            schema_check(spec, schema, lake, key, stats),
            minimums_check(warehouse, params, setup.solution.event_type),
        ],
    )


def _product_db_snapshot_asset(dataset: str, id_field: str, description: str):
    """The snapshot asset of one product DB table (`items` or `users`): the same steps, a different dataset."""
    asset_name = f"personalize_{dataset}_csv"

    @asset(
        name=asset_name,
        description=description,
        group_name=GROUP,
        kinds={"duckdb", "bigquery", "s3"},
        partitions_def=daily_partitions,
        deps=[AssetDep(["product_db", dataset])],
        check_specs=[AssetCheckSpec("csv_matches_schema", asset=asset_name, blocking=True,
                                    description=f"Header is the Avro schema's field names; {id_field} is never empty.")],
    )
    def product_db_snapshot(context: AssetExecutionContext, warehouse: Warehouse, lake: LakeResource) -> MaterializeResult:
        spec = load_setup().datasets[dataset]
        schema = csv_schema(spec)
        key = snapshot_key(dataset, dt.date.fromisoformat(context.partition_key), context.run.run_id)
        rows = warehouse.iter_batches(read_sql(__file__, f"personalize_{dataset}.sql"))
        stats = write_csv_snapshot(rows, schema, lake, key)
        return MaterializeResult(
            metadata=_snapshot_metadata(lake, key, stats, {}),
            check_results=[schema_check(spec, schema, lake, key, stats)],
        )

    return product_db_snapshot


personalize_items_csv = _product_db_snapshot_asset(
    "items", "ITEM_ID",
    "Personalize items dataset for this day's training run: the product DB catalogue with PRICE, "
    "CATEGORIES (`l1|l2`), IS_AVAILABLE and CREATION_TIMESTAMP, as an immutable CSV in the lake.",
)
personalize_users_csv = _product_db_snapshot_asset(
    "users", "USER_ID",
    "Personalize users dataset for this day's training run: the product DB's users with SIGNUP_TIMESTAMP, "
    "as an immutable CSV in the lake.",
)


def iter_holdout_rows(warehouse: Warehouse, window: TrainingWindow, setup: PersonalizeSetup) -> Iterator[pa.RecordBatch]:
    params = {**window_params(window, setup), "target_event_type": setup.holdout.target_event_type}
    return warehouse.iter_batches(read_sql(__file__, "personalize_purchase_holdout.sql"), params)
