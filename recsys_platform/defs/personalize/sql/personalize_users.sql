-- The users dataset: the product DB's registered users (shop.users: the replica through the contract).
SELECT
  user_id AS USER_ID,
  UNIX_SECONDS(created_at) AS SIGNUP_TIMESTAMP
FROM shop.users
ORDER BY USER_ID
