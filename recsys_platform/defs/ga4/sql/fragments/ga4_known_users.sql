-- ga4_known_users: the shop user each visitor (stream + pseudo id) is credited to: the last user_id that
-- pseudo id logged in with, up to the end of the range, within @stitch_lookback_days. Pseudo ids are
-- per data stream, so the stream is part of the visitor. Cookieless pings (no consent) are never stitched.
SELECT stream_id, user_pseudo_id, user_id AS stitched_user_id
FROM recsys.ga4_events
WHERE user_id IS NOT NULL
  AND NOT analytics_consent_denied
  AND event_date BETWEEN DATE_SUB(@first_day, INTERVAL @stitch_lookback_days DAY) AND @last_day
QUALIFY ROW_NUMBER() OVER (PARTITION BY stream_id, user_pseudo_id ORDER BY event_timestamp DESC, user_id DESC) = 1
