-- The users dataset: the product DB's registered users (shop.users: the replica through the contract),
-- less those who asked to be forgotten (shop.erasure_requests).
SELECT
  u.user_id AS USER_ID,
  UNIX_SECONDS(u.created_at) AS SIGNUP_TIMESTAMP
FROM shop.users AS u
WHERE NOT EXISTS (SELECT 1 FROM shop.erasure_requests AS r WHERE r.user_id = u.user_id)
ORDER BY USER_ID
