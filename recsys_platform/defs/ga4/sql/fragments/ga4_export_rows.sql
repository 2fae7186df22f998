-- ga4_export_rows: every row of the export tables a run reads (one source table per day and GA4 property,
-- listed in @table_suffixes), with what the merge derives from it and, for a row that cannot be an event,
-- the FIRST reason that applies, so each left-out row is counted once (ga4_events_drops.sql).
-- The read of `analytics.events_*` is one property's; the merge repeats it for each property and table kind
-- it reads, with that property's dataset, @table_suffixes and @property_id, and unions the copies by column
-- name (events.py `merge_sql`). Each copy reads the narrowest wildcard that selects its tables (BigQuery gives
-- a wildcard the schema of the newest table it matches), and keeps source_table the suffix under `events_*`.
SELECT
  *,
  CASE
    -- Right to erasure: the visitor or user asked to be forgotten; their rows never enter the platform's
    -- tables again, whatever the export (which GA4's own deletion does not rewrite) still holds.
    WHEN user_id IN (SELECT r.user_id FROM shop.erasure_requests AS r WHERE r.user_id IS NOT NULL)
      OR user_pseudo_id IN (SELECT r.user_pseudo_id FROM shop.erasure_requests AS r WHERE r.user_pseudo_id IS NOT NULL)
      OR user_pseudo_id IN UNNEST(@erased_visitors)
      THEN 'erased_on_request'
    WHEN event_timestamp IS NULL THEN 'without_timestamp'
    WHEN event_name IS NULL OR event_name = '' THEN 'without_event_name'
    WHEN parsed_event_date IS NULL THEN 'malformed_event_date'
    -- event_date is the property-local day of event_timestamp: the UTC day is at most one day off.
    -- Negative values, the year 294247 and other garbage are not events.
    WHEN ABS(DIV(event_timestamp, 86400000000) - UNIX_DATE(parsed_event_date)) > 1 THEN 'implausible_timestamp'
    WHEN parsed_event_date NOT BETWEEN @first_day AND @last_day THEN 'outside_partition'
  END AS drop_reason
FROM (
  SELECT
    *,
    @property_id AS property_id,
    _TABLE_SUFFIX AS source_table,
    IF(
      REGEXP_CONTAINS(event_date, r'^[0-9]{8}$'),
      SAFE_CAST(CONCAT(SUBSTR(event_date, 1, 4), '-', SUBSTR(event_date, 5, 2), '-', SUBSTR(event_date, 7, 2)) AS DATE),
      NULL
    ) AS parsed_event_date,
    (SELECT p.value.int_value FROM UNNEST(event_params) AS p WHERE p.key = 'ga_session_id') AS ga_session_id,
    (SELECT p.value.string_value FROM UNNEST(event_params) AS p WHERE p.key = 'page_location') AS raw_page_location,
    (SELECT p.value.string_value FROM UNNEST(event_params) AS p WHERE p.key = 'page_referrer') AS raw_page_referrer
  FROM analytics.`events_*`
  WHERE _TABLE_SUFFIX IN UNNEST(@table_suffixes)
)
