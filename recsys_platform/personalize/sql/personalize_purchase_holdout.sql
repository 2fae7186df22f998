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
  AND MOD(CAST(CONCAT('0x', SUBSTR(TO_HEX(MD5(CONCAT(@holdout_seed, USER_ID))), 1, 8)) AS INT64), 100)
      < @holdout_percent
ORDER BY USER_ID, `TIMESTAMP`, ITEM_ID
