"""Turn flat, column-wise event data into GA4 export rows (`EVENTS_SCHEMA`), vectorised.

Both the synthetic generator and the real-log replay describe a day's events as an `EventBatch` of
parallel arrays (one entry per event, plus one entry per item row with offsets into it); this module
builds the nested Arrow columns (`event_params`, `items`, `ecommerce`, `device`, ...) from them without a
Python loop over events.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys_platform.standins.ga4_simulator import ga4_schema as schema

ECOMMERCE_EVENTS = ("view_item", "add_to_cart", "add_to_wishlist", "purchase")
CURRENCY = "USD"
STREAM_ID = "4213370001"
HOSTNAME = "shop.example.com"
PAGE_URL_PREFIX = f"https://{HOSTNAME}"

# Visitor profiles: a visitor's device and place stay the same across events.
DEVICE_PROFILES = (
    # category, brand, model, operating_system, os_version, language, browser, browser_version
    ("desktop", "Google", "Chrome", "Windows", "Windows 10", "ko-kr", "Chrome", "120.0"),
    ("desktop", "Apple", "Safari", "Macintosh", "Macintosh Intel 10.15", "ko-kr", "Safari", "17.1"),
    ("mobile", "Apple", "iPhone", "iOS", "iOS 17.1", "ko-kr", "Safari", "17.1"),
    ("mobile", "Samsung", "SM-S911N", "Android", "Android 14", "ko-kr", "Samsung Internet", "23.0"),
    ("mobile", "Google", "Pixel 8", "Android", "Android 14", "en-us", "Chrome", "120.0"),
    ("tablet", "Apple", "iPad", "iOS", "iOS 16.6", "ja-jp", "Safari", "16.6"),
    ("desktop", "Microsoft", "Edge", "Windows", "Windows 11", "en-us", "Edge", "119.0"),
)
GEO_PROFILES = (
    # city, country, continent, region, sub_continent, metro
    ("Seoul", "South Korea", "Asia", "Seoul", "Eastern Asia", "(not set)"),
    ("Busan", "South Korea", "Asia", "Busan", "Eastern Asia", "(not set)"),
    ("Incheon", "South Korea", "Asia", "Incheon", "Eastern Asia", "(not set)"),
    ("Tokyo", "Japan", "Asia", "Tokyo", "Eastern Asia", "(not set)"),
    ("New York", "United States", "Americas", "New York", "Northern America", "New York NY"),
    ("(not set)", "South Korea", "Asia", "(not set)", "Eastern Asia", "(not set)"),
)
# source, medium, campaign name, default channel group
CHANNELS = (
    ("google", "organic", "(organic)", "Organic Search"),
    ("(direct)", "(none)", "(direct)", "Direct"),
    ("newsletter", "email", "weekly_digest", "Email"),
    ("google", "cpc", "brand_search", "Paid Search"),
    ("instagram", "referral", "(referral)", "Organic Social"),
)
ANALYTICS_CONSENT = {"analytics_storage": "Yes", "ads_storage": "No", "uses_transient_token": "No"}


@dataclass
class EventBatch:
    """A property-local day's events as parallel arrays; item rows are grouped by `item_offsets`."""

    event_date: str  # YYYYMMDD
    event_name: pa.Array  # string
    event_timestamp: np.ndarray  # int64 µs UTC
    user_id: pa.Array  # string, null when not logged in
    user_pseudo_id: pa.Array  # string
    user_first_touch_timestamp: np.ndarray  # int64 µs
    session_id: np.ndarray  # int64 (GA4 uses the session's start, epoch seconds)
    session_number: np.ndarray  # int64
    engagement_time_msec: np.ndarray  # int64
    page_path: pa.Array  # string, e.g. /products/I000123
    bundle_sequence_id: np.ndarray  # int64
    server_timestamp_offset: np.ndarray  # int64 µs
    profile_index: np.ndarray  # int: device and geo profile of the visitor
    first_channel_index: np.ndarray  # int: channel that first brought the visitor
    channel_index: np.ndarray  # int: channel of the session
    batch_event_index: np.ndarray  # int64
    batch_page_id: np.ndarray  # int64
    batch_ordering_id: np.ndarray  # int64
    transaction_id: pa.Array  # string, set on purchases
    shipping_value: np.ndarray  # float64, used on purchases
    item_offsets: np.ndarray  # int32, len = events + 1
    item_id: pa.Array  # string (nulls allowed: malformed rows)
    item_name: pa.Array  # string
    item_category: pa.Array  # string
    item_category2: pa.Array  # string
    item_price: pa.Array  # float64 (nulls allowed)
    item_quantity: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.event_timestamp)

    def take(self, positions: np.ndarray) -> "EventBatch":
        """The events at `positions` (repeats allowed), with their item rows."""
        counts = np.diff(self.item_offsets)[positions]
        offsets = np.zeros(len(positions) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        starts = self.item_offsets[:-1][positions]
        rows = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
        changed = {"item_offsets": offsets}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in ("event_date", "item_offsets"):
                continue
            index = rows if item.name.startswith("item_") else positions
            changed[item.name] = value[index] if isinstance(value, np.ndarray) else value.take(pa.array(index))
        return replace(self, **changed)


TAX_RATE = 0.1


def build_events_table(batch: EventBatch) -> pa.Table:
    """The GA4 export rows of `batch`, typed exactly as `EVENTS_SCHEMA`."""
    n = len(batch)
    is_purchase = pc.equal(batch.event_name, "purchase").to_numpy(zero_copy_only=False)
    is_ecommerce = pc.is_in(batch.event_name, value_set=pa.array(ECOMMERCE_EVENTS)).to_numpy(
        zero_copy_only=False)
    item_counts = np.diff(batch.item_offsets)
    item_event = np.repeat(np.arange(n), item_counts)
    price = batch.item_price.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> nan
    line_revenue = np.where(np.isnan(price), 0.0, price) * batch.item_quantity
    revenue = np.bincount(item_event, weights=line_revenue, minlength=n)
    quantity = np.bincount(item_event, weights=batch.item_quantity, minlength=n).astype(np.int64)
    page_location = pc.binary_join_element_wise(PAGE_URL_PREFIX, batch.page_path, "")
    purchase_value = revenue + np.where(is_purchase, batch.shipping_value, 0.0)

    columns = {
        "event_date": pa.repeat(pa.scalar(batch.event_date), n),
        "event_timestamp": pa.array(batch.event_timestamp, pa.int64()),
        "event_name": batch.event_name,
        "event_params": _event_params(batch, page_location, is_purchase, purchase_value),
        "event_previous_timestamp": pa.nulls(n, pa.int64()),
        "event_value_in_usd": pa.array(purchase_value, pa.float64(), mask=~is_purchase),
        "event_bundle_sequence_id": pa.array(batch.bundle_sequence_id, pa.int64()),
        "event_server_timestamp_offset": pa.array(batch.server_timestamp_offset, pa.int64()),
        "user_id": batch.user_id,
        "user_pseudo_id": batch.user_pseudo_id,
        "privacy_info": pa.repeat(pa.scalar(ANALYTICS_CONSENT, schema.PRIVACY_INFO), n),
        "user_properties": _empty_lists(n, schema.USER_PROPERTY),
        "user_first_touch_timestamp": pa.array(batch.user_first_touch_timestamp, pa.int64()),
        "user_ltv": pa.nulls(n, schema.USER_LTV),
        "device": _DEVICES.take(pa.array(batch.profile_index % len(DEVICE_PROFILES))),
        "geo": _GEOS.take(pa.array((batch.profile_index // len(DEVICE_PROFILES)) % len(GEO_PROFILES))),
        "app_info": pa.nulls(n, schema.APP_INFO),
        "traffic_source": _TRAFFIC_SOURCES.take(pa.array(batch.first_channel_index)),
        "stream_id": pa.repeat(pa.scalar(STREAM_ID), n),
        "platform": pa.repeat(pa.scalar("WEB"), n),
        "event_dimensions": pa.nulls(n, schema.EVENT_DIMENSIONS),
        "ecommerce": _ecommerce(batch, is_ecommerce, is_purchase, quantity, item_counts, revenue, purchase_value),
        "items": _items(batch, is_purchase[item_event], line_revenue),
        "collected_traffic_source": _COLLECTED_TRAFFIC_SOURCES.take(pa.array(batch.channel_index)),
        "is_active_user": pa.repeat(pa.scalar(True), n),
        "batch_event_index": pa.array(batch.batch_event_index, pa.int64()),
        "batch_page_id": pa.array(batch.batch_page_id, pa.int64()),
        "batch_ordering_id": pa.array(batch.batch_ordering_id, pa.int64()),
        "session_traffic_source_last_click": _LAST_CLICKS.take(pa.array(batch.channel_index)),
    }
    return pa.Table.from_arrays(
        [columns[field.name].cast(field.type) for field in schema.EVENTS_SCHEMA], schema=schema.EVENTS_SCHEMA
    )


_PARAM_KEYS = pa.array(
    ["ga_session_id", "ga_session_number", "page_location", "engagement_time_msec", "transaction_id", "value",
     "currency"]
)
_BASE_PARAMS = 4  # every event: session id, session number, page location, engagement time
_PURCHASE_PARAMS = 3  # purchases add transaction_id, value, currency


def _event_params(batch: EventBatch, page_location: pa.Array, is_purchase: np.ndarray, value: np.ndarray):
    n = len(batch)
    counts = _BASE_PARAMS + _PURCHASE_PARAMS * is_purchase.astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    key_code = np.empty(total, dtype=np.int64)
    string_source = np.full(total, -1, dtype=np.int64)  # index into [page_location..., transaction_id..., USD]
    int_value = np.zeros(total, dtype=np.int64)
    has_int = np.zeros(total, dtype=bool)
    double_value = np.zeros(total, dtype=np.float64)
    has_double = np.zeros(total, dtype=bool)
    start = offsets[:-1]
    events = np.arange(n)

    key_code[start] = 0
    int_value[start], has_int[start] = batch.session_id, True
    key_code[start + 1] = 1
    int_value[start + 1], has_int[start + 1] = batch.session_number, True
    key_code[start + 2] = 2
    string_source[start + 2] = events
    key_code[start + 3] = 3
    int_value[start + 3], has_int[start + 3] = batch.engagement_time_msec, True

    purchases = np.flatnonzero(is_purchase)
    extra = start[purchases] + _BASE_PARAMS
    key_code[extra] = 4
    string_source[extra] = n + purchases
    key_code[extra + 1] = 5
    double_value[extra + 1], has_double[extra + 1] = value[purchases], True
    key_code[extra + 2] = 6
    string_source[extra + 2] = 2 * n

    string_pool = pa.concat_arrays(
        [page_location.cast(pa.string()), batch.transaction_id.cast(pa.string()), pa.array([CURRENCY])]
    )
    values = pa.StructArray.from_arrays(
        [
            string_pool.take(pa.array(string_source, mask=string_source < 0)),
            pa.array(int_value, pa.int64(), mask=~has_int),
            pa.nulls(total, pa.float64()),
            pa.array(double_value, pa.float64(), mask=~has_double),
        ],
        fields=list(schema.PARAM_VALUE),
    )
    params = pa.StructArray.from_arrays([_PARAM_KEYS.take(pa.array(key_code)), values], fields=list(schema.PARAM))
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), params, type=schema.PARAMS)


def _ecommerce(batch, is_ecommerce, is_purchase, quantity, item_counts, revenue, purchase_value):
    """Item subtotal in `revenue`; `purchase_value` adds shipping (the `value` a shop sends)."""
    n = len(batch)
    not_purchase = ~is_purchase
    tax = np.round(revenue * TAX_RATE, 2)
    fields = {
        "total_item_quantity": pa.array(quantity, pa.int64()),
        "purchase_revenue_in_usd": pa.array(purchase_value, pa.float64(), mask=not_purchase),
        "purchase_revenue": pa.array(purchase_value, pa.float64(), mask=not_purchase),
        "refund_value_in_usd": pa.nulls(n, pa.float64()),
        "refund_value": pa.nulls(n, pa.float64()),
        "shipping_value_in_usd": pa.array(batch.shipping_value, pa.float64(), mask=not_purchase),
        "shipping_value": pa.array(batch.shipping_value, pa.float64(), mask=not_purchase),
        "tax_value_in_usd": pa.array(tax, pa.float64(), mask=not_purchase),
        "tax_value": pa.array(tax, pa.float64(), mask=not_purchase),
        "unique_items": pa.array(item_counts.astype(np.int64), pa.int64()),
        "transaction_id": batch.transaction_id,
    }
    return pa.StructArray.from_arrays(
        [fields[f.name].cast(f.type) for f in schema.ECOMMERCE],
        fields=list(schema.ECOMMERCE),
        mask=pa.array(~is_ecommerce),
    )


def _items(batch: EventBatch, item_in_purchase: np.ndarray, line_revenue: np.ndarray):
    m = len(batch.item_quantity)
    price = batch.item_price.cast(pa.float64())
    revenue = pa.array(line_revenue, pa.float64(), mask=~item_in_purchase | pc.is_null(price).to_numpy(
        zero_copy_only=False))
    given = {
        "item_id": batch.item_id,
        "item_name": batch.item_name,
        "item_brand": pa.repeat(pa.scalar("Example Shop"), m),
        "item_category": batch.item_category,
        "item_category2": batch.item_category2,
        "price_in_usd": price,
        "price": price,
        "quantity": pa.array(batch.item_quantity, pa.int64()),
        "item_revenue_in_usd": revenue,
        "item_revenue": revenue,
        "affiliation": pa.repeat(pa.scalar("Online Store"), m),
        "item_params": _empty_lists(m, schema.PARAM),
    }
    children = [
        given[name].cast(kind) if name in given else pa.nulls(m, kind) for name, kind in schema.ITEM_FIELDS
    ]
    values = pa.StructArray.from_arrays(children, fields=list(schema.ITEM))
    return pa.ListArray.from_arrays(pa.array(batch.item_offsets.astype(np.int32)), values, type=schema.ITEMS)


def _empty_lists(n: int, value_type: pa.DataType) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], value_type),
                                    type=pa.list_(value_type))


