-- The platform's holdout: held-out users' target events (purchases by default) from the holdout cut to
-- the end of the training window. personalize_interactions.sql leaves these users' rows from the cut
-- on out of training, with the same user hash.
SELECT
  USER_ID,
  ITEM_ID,
  `TIMESTAMP`
FROM recsys.interactions
WHERE event_date BETWEEN @window_start AND @window_end
  AND `TIMESTAMP` >= @holdout_cut
  AND EVENT_TYPE = @target_event_type
  AND IS_HELD_OUT(USER_ID)
ORDER BY USER_ID, `TIMESTAMP`, ITEM_ID
