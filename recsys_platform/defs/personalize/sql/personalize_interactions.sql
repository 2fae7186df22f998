-- The interactions dataset of one training run: every interaction in the training window, except the
-- held-out users' interactions from the holdout cut on. Those are the targets the platform scores
-- models on (personalize_purchase_holdout.sql uses the same user hash), so no model trains on them.
SELECT
  USER_ID,
  ITEM_ID,
  `TIMESTAMP`,
  EVENT_TYPE,
  EVENT_VALUE
FROM recsys.interactions
WHERE event_date BETWEEN @window_start AND @window_end
  AND NOT (
    `TIMESTAMP` >= @holdout_cut
    AND IS_HELD_OUT(USER_ID)
  )
ORDER BY `TIMESTAMP`, USER_ID, ITEM_ID, EVENT_TYPE, EVENT_VALUE
