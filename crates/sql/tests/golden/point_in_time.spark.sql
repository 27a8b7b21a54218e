WITH
`v0` AS (
  SELECT r.`__almanac_row`, r.w.f0 AS `__almanac_v0_f0`, r.w.f1 AS `__almanac_v0_f1`
  FROM (
    SELECT u.`__almanac_k0`, u.`__almanac_row`, u.`__almanac_at`, LAST(u.`__almanac_hit`, true) OVER (PARTITION BY u.`__almanac_k0` ORDER BY u.`__almanac_at`, u.`__almanac_kind`, u.`__almanac_o0` ASC NULLS FIRST, u.`__almanac_o1` ASC NULLS FIRST, u.`__almanac_o2` ASC NULLS FIRST, u.`__almanac_o3` ASC NULLS FIRST ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS w
    FROM (
      SELECT s.`user_id` AS `__almanac_k0`, s.`event_timestamp` AS `__almanac_at`, 0 AS `__almanac_kind`, CAST(NULL AS BIGINT) AS `__almanac_row`, CASE WHEN s.`event_timestamp` IS NOT NULL THEN named_struct('t', s.`event_timestamp`, 'f0', CAST(s.`avg_amount` AS DOUBLE), 'f1', CAST(s.`txn_count_7d` AS BIGINT)) END AS `__almanac_hit`, s.`created_at` AS `__almanac_o0`, s.`txn_count_7d` AS `__almanac_o1`, s.`avg_amount` AS `__almanac_o2`, s.`segment` AS `__almanac_o3`
      FROM `analytics`.`user_txn_stats` AS s
      UNION ALL
      SELECT e.`user_id`, e.`__almanac_at`, 1, e.`__almanac_row`, NULL, NULL AS `__almanac_o0`, NULL AS `__almanac_o1`, NULL AS `__almanac_o2`, NULL AS `__almanac_o3`
      FROM `almanac_entities` AS e
    ) AS u
  ) AS r
  WHERE r.`__almanac_row` IS NOT NULL AND r.`__almanac_at` IS NOT NULL AND r.w IS NOT NULL AND r.`__almanac_k0` IS NOT NULL AND r.w.t >= (r.`__almanac_at` - INTERVAL '259200' SECOND)
),
`v1` AS (
  SELECT r.`__almanac_row`, r.w.f0 AS `__almanac_v1_f0`, r.w.f1 AS `__almanac_v1_f1`, r.w.f2 AS `__almanac_v1_f2`
  FROM (
    SELECT u.`__almanac_k0`, u.`__almanac_k1`, u.`__almanac_row`, u.`__almanac_at`, LAST(u.`__almanac_hit`, true) OVER (PARTITION BY u.`__almanac_k0`, u.`__almanac_k1` ORDER BY u.`__almanac_at`, u.`__almanac_kind`, u.`__almanac_o0` ASC NULLS FIRST, u.`__almanac_o1` ASC NULLS FIRST, u.`__almanac_o2` ASC NULLS FIRST ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS w
    FROM (
      SELECT s.`merchant_id` AS `__almanac_k0`, s.`shop` AS `__almanac_k1`, s.`event_timestamp` AS `__almanac_at`, 0 AS `__almanac_kind`, CAST(NULL AS BIGINT) AS `__almanac_row`, CASE WHEN s.`event_timestamp` IS NOT NULL THEN named_struct('t', s.`event_timestamp`, 'f0', CAST(s.`fraud_rate` AS DOUBLE), 'f1', CAST(s.`opened` AS TIMESTAMP), 'f2', CAST(s.`active` AS BOOLEAN)) END AS `__almanac_hit`, s.`fraud_rate` AS `__almanac_o0`, s.`opened` AS `__almanac_o1`, s.`active` AS `__almanac_o2`
      FROM (
SELECT * FROM merchant_shop_stats WHERE region = 'eu'
) AS s
      UNION ALL
      SELECT e.`merchant_id`, e.`shop`, e.`__almanac_at`, 1, e.`__almanac_row`, NULL, NULL AS `__almanac_o0`, NULL AS `__almanac_o1`, NULL AS `__almanac_o2`
      FROM `almanac_entities` AS e
    ) AS u
  ) AS r
  WHERE r.`__almanac_row` IS NOT NULL AND r.`__almanac_at` IS NOT NULL AND r.w IS NOT NULL AND r.`__almanac_k0` IS NOT NULL AND r.`__almanac_k1` IS NOT NULL
)
SELECT e.`__almanac_row`, `v0`.`__almanac_v0_f0`, `v0`.`__almanac_v0_f1`, `v1`.`__almanac_v1_f0`, `v1`.`__almanac_v1_f1`, `v1`.`__almanac_v1_f2`
FROM `almanac_entities` AS e
LEFT JOIN `v0` ON `v0`.`__almanac_row` = e.`__almanac_row`
LEFT JOIN `v1` ON `v1`.`__almanac_row` = e.`__almanac_row`
ORDER BY e.`__almanac_row`
