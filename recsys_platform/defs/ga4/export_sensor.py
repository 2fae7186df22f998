"""ga4_export_sensor: turns the export's shard listing into runs of the GA4 day job."""

import json

from dagster import (
    AssetMaterialization,
    DailyPartitionsDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from recsys_platform.defs.ga4.daily_job import GA4_DAILY_JOB
from recsys_platform.lib.warehouse.interface import Warehouse


def build_ga4_export_sensor(partitions: DailyPartitionsDefinition) -> SensorDefinition:
    @sensor(
        job_name=GA4_DAILY_JOB,
        minimum_interval_seconds=300,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Lists the GA4 export's shards with one metadata query per tick and requests a run for each day "
            "whose shard appeared or was rewritten (GA4 rewrites a day for up to 72 hours as late events "
            "arrive). The run key is day + modification time, so a tick never requests the same work twice."
        ),
    )
    def ga4_export_sensor(context: SensorEvaluationContext, warehouse: Warehouse):
        return ga4_export_tick(context, warehouse, partitions)

    return ga4_export_sensor


def ga4_export_tick(context: SensorEvaluationContext, warehouse: Warehouse, partitions: DailyPartitionsDefinition):
    seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    valid_keys = set(partitions.get_partition_keys())
    run_requests, reports = [], []
    for shard in warehouse.list_export_shards():
        partition_key = shard.day.isoformat()
        if partition_key not in valid_keys or seen.get(shard.suffix) == shard.last_modified_ms:
            continue
        change = "rewritten" if shard.suffix in seen else "new"
        run_requests.append(
            RunRequest(
                run_key=f"{partition_key}@{shard.last_modified_ms}",
                partition_key=partition_key,
                tags={"recsys/ga4_shard": shard.table_id, "recsys/shard_change": change},
            )
        )
        reports.append(
            AssetMaterialization(
                asset_key="ga4_export",
                partition=partition_key,
                metadata={
                    "table_id": shard.table_id,
                    "last_modified_ms": shard.last_modified_ms,
                    "dagster/row_count": shard.row_count,
                    "change": change,
                },
            )
        )
        seen[shard.suffix] = shard.last_modified_ms
    if not run_requests:
        return SkipReason("no GA4 export shard appeared or changed since the last tick")
    return SensorResult(run_requests=run_requests, asset_events=reports, cursor=json.dumps(seen, sort_keys=True))
