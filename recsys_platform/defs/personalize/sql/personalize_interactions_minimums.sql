-- Personalize's data minimums for one training run, counted after the solution's event-type filter
-- (@event_type = '' means every event type). Same rows as personalize_interactions.sql.
WITH training_rows AS (
  SELECT USER_ID
  FROM recsys.interactions
  WHERE event_date BETWEEN @window_start AND @window_end
    AND NOT (
      `TIMESTAMP` >= @holdout_cut
      AND IS_HELD_OUT(USER_ID)
    )
    AND (@event_type = '' OR EVENT_TYPE = @event_type)
),
per_user AS (
  SELECT USER_ID, COUNT(*) AS interactions
  FROM training_rows
  GROUP BY USER_ID
)
SELECT
  COALESCE(SUM(interactions), 0) AS interactions,
  COUNTIF(interactions >= 2) AS users_with_two_interactions
FROM per_user
