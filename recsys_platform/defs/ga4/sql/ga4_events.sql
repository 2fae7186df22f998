-- ga4_events: the GA4 export's daily shards merged into one table partitioned by event_date.
-- One row per event: exact re-deliveries (same event identity) are collapsed to one deterministic copy.
-- Event identity: stream, pseudo user, microsecond timestamp, name, session and page. A re-delivered
-- event repeats all of them; two real events never share them all (GA4 timestamps are microseconds).
-- Rows that cannot be an event (no timestamp, name or pseudo user id) are dropped; ga4_events_drops.sql
-- counts them so the materialization reports what was dropped and why.
WITH shard_events AS (
  SELECT
    CAST(CONCAT(SUBSTR(event_date, 1, 4), '-', SUBSTR(event_date, 5, 2), '-', SUBSTR(event_date, 7, 2)) AS DATE)
      AS event_date,
    event_timestamp,
    event_name,
    event_params,
    event_previous_timestamp,
    event_bundle_sequence_id,
    event_server_timestamp_offset,
    user_id,
    user_pseudo_id,
    user_first_touch_timestamp,
    device,
    geo,
    traffic_source,
    stream_id,
    platform,
    ecommerce,
    items,
    (SELECT p.value.int_value FROM UNNEST(event_params) AS p WHERE p.key = 'ga_session_id') AS ga_session_id,
    (SELECT p.value.string_value FROM UNNEST(event_params) AS p WHERE p.key = 'page_location') AS page_location,
    _TABLE_SUFFIX AS source_shard
  FROM analytics.`events_*`
  WHERE _TABLE_SUFFIX BETWEEN @first_suffix AND @last_suffix
    AND event_timestamp IS NOT NULL
    AND event_name IS NOT NULL
    AND user_pseudo_id IS NOT NULL
),
keyed AS (
  SELECT
    *,
    TO_HEX(MD5(CONCAT(
      IFNULL(stream_id, ''), '|', user_pseudo_id, '|', CAST(event_timestamp AS STRING), '|', event_name, '|',
      IFNULL(CAST(ga_session_id AS STRING), ''), '|', IFNULL(page_location, '')
    ))) AS event_key
  FROM shard_events
)
SELECT *
FROM keyed
WHERE event_date BETWEEN @first_day AND @last_day
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY event_key
  -- Which copy survives is fixed: the first delivered (lowest bundle, then smallest server offset).
  ORDER BY event_bundle_sequence_id, event_server_timestamp_offset, source_shard
) = 1
