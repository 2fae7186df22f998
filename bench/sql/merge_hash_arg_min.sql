-- Reference (b2): the merge's result with hash aggregation: one group per event identity, arg_min picks
-- the first-delivered copy of every column (lowest bundle, then server offset; rowid breaks ties so the
-- copy is deterministic). Every column still passes through the aggregate's hash table.
CREATE TABLE out.ga4_events AS
WITH keyed AS (
  SELECT
    strptime(event_date, '%Y%m%d')::DATE AS event_date,
    event_timestamp, event_name, event_params, event_previous_timestamp, event_bundle_sequence_id,
    event_server_timestamp_offset, user_id, user_pseudo_id, user_first_touch_timestamp, device, geo,
    traffic_source, stream_id, platform, ecommerce, items,
    list_filter(event_params, lambda p: p.key = 'ga_session_id')[1].value.int_value AS ga_session_id,
    list_filter(event_params, lambda p: p.key = 'page_location')[1].value.string_value AS page_location,
    (event_bundle_sequence_id, event_server_timestamp_offset, rowid) AS delivery
  FROM shard.{shard_table}
  WHERE event_timestamp IS NOT NULL AND event_name IS NOT NULL AND user_pseudo_id IS NOT NULL
),
winners AS (
  SELECT stream_id, user_pseudo_id, event_timestamp, event_name, ga_session_id, page_location,
         arg_min(COLUMNS(* EXCLUDE (stream_id, user_pseudo_id, event_timestamp, event_name, ga_session_id,
                                    page_location, delivery)), delivery)
  FROM keyed
  GROUP BY ALL
)
SELECT event_date, event_timestamp, event_name, event_params, event_previous_timestamp, event_bundle_sequence_id,
       event_server_timestamp_offset, user_id, user_pseudo_id, user_first_touch_timestamp, device, geo,
       traffic_source, stream_id, platform, ecommerce, items, ga_session_id, page_location,
       '{suffix}' AS source_shard,
       md5(concat_ws('|', coalesce(stream_id, ''), user_pseudo_id, event_timestamp::VARCHAR, event_name,
                     coalesce(ga_session_id::VARCHAR, ''), coalesce(page_location, ''))) AS event_key
FROM winners
WHERE event_date BETWEEN DATE '{day}' AND DATE '{day}'
