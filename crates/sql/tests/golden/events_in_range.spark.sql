SELECT s.`__almanac_c0`, s.`__almanac_c1`, s.`__almanac_c2`, s.`__almanac_c3`, s.`__almanac_c4`
FROM (
  SELECT CAST(s.`user_id` AS BIGINT) AS `__almanac_c0`, CAST(s.`event_timestamp` AS TIMESTAMP) AS `__almanac_c1`, CAST(s.`created_at` AS TIMESTAMP) AS `__almanac_c2`, CAST(s.`txn_amount` AS DOUBLE) AS `__almanac_c3`, CAST(s.`merchant_id` AS BIGINT) AS `__almanac_c4`, struct(s.`__almanac_file`, s.`__almanac_block`, monotonically_increasing_id()) AS `__almanac_order`
  FROM `analytics`.`transactions` AS s
  WHERE s.`event_timestamp` IS NOT NULL
) AS s
WHERE s.`__almanac_c1` >= TIMESTAMP '2026-06-01 00:00:00.000000+00:00' AND s.`__almanac_c1` <= TIMESTAMP '2026-07-01 00:00:00.000000+00:00'
ORDER BY s.`__almanac_order`
