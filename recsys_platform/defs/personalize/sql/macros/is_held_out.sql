-- macro is_held_out(user_id)
-- The platform holdout's users: a fixed share (@holdout_percent) of users, chosen by a seeded hash of the
-- user id, so the same users are held out of training and scored in every file that asks.
MOD(CAST(CONCAT('0x', SUBSTR(TO_HEX(MD5(CONCAT(@holdout_seed, user_id))), 1, 8)) AS INT64), 100) < @holdout_percent
