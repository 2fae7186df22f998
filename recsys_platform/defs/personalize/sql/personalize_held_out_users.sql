-- Which of @user_ids are the platform holdout's users (the same predicate the training snapshot and the
-- holdout use), for the real-time path: events of these users must never be recorded with PutEvents.
SELECT user_id AS USER_ID
FROM UNNEST(@user_ids) AS user_id
WHERE IS_HELD_OUT(user_id)
ORDER BY USER_ID
