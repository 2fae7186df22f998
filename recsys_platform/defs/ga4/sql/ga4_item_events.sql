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
),
-- The day's events of @event_name, one row per item.
event_items AS (
  SELECT
    e.event_date,
    e.event_timestamp,
    e.event_key,
    e.user_id,
    e.user_pseudo_id,
    e.ga_session_id,
    e.ecommerce.transaction_id AS transaction_id,
    e.device.category AS device_category,
    e.geo.country AS country,
    e.page_location,
    item
  FROM recsys.ga4_events AS e
  CROSS JOIN UNNEST(e.items) AS item
  WHERE e.event_date BETWEEN @first_day AND @last_day
    AND e.event_name = @event_name
)
SELECT
  i.event_date,
  TIMESTAMP_MICROS(i.event_timestamp) AS event_ts,
  i.event_timestamp,
  i.event_key,
  COALESCE(i.user_id, k.stitched_user_id) AS user_id,
  i.user_id IS NULL AND k.stitched_user_id IS NOT NULL AS is_stitched,
  i.user_pseudo_id,
  i.ga_session_id AS session_id,
  i.item.item_id,
  i.item.item_name,
  i.item.item_category,
  i.item.item_category2,
  i.item.price,
  COALESCE(i.item.quantity, 1) AS quantity,
  COALESCE(i.item.item_revenue, i.item.price * COALESCE(i.item.quantity, 1)) AS item_revenue,
  i.transaction_id,
  i.device_category,
  i.country,
  i.page_location
FROM event_items AS i
LEFT JOIN known_users AS k ON k.user_pseudo_id = i.user_pseudo_id
WHERE i.item.item_id IS NOT NULL
  AND i.item.item_id NOT IN ('', '(not set)')
