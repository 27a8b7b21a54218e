WITH `__almanac_bounds` AS (
  SELECT e.`user_id` AS `__almanac_k0`, MIN(e.`__almanac_at`) AS `__almanac_lo`, MAX(e.`__almanac_at`) AS `__almanac_hi`
  FROM `almanac_entities` AS e
  WHERE e.`__almanac_at` IS NOT NULL AND e.`user_id` IS NOT NULL
  GROUP BY e.`user_id`
)
SELECT s.`__almanac_c0`, s.`__almanac_c1`, s.`__almanac_c2`, s.`__almanac_c3`, s.`__almanac_c4`
FROM (
  SELECT CAST(s.`user_id` AS BIGINT) AS `__almanac_c0`, CAST(s.`event_timestamp` AS TIMESTAMP) AS `__almanac_c1`, CAST(s.`created_at` AS TIMESTAMP) AS `__almanac_c2`, CAST(s.`txn_amount` AS DOUBLE) AS `__almanac_c3`, CAST(s.`merchant_id` AS BIGINT) AS `__almanac_c4`, struct(s.`__almanac_file`, s.`__almanac_block`, monotonically_increasing_id()) AS `__almanac_order`
  FROM `analytics`.`transactions` AS s
  WHERE s.`event_timestamp` IS NOT NULL
) AS s
JOIN `__almanac_bounds` AS b ON s.`__almanac_c0` = b.`__almanac_k0`
WHERE s.`__almanac_c1` >= (b.`__almanac_lo` - INTERVAL '2592000' SECOND) AND s.`__almanac_c1` < b.`__almanac_hi`
ORDER BY s.`__almanac_order`
