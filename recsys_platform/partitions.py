"""The one daily partitioning of the platform: property-local days of the GA4 export."""

from dagster import DailyPartitionsDefinition

from recsys_platform.settings import ga4_timezone, partitions_start_date

daily_partitions = DailyPartitionsDefinition(
    start_date=partitions_start_date(),
    timezone=ga4_timezone(),
    # GA4 exports a day after it ends; a partition is due once its day is over.
    end_offset=0,
)
