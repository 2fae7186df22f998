-- What the merge of ga4_events leaves out of the days' shards, by reason (for the materialization's metadata).
SELECT
  COUNT(*) AS shard_rows,
  COUNTIF(event_timestamp IS NULL) AS dropped_without_timestamp,
  COUNTIF(event_name IS NULL) AS dropped_without_event_name,
  COUNTIF(user_pseudo_id IS NULL) AS dropped_without_user_pseudo_id,
  COUNTIF(event_date IS NULL
    OR CAST(CONCAT(SUBSTR(event_date, 1, 4), '-', SUBSTR(event_date, 5, 2), '-', SUBSTR(event_date, 7, 2)) AS DATE)
       NOT BETWEEN @first_day AND @last_day) AS dropped_outside_partition
FROM analytics.`events_*`
WHERE _TABLE_SUFFIX BETWEEN @first_suffix AND @last_suffix
