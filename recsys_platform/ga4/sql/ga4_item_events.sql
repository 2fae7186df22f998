-- One refined, item-grain table per tracked GA4 event (see taxonomy.yaml): one row per item of each
-- event named @event_name in ga4_events. Items without a usable item_id are left out (counted by
-- ga4_item_events_drops.sql). user_id is stitched: the event's own user_id, else the last user_id that
-- the same user_pseudo_id logged in with up to the end of the range (within @stitch_lookback_days), so
-- anonymous browsing before a login is credited to the shop's user.
WITH known_users AS (
  SELECT user_pseudo_id, user_id AS stitched_user_id
  FROM recsys.ga4_events
  WHERE user_id IS NOT NULL
    AND event_date BETWEEN DATE_SUB(@first_day, INTERVAL @stitch_lookback_days DAY) AND @last_day
  QUALIFY ROW_NUMBER() OVER (PARTITION BY user_pseudo_id ORDER BY event_timestamp DESC, user_id DESC) = 1
)
SELECT
  e.event_date,
  TIMESTAMP_MICROS(e.event_timestamp) AS event_ts,
  e.event_timestamp,
  e.event_key,
  COALESCE(e.user_id, k.stitched_user_id) AS user_id,
  e.user_id IS NULL AND k.stitched_user_id IS NOT NULL AS is_stitched,
  e.user_pseudo_id,
  e.ga_session_id AS session_id,
  item.item_id,
  item.item_name,
  item.item_category,
  item.item_category2,
  item.price,
  COALESCE(item.quantity, 1) AS quantity,
  COALESCE(item.item_revenue, item.price * COALESCE(item.quantity, 1)) AS item_revenue,
  e.ecommerce.transaction_id AS transaction_id,
  e.device.category AS device_category,
  e.geo.country AS country,
  e.page_location
FROM recsys.ga4_events AS e
CROSS JOIN UNNEST(e.items) AS item
LEFT JOIN known_users AS k ON k.user_pseudo_id = e.user_pseudo_id
WHERE e.event_date BETWEEN @first_day AND @last_day
  AND e.event_name = @event_name
  AND item.item_id IS NOT NULL
  AND item.item_id NOT IN ('', '(not set)')
