-- Why events named @event_name did not become refined item rows, for the materialization's metadata.
SELECT
  COUNT(*) AS events,
  COUNTIF(analytics_consent_denied) AS consent_denied_events,
  COUNTIF(NOT analytics_consent_denied AND (ARRAY_LENGTH(items) = 0 OR items IS NULL)) AS events_without_items,
  SUM(IF(analytics_consent_denied, 0, (SELECT COUNT(*) FROM UNNEST(items) AS item
       WHERE item.item_id IS NULL OR item.item_id IN ('', '(not set)')))) AS items_without_item_id,
  SUM(IF(analytics_consent_denied, 0, (SELECT COUNT(*) FROM UNNEST(items) AS item WHERE item.price IS NULL)))
    AS items_without_price
FROM recsys.ga4_events
WHERE event_date BETWEEN @first_day AND @last_day
  AND event_name = @event_name
