-- The items dataset: the product DB's catalogue (shop.items: the replica through the product DB contract).
-- CATEGORIES is a multi-value categorical ("l1|l2"), so a '|' inside a category name is replaced to keep the
-- levels apart. IS_AVAILABLE is the categorical string 'True'/'False': Personalize ignores boolean fields in
-- training and filters.
SELECT
  item_id AS ITEM_ID,
  price AS PRICE,
  NULLIF(
    CONCAT(
      COALESCE(REPLACE(category_l1, '|', '/'), ''),
      IF(category_l1 IS NOT NULL AND category_l2 IS NOT NULL, '|', ''),
      COALESCE(REPLACE(category_l2, '|', '/'), '')
    ),
    ''
  ) AS CATEGORIES,
  CASE is_available WHEN TRUE THEN 'True' WHEN FALSE THEN 'False' END AS IS_AVAILABLE,
  UNIX_SECONDS(created_at) AS CREATION_TIMESTAMP
FROM shop.items
ORDER BY ITEM_ID
