"""The GA4 BigQuery export schema as Arrow types: table kinds, names, and which columns a table has on a date.

Field names and order follow Google's documented export schema ("[GA4] BigQuery Export schema"); BigQuery
types map to Arrow as STRING -> string, INTEGER -> int64, FLOAT -> float64, BOOLEAN -> bool, RECORD ->
struct and REPEATED RECORD -> list<struct>, which DuckDB stores as VARCHAR / BIGINT / DOUBLE / BOOLEAN /
STRUCT / LIST. `session_traffic_source_last_click` keeps only its manual and cross-channel campaign records,
and `publisher` (ad revenue of apps) is omitted.

Table kinds in one `analytics_<property_id>` dataset ("[GA4] BigQuery Export schema", Tables):
  events_YYYYMMDD           daily export; rewritten for up to three days as late events arrive
  events_intraday_YYYYMMDD  streaming export; filled during the day, deleted once the day's daily table
                            is complete (so for a while both exist)
  events_fresh_YYYYMMDD     GA4 360's "fresh daily" export, processed every 30-60 minutes ("[GA4]
                            Discrepancies between daily export and fresh daily")

A table's columns depend on its date, because Google adds fields to new tables and never back-fills old
ones. Google publishes no per-field start date in the schema page, so the cut-overs below are the first
days the simulator writes each field, taken from the earliest public dating of each addition:
  collected_traffic_source   2023-05-29  (the schema page documented it by then: Velir/dbt-ga4 #205)
  is_active_user             2023-07-24  ("Google has just added": Velir/dbt-ga4 #251); daily and fresh
                                         tables only: "Included in only the daily tables" (schema page)
  session_traffic_source_last_click, batch_event_index, batch_ordering_id, batch_page_id
                             2024-07-19  ("[GA4] What's new in Google Analytics", entry of July 19, 2024:
                                         session traffic source in the BigQuery export; the batch fields
                                         were documented in the same release)
So a shard dated before 2023-05-29 has the 23 base columns, and one dated 2024-07-19 or later has all 29.
`privacy_info` (consent mode, added in 2021) is among the base columns: the simulator's dates do not go
back that far. `items.item_params` (added in late 2023) is always present.
"""

from __future__ import annotations

import re
from datetime import date, datetime

import pyarrow as pa

S, I, F, B = pa.string(), pa.int64(), pa.float64(), pa.bool_()


def _struct(*fields: tuple[str, pa.DataType]) -> pa.StructType:
    return pa.struct([pa.field(name, kind) for name, kind in fields])


PARAM_VALUE = _struct(("string_value", S), ("int_value", I), ("float_value", F), ("double_value", F))
PARAM = _struct(("key", S), ("value", PARAM_VALUE))
PARAMS = pa.list_(PARAM)

USER_PROPERTY = _struct(
    ("key", S),
    ("value", _struct(("string_value", S), ("int_value", I), ("float_value", F), ("double_value", F),
                      ("set_timestamp_micros", I))),
)

