-- Reference (b1): the merge's result with a window: every row carries its nested columns through the
-- partition-by and sort of ROW_NUMBER(). Same rows and columns as
-- recsys_platform/defs/ga4/sql/ga4_events.sql, partitioned by the same md5 event_key.
CREATE TABLE out.ga4_events AS
WITH keyed AS (
  SELECT
    strptime(event_date, '%Y%m%d')::DATE AS event_date,
    event_timestamp, event_name, event_params, event_previous_timestamp, event_bundle_sequence_id,
    event_server_timestamp_offset, user_id, user_pseudo_id, user_first_touch_timestamp, device, geo,
    traffic_source, stream_id, platform, ecommerce, items,
    list_filter(event_params, lambda p: p.key = 'ga_session_id')[1].value.int_value AS ga_session_id,
    list_filter(event_params, lambda p: p.key = 'page_location')[1].value.string_value AS page_location,
    '{suffix}' AS source_shard
  FROM shard.{shard_table}
  WHERE event_timestamp IS NOT NULL AND event_name IS NOT NULL AND user_pseudo_id IS NOT NULL
)
SELECT *, md5(concat_ws('|', coalesce(stream_id, ''), user_pseudo_id, event_timestamp::VARCHAR, event_name,
                        coalesce(ga_session_id::VARCHAR, ''), coalesce(page_location, ''))) AS event_key
FROM keyed
WHERE event_date BETWEEN DATE '{day}' AND DATE '{day}'
QUALIFY row_number() OVER (
  PARTITION BY event_key
  ORDER BY event_bundle_sequence_id NULLS FIRST, event_server_timestamp_offset NULLS FIRST
) = 1
