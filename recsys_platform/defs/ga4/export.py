"""The GA4 BigQuery export: the external source of the graph."""

from dagster import AssetSpec, DailyPartitionsDefinition


def build_ga4_export(partitions: DailyPartitionsDefinition) -> AssetSpec:
    return AssetSpec(
        key="ga4_export",
        description=(
            "The GA4 properties' BigQuery export: one `events_YYYYMMDD` table per property-local day in each "
            "property's dataset `analytics_<property id>`, written by Google and rewritten for up to 72 hours "
            "as late events arrive. Observed by `ga4_export_sensor`, which reports a partition each time one "
            "of a day's tables appears or changes."
        ),
        partitions_def=partitions,
        group_name="ga4",
        kinds={"bigquery"},
    )
