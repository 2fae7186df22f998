-- One refined, item-grain table per tracked GA4 event (see taxonomy.yaml): one row per item of each
-- event named @event_name in ga4_events. Items without a usable item_id are left out, and so are
-- cookieless pings (no analytics consent: they never reach interactions); ga4_item_events_drops.sql counts
-- both. user_id is stitched (fragments/ga4_known_users.sql), so anonymous browsing before a login is
-- credited to the shop's user. URLs are ga4_events' scrubbed ones: no personal data.
WITH event_items AS (
  SELECT
    e.event_date,
    e.event_timestamp,
    e.event_key,
    e.stream_id,
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
    AND NOT e.analytics_consent_denied
)
SELECT
  i.event_date,
  TIMESTAMP_MICROS(i.event_timestamp) AS event_ts,
  i.event_timestamp,
  i.event_key,
  i.stream_id,
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
LEFT JOIN fragments.ga4_known_users AS k
  ON k.stream_id = i.stream_id AND k.user_pseudo_id = i.user_pseudo_id AND k.event_date = i.event_date
WHERE i.item.item_id IS NOT NULL
  AND i.item.item_id NOT IN ('', '(not set)')
