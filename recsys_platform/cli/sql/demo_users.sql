-- A few of the most active users of the training window, to show their recommendations.
SELECT USER_ID, COUNT(*) AS interactions
FROM recsys.interactions
WHERE event_date BETWEEN @window_start AND @window_end
GROUP BY USER_ID
ORDER BY interactions DESC, USER_ID
LIMIT @limit
