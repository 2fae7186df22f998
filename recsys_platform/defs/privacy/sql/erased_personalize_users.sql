-- The USER_IDs the erased users and browsers have in Personalize: the shop's user id, or
-- 'anon:<stream>:<pseudo id>' for a visitor who never logged in.
SELECT DISTINCT USER_ID
FROM recsys.interactions
WHERE USER_ID IN UNNEST(@user_ids)
   OR REGEXP_EXTRACT(USER_ID, r'^anon:[^:]*:(.*)$') IN UNNEST(@user_pseudo_ids)
