-- The items dataset: the product DB's catalogue. CATEGORIES is a multi-value categorical
-- ("l1|l2"), so a '|' inside a category name is replaced to keep the levels apart.
SELECT
  CAST(item_id AS STRING) AS ITEM_ID,
  CAST(price AS FLOAT64) AS PRICE,
  NULLIF(
    CONCAT(
      COALESCE(REPLACE(category_l1, '|', '/'), ''),
      IF(category_l1 IS NOT NULL AND category_l2 IS NOT NULL, '|', ''),
      COALESCE(REPLACE(category_l2, '|', '/'), '')
    ),
    ''
  ) AS CATEGORIES,
  is_available AS IS_AVAILABLE,
  UNIX_SECONDS(CAST(created_at AS TIMESTAMP)) AS CREATION_TIMESTAMP
FROM product_db.items
ORDER BY ITEM_ID