PRIVACY_INFO = _struct(("analytics_storage", S), ("ads_storage", S), ("uses_transient_token", S))
USER_LTV = _struct(("revenue", F), ("currency", S))
WEB_INFO = _struct(("browser", S), ("browser_version", S), ("hostname", S))
DEVICE = _struct(
    ("category", S),
    ("mobile_brand_name", S),
    ("mobile_model_name", S),
    ("mobile_marketing_name", S),
    ("mobile_os_hardware_model", S),
    ("operating_system", S),
    ("operating_system_version", S),
    ("vendor_id", S),
    ("advertising_id", S),
    ("language", S),
    ("is_limited_ad_tracking", S),
    ("time_zone_offset_seconds", I),
    ("browser", S),
    ("browser_version", S),
    ("web_info", WEB_INFO),
)
GEO = _struct(("city", S), ("country", S), ("continent", S), ("region", S), ("sub_continent", S), ("metro", S))
APP_INFO = _struct(("id", S), ("version", S), ("install_store", S), ("firebase_app_id", S), ("install_source", S))
TRAFFIC_SOURCE = _struct(("name", S), ("medium", S), ("source", S))
EVENT_DIMENSIONS = _struct(("hostname", S))
ECOMMERCE = _struct(
    ("total_item_quantity", I),
    ("purchase_revenue_in_usd", F),
    ("purchase_revenue", F),
    ("refund_value_in_usd", F),
    ("refund_value", F),
    ("shipping_value_in_usd", F),
    ("shipping_value", F),
    ("tax_value_in_usd", F),
    ("tax_value", F),
    ("unique_items", I),
    ("transaction_id", S),
)
ITEM_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("item_id", S),
    ("item_name", S),
    ("item_brand", S),
    ("item_variant", S),
    ("item_category", S),
    ("item_category2", S),
    ("item_category3", S),
    ("item_category4", S),
    ("item_category5", S),
    ("price_in_usd", F),
    ("price", F),
    ("quantity", I),
    ("item_revenue_in_usd", F),
    ("item_revenue", F),
    ("item_refund_in_usd", F),
    ("item_refund", F),
    ("coupon", S),
    ("affiliation", S),
    ("location_id", S),
    ("item_list_id", S),
    ("item_list_name", S),
    ("item_list_index", S),
    ("promotion_id", S),
    ("promotion_name", S),
    ("creative_name", S),
    ("creative_slot", S),
    ("item_params", PARAMS),
)
ITEM = _struct(*ITEM_FIELDS)
ITEMS = pa.list_(ITEM)
COLLECTED_TRAFFIC_SOURCE = _struct(
    ("manual_campaign_id", S),
    ("manual_campaign_name", S),
    ("manual_source", S),
    ("manual_medium", S),
    ("manual_term", S),
    ("manual_content", S),
    ("manual_source_platform", S),
    ("manual_creative_format", S),
    ("manual_marketing_tactic", S),
    ("gclid", S),
    ("dclid", S),
    ("srsltid", S),
)
MANUAL_CAMPAIGN = _struct(
    ("campaign_id", S),
    ("campaign_name", S),
    ("source", S),
    ("medium", S),
    ("term", S),
    ("content", S),
    ("source_platform", S),
    ("creative_format", S),
    ("marketing_tactic", S),
)
CROSS_CHANNEL_CAMPAIGN = _struct(
    ("campaign_id", S),
    ("campaign_name", S),
    ("source", S),
    ("medium", S),
    ("source_platform", S),
    ("default_channel_group", S),
    ("primary_channel_group", S),
)
SESSION_TRAFFIC_SOURCE_LAST_CLICK = _struct(
    ("manual_campaign", MANUAL_CAMPAIGN), ("cross_channel_campaign", CROSS_CHANNEL_CAMPAIGN)
)

EVENTS_SCHEMA = pa.schema(
    [
        ("event_date", S),
        ("event_timestamp", I),
        ("event_name", S),
        ("event_params", PARAMS),
        ("event_previous_timestamp", I),
        ("event_value_in_usd", F),
        ("event_bundle_sequence_id", I),
        ("event_server_timestamp_offset", I),
        ("user_id", S),
        ("user_pseudo_id", S),
        ("privacy_info", PRIVACY_INFO),
        ("user_properties", pa.list_(USER_PROPERTY)),
        ("user_first_touch_timestamp", I),
        ("user_ltv", USER_LTV),
        ("device", DEVICE),
        ("geo", GEO),
        ("app_info", APP_INFO),
        ("traffic_source", TRAFFIC_SOURCE),
        ("stream_id", S),
        ("platform", S),
        ("event_dimensions", EVENT_DIMENSIONS),
        ("ecommerce", ECOMMERCE),
        ("items", ITEMS),
        ("collected_traffic_source", COLLECTED_TRAFFIC_SOURCE),
        ("is_active_user", B),
        ("batch_event_index", I),
        ("batch_page_id", I),
        ("batch_ordering_id", I),
        ("session_traffic_source_last_click", SESSION_TRAFFIC_SOURCE_LAST_CLICK),
    ]
)

