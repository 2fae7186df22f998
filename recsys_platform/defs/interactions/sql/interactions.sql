-- interactions: Personalize's interaction columns for each property-local day.
-- GA4 behaviour (every tracked event of taxonomy.yaml) united with the product DB's paid order lines,
-- which are the authoritative purchases: a GA4 purchase whose transaction_id is a DB order is not
-- counted twice. Visitors who never logged in keep their GA4 pseudo id, as 'anon:<stream>:<pseudo id>', so
-- their sessions still teach the model which items go together.
WITH tracked_events AS (
  -- Generated at run time from taxonomy.yaml (one SELECT per refined table, see interactions/assets.py);
  -- this body only declares the columns the generated one has.
  SELECT
    CAST(NULL AS DATE) AS event_date,
    CAST(NULL AS STRING) AS user_id,
    CAST(NULL AS STRING) AS stream_id,
    CAST(NULL AS STRING) AS user_pseudo_id,
    CAST(NULL AS STRING) AS item_id,
    CAST(NULL AS INT64) AS event_timestamp,
    CAST(NULL AS STRING) AS event_type,
    CAST(NULL AS FLOAT64) AS event_value,
    CAST(NULL AS STRING) AS transaction_id
  FROM UNNEST([1]) AS placeholder
  WHERE FALSE
),
-- shop.* are the product DB replica's tables through the product DB contract (defs/product_db/contract.py):
-- STRING ids and TIMESTAMP instants, whatever the replica stores.
db_purchases AS (
  SELECT
    DATE(o.ordered_at, @timezone) AS event_date,
    o.user_id,
    oi.item_id,
    UNIX_SECONDS(o.ordered_at) AS event_seconds,
    oi.unit_price * oi.quantity AS event_value
  FROM shop.orders AS o
  JOIN shop.order_items AS oi ON oi.order_id = o.order_id
  WHERE o.status IN UNNEST(@paid_statuses)
    AND o.user_id IS NOT NULL
    -- The shop keeps an erased user's orders (its books), the recommender does not learn from them.
    AND o.user_id NOT IN (SELECT r.user_id FROM shop.erasure_requests AS r WHERE r.user_id IS NOT NULL)
    AND o.ordered_at >= TIMESTAMP_SUB(TIMESTAMP(@first_day), INTERVAL 1 DAY)
    AND o.ordered_at < TIMESTAMP_ADD(TIMESTAMP(@last_day), INTERVAL 2 DAY)
    AND DATE(o.ordered_at, @timezone) BETWEEN @first_day AND @last_day
),
ga4_behaviour AS (
  SELECT
    event_date,
    -- A visitor who never logged in is one user per data stream (pseudo ids are per stream).
    COALESCE(user_id, CONCAT('anon:', CAST(stream_id AS STRING), ':', user_pseudo_id)) AS user_id,
    item_id,
    DIV(event_timestamp, 1000000) AS event_seconds,
    event_type,
    event_value
  FROM tracked_events
  -- NOT EXISTS, not NOT IN: one order without an id (NULL) would make NOT IN false for every row and
  -- silently drop every GA4-only purchase.
  WHERE event_type != @purchase_event_type
     OR transaction_id IS NULL
     OR NOT EXISTS (SELECT 1 FROM shop.orders AS o WHERE o.order_id = transaction_id)
)
SELECT event_date, user_id AS USER_ID, item_id AS ITEM_ID, event_seconds AS `TIMESTAMP`,
       event_type AS EVENT_TYPE, event_value AS EVENT_VALUE, 'ga4' AS source
FROM ga4_behaviour
UNION ALL
SELECT event_date, user_id, item_id, event_seconds, @purchase_event_type, event_value, 'product_db'
FROM db_purchases
