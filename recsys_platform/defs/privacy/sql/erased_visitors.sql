-- The browsers that logged in as an erased user: their anonymous browsing is that user's too.
SELECT DISTINCT user_pseudo_id
FROM recsys.ga4_events
WHERE user_id IN UNNEST(@user_ids)
  AND user_pseudo_id IS NOT NULL
