"""Turn flat, column-wise event data into GA4 export rows (`EVENTS_SCHEMA`), vectorised.

Both the synthetic generator and the real-log replay describe a day's events as an `EventBatch` of
parallel arrays (one entry per event, plus one entry per item row with offsets into it); this module
builds the nested Arrow columns (`event_params`, `items`, `ecommerce`, `device`, ...) from them without a
Python loop over events.

What the export shows of the realities a batch may carry:
- Streams. A property holds a web stream and, optionally, Android and iOS app streams. App rows have
  `platform` ANDROID/IOS, their own `stream_id`, `app_info`, an app-shaped `device` (no `web_info`),
  `screen_view` where the web has `page_view`, and `firebase_screen` instead of `page_location`.
- Consent mode. Every row has `privacy_info`. A cookieless ping (`analytics_storage = 'No'`) has no
  `user_pseudo_id`, no `user_id`, no first-touch time and no `ga_session_id` / `ga_session_number`
  parameters (the identifiers live in cookies the visitor refused).
- URLs. Web rows carry `page_location` (with its query string, where the batch gives one) and
  `page_referrer`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys_platform.standins.ga4_simulator import ga4_schema as schema

ECOMMERCE_EVENTS = ("view_item", "add_to_cart", "add_to_wishlist", "purchase")
CURRENCY = "USD"
HOSTNAME = "shop.example.com"
PAGE_URL_PREFIX = f"https://{HOSTNAME}"

# Data streams of the shop's property: (stream_id, platform). Index 0 is the web stream every shop has.
WEB, ANDROID, IOS = 0, 1, 2
STREAMS = (("4213370001", "WEB"), ("4213370002", "ANDROID"), ("4213370003", "IOS"))
STREAM_ID = STREAMS[WEB][0]
APP_ID = "com.example.shop"
APP_INFO = {
    ANDROID: {"id": APP_ID, "version": "5.12.0", "install_store": "com.android.vending",
              "firebase_app_id": "1:421337000001:android:5e1f2a3b4c5d6e7f", "install_source": "com.android.vending"},
    IOS: {"id": APP_ID, "version": "5.12.1", "install_store": "iTunes",
          "firebase_app_id": "1:421337000001:ios:9a8b7c6d5e4f3a2b", "install_source": "iTunes"},
}

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
# The app a device profile can run (0: none, a desktop), and its hardware model as apps report it.
PROFILE_APP_PLATFORM = np.array([0, 0, IOS, ANDROID, ANDROID, IOS, 0])
PROFILE_HARDWARE_MODEL = (None, None, "iPhone15,2", "SM-S911N", "Pixel 8", "iPad13,18", None)
GEO_PROFILES = (
    # city, country, continent, region, sub_continent, metro
    ("Seoul", "South Korea", "Asia", "Seoul", "Eastern Asia", "(not set)"),
    ("Busan", "South Korea", "Asia", "Busan", "Eastern Asia", "(not set)"),
    ("Incheon", "South Korea", "Asia", "Incheon", "Eastern Asia", "(not set)"),
    ("Tokyo", "Japan", "Asia", "Tokyo", "Eastern Asia", "(not set)"),
    ("New York", "United States", "Americas", "New York", "Northern America", "New York NY"),
    ("(not set)", "South Korea", "Asia", "(not set)", "Eastern Asia", "(not set)"),
)
GEO_UTC_OFFSET_SECONDS = (32_400, 32_400, 32_400, 32_400, -18_000, 32_400)
# source, medium, campaign name, default channel group
CHANNELS = (
    ("google", "organic", "(organic)", "Organic Search"),
    ("(direct)", "(none)", "(direct)", "Direct"),
    ("newsletter", "email", "weekly_digest", "Email"),
    ("google", "cpc", "brand_search", "Paid Search"),
    ("instagram", "referral", "(referral)", "Organic Social"),
)


@dataclass
class EventBatch:
    """A property-local day's events as parallel arrays; item rows are grouped by `item_offsets`.

    The optional arrays at the end default to: every event on the web stream, consent granted, no query
    string and no referrer (what a replayed log knows)."""

    event_date: str  # YYYYMMDD
    event_name: pa.Array  # string
    event_timestamp: np.ndarray  # int64 µs UTC
    user_id: pa.Array  # string, null when not logged in
    user_pseudo_id: pa.Array  # string (the app instance id on app streams)
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
    stream_index: np.ndarray | None = None  # int: WEB, ANDROID or IOS
    consent_denied: np.ndarray | None = None  # bool: a cookieless ping (analytics_storage denied)
    page_query: pa.Array | None = None  # string without '?', null for none (web rows)
    page_referrer: pa.Array | None = None  # string URL, null for none (web rows)

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
            if item.name in ("event_date", "item_offsets") or value is None:
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
    purchase_value = revenue + np.where(is_purchase, batch.shipping_value, 0.0)
    stream = (np.zeros(n, np.int64) if batch.stream_index is None
              else np.asarray(batch.stream_index, np.int64))
    on_web = stream == WEB
    denied = np.zeros(n, bool) if batch.consent_denied is None else np.asarray(batch.consent_denied, bool)
    no_id = pa.array(denied)
    device_index = batch.profile_index % len(DEVICE_PROFILES)
    geo_index = (batch.profile_index // len(DEVICE_PROFILES)) % len(GEO_PROFILES)
    # Apps log screen_view where the web logs page_view ("[GA4] Automatically collected events").
    event_name = pc.if_else(pa.array(~on_web & pc.equal(batch.event_name, "page_view").to_numpy(
        zero_copy_only=False)), "screen_view", batch.event_name)

    columns = {
        "event_date": pa.repeat(pa.scalar(batch.event_date), n),
        "event_timestamp": pa.array(batch.event_timestamp, pa.int64()),
        "event_name": event_name,
        "event_params": _event_params(batch, on_web, denied, is_purchase, purchase_value),
        "event_previous_timestamp": pa.nulls(n, pa.int64()),
        "event_value_in_usd": pa.array(purchase_value, pa.float64(), mask=~is_purchase),
        "event_bundle_sequence_id": pa.array(batch.bundle_sequence_id, pa.int64()),
        "event_server_timestamp_offset": pa.array(batch.server_timestamp_offset, pa.int64()),
        "user_id": pc.if_else(no_id, pa.scalar(None, pa.string()), batch.user_id),
        "user_pseudo_id": pc.if_else(no_id, pa.scalar(None, pa.string()), batch.user_pseudo_id),
        "privacy_info": _privacy_info(batch.session_id, denied),
        "user_properties": _empty_lists(n, schema.USER_PROPERTY),
        "user_first_touch_timestamp": pa.array(batch.user_first_touch_timestamp, pa.int64(), mask=denied),
        "user_ltv": pa.nulls(n, schema.USER_LTV),
        "device": _DEVICES.take(pa.array(np.where(
            on_web, device_index, len(DEVICE_PROFILES) + device_index * len(GEO_PROFILES) + geo_index))),
        "geo": _GEOS.take(pa.array(geo_index)),
        "app_info": _APP_INFOS.take(pa.array(stream, mask=on_web)),
        "traffic_source": _TRAFFIC_SOURCES.take(pa.array(batch.first_channel_index)),
        "stream_id": _STREAM_IDS.take(pa.array(stream)),
        "platform": _PLATFORMS.take(pa.array(stream)),
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


def page_locations(page_path: pa.Array, page_query: pa.Array | None) -> pa.Array:
    """`https://shop.example.com<path>[?<query>]`."""
    location = pc.binary_join_element_wise(PAGE_URL_PREFIX, page_path, "")
    if page_query is None:
        return location
    with_query = pc.binary_join_element_wise(location, page_query, "?")
    return pc.if_else(pc.is_null(page_query), location, with_query)


def _privacy_info(session_id: np.ndarray, denied: np.ndarray) -> pa.Array:
    """Consent mode's record ("[GA4] BigQuery Export schema", privacy_info): analytics storage granted
    unless denied; ads storage granted for about 7 in 10 consenting sessions; no transient tokens."""
    ads = ~denied & (np.asarray(session_id) % 10 < 7)
    yes_no = pa.array(["No", "Yes"])
    n = len(denied)
    return pa.StructArray.from_arrays(
        [yes_no.take(pa.array((~denied).astype(np.int64))), yes_no.take(pa.array(ads.astype(np.int64))),
         pa.repeat(pa.scalar("No"), n)],
        fields=list(schema.PRIVACY_INFO),
    )


@dataclass(frozen=True)
class _Param:
    key: str
    kind: str  # "int", "string" or "double"
    values: object  # np.ndarray (int, double) or pa.Array (string), one per event
    present: np.ndarray  # bool per event


def _event_params(batch: EventBatch, on_web, denied, is_purchase, value):
    """`event_params`, in a fixed key order per event: session id and number (not on cookieless pings),
    page location and referrer (web) or screen (apps), engagement time, and a purchase's transaction id,
    value and currency."""
    n = len(batch)
    everyone = np.ones(n, bool)
    referrer = batch.page_referrer if batch.page_referrer is not None else pa.nulls(n, pa.string())
    has_referrer = on_web & pc.is_valid(referrer).to_numpy(zero_copy_only=False)
    params = [
        _Param("ga_session_id", "int", batch.session_id, ~denied),
        _Param("ga_session_number", "int", batch.session_number, ~denied),
        _Param("page_location", "string", page_locations(batch.page_path, batch.page_query), on_web),
        _Param("page_referrer", "string", referrer, has_referrer),
        _Param("firebase_screen", "string", batch.page_path, ~on_web),
        _Param("engagement_time_msec", "int", batch.engagement_time_msec, everyone),
        _Param("transaction_id", "string", batch.transaction_id, is_purchase),
        _Param("value", "double", value, is_purchase),
        _Param("currency", "string", pa.repeat(pa.scalar(CURRENCY), n), is_purchase),
    ]
    return param_lists(n, params)


def param_lists(n: int, params: list[_Param]) -> pa.Array:
    """A `PARAMS` list per event holding, in `params` order, each parameter present for that event."""
    present = np.stack([p.present for p in params], axis=1)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(present.sum(axis=1), out=offsets[1:])
    event, which = np.nonzero(present)  # row-major: each event's parameters in `params` order
    total = len(event)
    string_source = np.full(total, -1, dtype=np.int64)
    int_value = np.zeros(total, dtype=np.int64)
    double_value = np.zeros(total, dtype=np.float64)
    has_int = np.zeros(total, dtype=bool)
    has_double = np.zeros(total, dtype=bool)
    pool = []
    for index, param in enumerate(params):
        chosen = which == index
        if param.kind == "string":
            string_source[chosen] = len(pool) * n + event[chosen]
            pool.append(param.values.cast(pa.string()))
        elif param.kind == "int":
            int_value[chosen] = np.asarray(param.values)[event[chosen]]
            has_int[chosen] = True
        else:
            double_value[chosen] = np.asarray(param.values)[event[chosen]]
            has_double[chosen] = True
    strings = pa.concat_arrays(pool) if pool else pa.array([], pa.string())
    values = pa.StructArray.from_arrays(
        [
            strings.take(pa.array(np.maximum(string_source, 0), mask=string_source < 0)),
            pa.array(int_value, pa.int64(), mask=~has_int),
            pa.nulls(total, pa.float64()),
            pa.array(double_value, pa.float64(), mask=~has_double),
        ],
        fields=list(schema.PARAM_VALUE),
    )
    keys = pa.array([p.key for p in params]).take(pa.array(which))
    entries = pa.StructArray.from_arrays([keys, values], fields=list(schema.PARAM))
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), entries, type=schema.PARAMS)


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
    """Web devices (one per profile), then app devices (one per profile and place: apps report the
    time zone offset and hardware model, browsers do not; app rows have no `web_info`)."""
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
    for profile, (category, brand, model, os_name, os_version, language, _, _) in enumerate(DEVICE_PROFILES):
        for offset in GEO_UTC_OFFSET_SECONDS:
            rows.append(
                {
                    "category": category,
                    "mobile_brand_name": brand,
                    "mobile_model_name": model,
                    "mobile_marketing_name": model,
                    "mobile_os_hardware_model": PROFILE_HARDWARE_MODEL[profile],
                    "operating_system": os_name,
                    "operating_system_version": os_version,
                    "language": language,
                    "is_limited_ad_tracking": "No",
                    "time_zone_offset_seconds": offset,
                }
            )
    return pa.array(rows, schema.DEVICE)


def _geo_pool() -> pa.Array:
    names = [f.name for f in schema.GEO]
    return pa.array([dict(zip(names, row)) for row in GEO_PROFILES], schema.GEO)


_DEVICES = _device_pool()
_GEOS = _geo_pool()
_STREAM_IDS = pa.array([stream_id for stream_id, _ in STREAMS])
_PLATFORMS = pa.array([platform for _, platform in STREAMS])
_APP_INFOS = pa.array([None, APP_INFO[ANDROID], APP_INFO[IOS]], schema.APP_INFO)
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
