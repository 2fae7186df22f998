-- Every erasure request: a registered user (user_id), a browser (user_pseudo_id), or both.
SELECT user_id, user_pseudo_id, requested_at
FROM shop.erasure_requests
ORDER BY requested_at, user_id, user_pseudo_id
