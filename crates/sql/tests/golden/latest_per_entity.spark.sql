SELECT r.`__almanac_c0`, r.`__almanac_c1`, r.`__almanac_c2`, r.`__almanac_c3`, r.`__almanac_c4`, r.`__almanac_c5`, r.`__almanac_rows`
FROM (
  SELECT CAST(s.`user_id` AS BIGINT) AS `__almanac_c0`, CAST(s.`event_timestamp` AS TIMESTAMP) AS `__almanac_c1`, CAST(s.`created_at` AS TIMESTAMP) AS `__almanac_c2`, CAST(s.`txn_count_7d` AS BIGINT) AS `__almanac_c3`, CAST(s.`avg_amount` AS DOUBLE) AS `__almanac_c4`, CAST(s.`segment` AS STRING) AS `__almanac_c5`, COUNT(*) OVER () AS `__almanac_rows`,
    ROW_NUMBER() OVER (PARTITION BY s.`user_id` ORDER BY s.`event_timestamp` DESC, s.`created_at` DESC NULLS LAST, s.`txn_count_7d` DESC NULLS LAST, s.`avg_amount` DESC NULLS LAST, s.`segment` DESC NULLS LAST) AS `__almanac_rank`
  FROM `analytics`.`user_txn_stats` AS s
  WHERE s.`event_timestamp` IS NOT NULL AND s.`event_timestamp` >= TIMESTAMP '2026-01-01 00:00:00.000000+00:00' AND s.`event_timestamp` <= TIMESTAMP '2026-07-01 00:00:00.500000+00:00' AND s.`user_id` IS NOT NULL
) AS r
WHERE r.`__almanac_rank` = 1
