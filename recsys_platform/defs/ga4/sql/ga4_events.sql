-- ga4_events: the GA4 export merged into one table partitioned by event_date. Every export column is kept
-- (a field GA4 adds later is added to the table), one row per event, plus what later models need:
--   event_key       the event's identity. Where GA4's batch fields exist (July 2024 on): property, stream,
--                   pseudo user, batch_page_id, batch_ordering_id, batch_event_index, microsecond timestamp,
--                   event name (the batch fields tell apart events that share a timestamp). On older rows:
--                   property, stream, pseudo user, microsecond timestamp, event name, session id,
--                   page_location. Two properties' events are never one event.
--   property_id     the GA4 property the row was exported by
--   source_table    the export table the row came from (events_ / intraday_ / fresh_ + day), in the
--                   property's dataset
--   ga_session_id, page_location, page_referrer (URLs without personal data: scrub_url)
--   analytics_consent_denied  a cookieless ping (no analytics consent): kept here, out of stitching and
--                   interactions
-- Re-deliveries of an event collapse to one copy: the first delivered (lowest event_bundle_sequence_id,
-- then server offset, then source table, then content). A user_id that is an e-mail address is refused
-- (NULL). Rows that cannot be events are left out and counted by ga4_events_drops.sql.
WITH events AS (
  SELECT
    * EXCEPT (drop_reason, parsed_event_date, raw_page_location, raw_page_referrer)
      REPLACE (parsed_event_date AS event_date, IF(LOOKS_LIKE_EMAIL(user_id), NULL, user_id) AS user_id),
    SCRUB_URL(raw_page_location) AS page_location,
    SCRUB_URL(raw_page_referrer) AS page_referrer,
    user_pseudo_id IS NULL OR IFNULL(privacy_info.analytics_storage, '') = 'No' AS analytics_consent_denied,
    TO_HEX(MD5(CONCAT(
      property_id, '|', IFNULL(CAST(stream_id AS STRING), ''), '|', IFNULL(user_pseudo_id, ''), '|',
      IF(
        batch_page_id IS NOT NULL AND batch_ordering_id IS NOT NULL AND batch_event_index IS NOT NULL,
        CONCAT('batch|', CAST(batch_page_id AS STRING), '|', CAST(batch_ordering_id AS STRING), '|',
               CAST(batch_event_index AS STRING), '|', CAST(event_timestamp AS STRING), '|', event_name),
        CONCAT('time|', CAST(event_timestamp AS STRING), '|', event_name, '|',
               IFNULL(CAST(ga_session_id AS STRING), ''), '|', IFNULL(raw_page_location, ''))
      )
    ))) AS event_key
  FROM fragments.ga4_export_rows
  WHERE drop_reason IS NULL
),
-- Most events arrive once, and a re-delivered event shares its pseudo user, timestamp and name with its
-- copy. So only the rows at such timestamps go through the window that picks one copy; every other row is
-- written as it is read (a window over every wide row costs twice the copy on DuckDB). The pre-filter reads
-- three plain columns, not the computed key; the few rows it takes in that are not repeated pass the window
-- unchanged.
repeated_timestamps AS (
  SELECT DISTINCT event_timestamp
  FROM events
  GROUP BY user_pseudo_id, event_timestamp, event_name
  HAVING COUNT(*) > 1
)
SELECT *
FROM events
WHERE event_timestamp NOT IN (SELECT event_timestamp FROM repeated_timestamps)
UNION ALL
SELECT * EXCEPT (delivery_rank)
FROM (
  SELECT
    events.*,
    ROW_NUMBER() OVER (
      PARTITION BY event_key
      ORDER BY event_bundle_sequence_id, event_server_timestamp_offset, source_table,
        TO_JSON_STRING(event_params), TO_JSON_STRING(items)
    ) AS delivery_rank
  -- A join, not IN: DuckDB then filters the export's scan by these timestamps before the wide columns are read.
  FROM events
  JOIN repeated_timestamps USING (event_timestamp)
)
WHERE delivery_rank = 1
