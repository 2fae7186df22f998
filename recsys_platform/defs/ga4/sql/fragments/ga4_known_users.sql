-- ga4_known_users: for each visitor (stream + pseudo id) and each day it was seen in the range, the shop
-- user its events of that day are credited to: the last user_id it logged in with up to the end of that
-- day, within @stitch_lookback_days before it. A day's stitching reads nothing after the day, so a day
-- merged inside a backfill gets the same rows as the same day merged alone (or re-merged when GA4 rewrites
-- it). Pseudo ids are per data stream, so the stream is part of the visitor. Cookieless pings (no
-- consent) are never stitched.
SELECT v.stream_id, v.user_pseudo_id, v.event_date, l.user_id AS stitched_user_id
FROM (
  SELECT DISTINCT stream_id, user_pseudo_id, event_date
  FROM recsys.ga4_events
  WHERE event_date BETWEEN @first_day AND @last_day
) AS v
JOIN (
  -- The last login of each visitor on each day.
  SELECT stream_id, user_pseudo_id, event_date AS login_date, user_id
  FROM recsys.ga4_events
  WHERE user_id IS NOT NULL
    AND NOT analytics_consent_denied
    AND event_date BETWEEN DATE_SUB(@first_day, INTERVAL @stitch_lookback_days DAY) AND @last_day
  QUALIFY ROW_NUMBER() OVER (
    PARTITION BY stream_id, user_pseudo_id, event_date ORDER BY event_timestamp DESC, user_id DESC) = 1
) AS l
  ON l.stream_id = v.stream_id
  AND l.user_pseudo_id = v.user_pseudo_id
  AND l.login_date BETWEEN DATE_SUB(v.event_date, INTERVAL @stitch_lookback_days DAY) AND v.event_date
WHERE TRUE  -- BigQuery has required a WHERE, GROUP BY or HAVING beside QUALIFY
QUALIFY ROW_NUMBER() OVER (PARTITION BY v.stream_id, v.user_pseudo_id, v.event_date ORDER BY l.login_date DESC) = 1
