-- Reference (b3): deduplicate on the keys only, then fetch the surviving rows. The aggregate sees the
-- identity, the delivery order and the row id -- never the nested columns (event_params, items, device,
-- ...), which are read once from the shard and written unchanged for the rows that survive.
CREATE TABLE out.ga4_events AS
WITH keys AS (
  SELECT
    rowid AS row_id,
    stream_id, user_pseudo_id, event_timestamp, event_name,
    list_filter(event_params, lambda p: p.key = 'ga_session_id')[1].value.int_value AS ga_session_id,
    list_filter(event_params, lambda p: p.key = 'page_location')[1].value.string_value AS page_location,
    (event_bundle_sequence_id, event_server_timestamp_offset, rowid) AS delivery
  FROM shard.{shard_table}
  WHERE event_timestamp IS NOT NULL AND event_name IS NOT NULL AND user_pseudo_id IS NOT NULL
    AND strptime(event_date, '%Y%m%d')::DATE BETWEEN DATE '{day}' AND DATE '{day}'
),
winners AS (
  SELECT arg_min(row_id, delivery) AS row_id, any_value(ga_session_id) AS ga_session_id,
         any_value(page_location) AS page_location
  FROM keys
  GROUP BY stream_id, user_pseudo_id, event_timestamp, event_name, ga_session_id, page_location
)
SELECT strptime(s.event_date, '%Y%m%d')::DATE AS event_date,
       s.event_timestamp, s.event_name, s.event_params, s.event_previous_timestamp, s.event_bundle_sequence_id,
       s.event_server_timestamp_offset, s.user_id, s.user_pseudo_id, s.user_first_touch_timestamp, s.device, s.geo,
       s.traffic_source, s.stream_id, s.platform, s.ecommerce, s.items, w.ga_session_id, w.page_location,
       '{suffix}' AS source_shard,
       md5(concat_ws('|', coalesce(s.stream_id, ''), s.user_pseudo_id, s.event_timestamp::VARCHAR, s.event_name,
                     coalesce(w.ga_session_id::VARCHAR, ''), coalesce(w.page_location, ''))) AS event_key
FROM shard.{shard_table} AS s
JOIN winners AS w ON s.rowid = w.row_id