# BigQuery's `__TABLES__` meta-table, as the export's shard listing (times in epoch milliseconds).
TABLES_META_SCHEMA = pa.schema(
    [
        ("project_id", S),
        ("dataset_id", S),
        ("table_id", S),
        ("creation_time", I),
        ("last_modified_time", I),
        ("row_count", I),
        ("size_bytes", I),
        ("type", pa.int32()),
    ]
)


# Arrow's field of each column, looked up by name.
EVENT_FIELDS = {f.name: f for f in EVENTS_SCHEMA}

COLLECTED_TRAFFIC_SOURCE_SINCE = date(2023, 5, 29)
IS_ACTIVE_USER_SINCE = date(2023, 7, 24)
JULY_2024_FIELDS_SINCE = date(2024, 7, 19)
# First date of the shards that carry each column added after the export's launch.
FIELD_SINCE: dict[str, date] = {
    "collected_traffic_source": COLLECTED_TRAFFIC_SOURCE_SINCE,
    "is_active_user": IS_ACTIVE_USER_SINCE,
    "batch_event_index": JULY_2024_FIELDS_SINCE,
    "batch_page_id": JULY_2024_FIELDS_SINCE,
    "batch_ordering_id": JULY_2024_FIELDS_SINCE,
    "session_traffic_source_last_click": JULY_2024_FIELDS_SINCE,
}
# Columns only the processed (daily and fresh daily) tables have, never the streaming intraday table.
PROCESSED_ONLY_FIELDS = frozenset({"is_active_user"})

DAILY, INTRADAY, FRESH = "daily", "intraday", "fresh"
TABLE_KINDS = (DAILY, INTRADAY, FRESH)
TABLE_PREFIXES = {DAILY: "events_", INTRADAY: "events_intraday_", FRESH: "events_fresh_"}
_TABLE_NAME = re.compile(r"events_(?:(intraday|fresh)_)?(\d{8})")


def events_schema(day: date, kind: str = DAILY) -> pa.Schema:
    """The columns (in Google's order) of the `kind` table dated `day`."""
    if kind not in TABLE_KINDS:
        raise ValueError(f"table kind must be one of {TABLE_KINDS}, got {kind!r}")
    return pa.schema([
        f for f in EVENTS_SCHEMA
        if (f.name not in FIELD_SINCE or day >= FIELD_SINCE[f.name])
        and not (kind == INTRADAY and f.name in PROCESSED_ONLY_FIELDS)
    ])


def table_name(day: date, kind: str = DAILY) -> str:
    """`events_YYYYMMDD`, `events_intraday_YYYYMMDD` or `events_fresh_YYYYMMDD`."""
    if kind not in TABLE_KINDS:
        raise ValueError(f"table kind must be one of {TABLE_KINDS}, got {kind!r}")
    return f"{TABLE_PREFIXES[kind]}{day:%Y%m%d}"


def parse_table_name(table_id: str) -> tuple[str, date] | None:
    """(kind, day) of an export table name, or None for any other name (or a date that does not exist)."""
    match = _TABLE_NAME.fullmatch(table_id)
    if not match:
        return None
    try:
        day = datetime.strptime(match.group(2), "%Y%m%d").date()
    except ValueError:
        return None
    return (match.group(1) or DAILY), day


def dataset_name(property_id: str) -> str:
    """The export's dataset (a DuckDB schema here): `analytics_<property_id>`."""
    if not str(property_id).isdigit():
        raise ValueError(f"a GA4 property id is numeric, got {property_id!r}")
    return f"analytics_{property_id}"


def shard_name(day) -> str:
    """`events_YYYYMMDD` for a property-local date."""
    return f"events_{day:%Y%m%d}"
