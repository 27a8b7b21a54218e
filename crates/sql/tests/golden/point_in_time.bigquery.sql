WITH
`v0_asof` AS (
  SELECT u.`__almanac_row`, u.`__almanac_at`, u.`__almanac_k0`, MAX(u.`__almanac_hit`) OVER (PARTITION BY u.`__almanac_k0` ORDER BY u.`__almanac_at`, u.`__almanac_row` NULLS FIRST ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS `__almanac_winner`
  FROM (
    SELECT s.`user_id` AS `__almanac_k0`, s.`event_timestamp` AS `__almanac_at`, CAST(NULL AS INT64) AS `__almanac_row`, s.`event_timestamp` AS `__almanac_hit`
    FROM `analytics`.`user_txn_stats` AS s
    UNION ALL
    SELECT e.`user_id`, e.`__almanac_at`, e.`__almanac_row`, NULL
    FROM `almanac_entities` AS e
  ) AS u
),
`v0` AS (
  SELECT r.`__almanac_row`, r.`__almanac_v0_f0`, r.`__almanac_v0_f1`
  FROM (
    SELECT a.`__almanac_row`, CAST(s.`avg_amount` AS FLOAT64) AS `__almanac_v0_f0`, CAST(s.`txn_count_7d` AS INT64) AS `__almanac_v0_f1`,
      ROW_NUMBER() OVER (PARTITION BY a.`__almanac_row` ORDER BY s.`created_at` DESC NULLS LAST, s.`txn_count_7d` DESC NULLS LAST, s.`avg_amount` DESC NULLS LAST, s.`segment` DESC NULLS LAST) AS `__almanac_rank`
    FROM `v0_asof` AS a
    JOIN `analytics`.`user_txn_stats` AS s ON s.`user_id` = a.`__almanac_k0` AND s.`event_timestamp` = a.`__almanac_winner`
    WHERE a.`__almanac_row` IS NOT NULL AND a.`__almanac_at` IS NOT NULL AND a.`__almanac_winner` >= TIMESTAMP_SUB(a.`__almanac_at`, INTERVAL 259200000000 MICROSECOND)
  ) AS r
  WHERE r.`__almanac_rank` = 1
),
`v1_asof` AS (
  SELECT u.`__almanac_row`, u.`__almanac_at`, u.`__almanac_k0`, u.`__almanac_k1`, MAX(u.`__almanac_hit`) OVER (PARTITION BY u.`__almanac_k0`, u.`__almanac_k1` ORDER BY u.`__almanac_at`, u.`__almanac_row` NULLS FIRST ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS `__almanac_winner`
  FROM (
    SELECT s.`merchant_id` AS `__almanac_k0`, s.`shop` AS `__almanac_k1`, s.`event_timestamp` AS `__almanac_at`, CAST(NULL AS INT64) AS `__almanac_row`, s.`event_timestamp` AS `__almanac_hit`
    FROM (
SELECT * FROM merchant_shop_stats WHERE region = 'eu'
) AS s
    UNION ALL
    SELECT e.`merchant_id`, e.`shop`, e.`__almanac_at`, e.`__almanac_row`, NULL
    FROM `almanac_entities` AS e
  ) AS u
),
`v1` AS (
  SELECT r.`__almanac_row`, r.`__almanac_v1_f0`, r.`__almanac_v1_f1`, r.`__almanac_v1_f2`
  FROM (
    SELECT a.`__almanac_row`, CAST(s.`fraud_rate` AS FLOAT64) AS `__almanac_v1_f0`, CAST(s.`opened` AS TIMESTAMP) AS `__almanac_v1_f1`, CAST(s.`active` AS BOOL) AS `__almanac_v1_f2`,
      ROW_NUMBER() OVER (PARTITION BY a.`__almanac_row` ORDER BY s.`fraud_rate` DESC NULLS LAST, s.`opened` DESC NULLS LAST, s.`active` DESC NULLS LAST) AS `__almanac_rank`
    FROM `v1_asof` AS a
    JOIN (
SELECT * FROM merchant_shop_stats WHERE region = 'eu'
) AS s ON s.`merchant_id` = a.`__almanac_k0` AND s.`shop` = a.`__almanac_k1` AND s.`event_timestamp` = a.`__almanac_winner`
    WHERE a.`__almanac_row` IS NOT NULL AND a.`__almanac_at` IS NOT NULL
  ) AS r
  WHERE r.`__almanac_rank` = 1
)
SELECT e.`__almanac_row`, `v0`.`__almanac_v0_f0`, `v0`.`__almanac_v0_f1`, `v1`.`__almanac_v1_f0`, `v1`.`__almanac_v1_f1`, `v1`.`__almanac_v1_f2`
FROM `almanac_entities` AS e
LEFT JOIN `v0` ON `v0`.`__almanac_row` = e.`__almanac_row`
LEFT JOIN `v1` ON `v1`.`__almanac_row` = e.`__almanac_row`
ORDER BY e.`__almanac_row`
