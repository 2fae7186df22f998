-- One GA4 intraday (streaming) table as Personalize events for PutEvents: one row per item of each tracked
-- event (@ga4_events, from taxonomy.yaml), under the USER_ID the platform's interactions give the visitor:
-- the user id (one that is an e-mail address is refused, as the merge's LOOKS_LIKE_EMAIL does), else the
-- last user id the visitor logged in with in this table (stitching), else 'anon:<stream>:<pseudo id>'.
-- Cookieless pings (no analytics consent) are left out, as they are of interactions. HELD_OUT marks the
-- platform holdout's users, whose events must never be recorded (they would join every later training).
-- `events_intraday_table` is replaced by the (validated) table name before the statement runs.
WITH events AS (
  SELECT
    e.event_timestamp,
    e.event_name,
    CAST(e.stream_id AS STRING) AS stream_id,
    e.user_pseudo_id,
    IF(REGEXP_CONTAINS(e.user_id, r'^[^@\s]+@[^@\s]+\.[^@\s]+$'), NULL, e.user_id) AS user_id,
    (SELECT p.value.int_value FROM UNNEST(e.event_params) AS p WHERE p.key = 'ga_session_id') AS ga_session_id,
    e.items
  FROM analytics.events_intraday_table AS e
  WHERE e.event_name IN UNNEST(@ga4_events)
    AND e.event_timestamp IS NOT NULL
    AND e.user_pseudo_id IS NOT NULL
    AND IFNULL(e.privacy_info.analytics_storage, '') != 'No'
),
known_users AS (
  SELECT stream_id, user_pseudo_id, user_id AS stitched_user_id
  FROM events
  WHERE user_id IS NOT NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY stream_id, user_pseudo_id ORDER BY event_timestamp DESC, user_id DESC) = 1
),
item_events AS (
  SELECT
    COALESCE(e.user_id, k.stitched_user_id, CONCAT('anon:', e.stream_id, ':', e.user_pseudo_id)) AS USER_ID,
    CONCAT(e.stream_id, ':', e.user_pseudo_id, ':', IFNULL(CAST(e.ga_session_id AS STRING), '')) AS SESSION_ID,
    item.item_id AS ITEM_ID,
    e.event_timestamp AS EVENT_TIMESTAMP_MICROS,
    e.event_name AS GA4_EVENT,
    item.price AS PRICE,
    COALESCE(item.quantity, 1) AS QUANTITY,
    COALESCE(item.item_revenue, item.price * COALESCE(item.quantity, 1)) AS ITEM_REVENUE
  FROM events AS e
  CROSS JOIN UNNEST(e.items) AS item
  LEFT JOIN known_users AS k
    ON k.stream_id = e.stream_id AND k.user_pseudo_id = e.user_pseudo_id
  WHERE item.item_id IS NOT NULL
    AND item.item_id NOT IN ('', '(not set)')
)
SELECT *, IS_HELD_OUT(USER_ID) AS HELD_OUT
FROM item_events
ORDER BY USER_ID, SESSION_ID, EVENT_TIMESTAMP_MICROS, ITEM_ID