def _device_pool() -> pa.Array:
    rows = []
    for category, brand, model, os_name, os_version, language, browser, browser_version in DEVICE_PROFILES:
        rows.append(
            {
                "category": category,
                "mobile_brand_name": brand,
                "mobile_model_name": model,
                "operating_system": os_name,
                "operating_system_version": os_version,
                "language": language,
                "is_limited_ad_tracking": "No",
                "web_info": {"browser": browser, "browser_version": browser_version, "hostname": HOSTNAME},
            }
        )
    return pa.array(rows, schema.DEVICE)


def _geo_pool() -> pa.Array:
    names = [f.name for f in schema.GEO]
    return pa.array([dict(zip(names, row)) for row in GEO_PROFILES], schema.GEO)


_DEVICES = _device_pool()
_GEOS = _geo_pool()
_TRAFFIC_SOURCES = pa.array(
    [{"name": campaign, "medium": medium, "source": source} for source, medium, campaign, _ in CHANNELS],
    schema.TRAFFIC_SOURCE,
)
_COLLECTED_TRAFFIC_SOURCES = pa.array(
    [{"manual_source": source, "manual_medium": medium, "manual_campaign_name": campaign}
     for source, medium, campaign, _ in CHANNELS],
    schema.COLLECTED_TRAFFIC_SOURCE,
)
_LAST_CLICKS = pa.array(
    [
        {
            "manual_campaign": {"campaign_name": campaign, "source": source, "medium": medium},
            "cross_channel_campaign": {
                "campaign_name": campaign,
                "source": source,
                "medium": medium,
                "default_channel_group": group,
                "primary_channel_group": group,
            },
        }
        for source, medium, campaign, group in CHANNELS
    ],
    schema.SESSION_TRAFFIC_SOURCE_LAST_CLICK,
)
