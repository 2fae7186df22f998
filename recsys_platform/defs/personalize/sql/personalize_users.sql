-- The users dataset: the product DB's registered users.
SELECT
  CAST(user_id AS STRING) AS USER_ID,
  UNIX_SECONDS(CAST(created_at AS TIMESTAMP)) AS SIGNUP_TIMESTAMP
FROM product_db.users
ORDER BY USER_ID
