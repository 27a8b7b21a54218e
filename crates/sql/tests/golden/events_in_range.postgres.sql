SELECT s."__almanac_c0", s."__almanac_c1", s."__almanac_c2", s."__almanac_c3", s."__almanac_c4"
FROM (
  SELECT CAST(s."user_id" AS BIGINT) AS "__almanac_c0", CAST(s."event_timestamp" AS TIMESTAMPTZ) AS "__almanac_c1", CAST(s."created_at" AS TIMESTAMPTZ) AS "__almanac_c2", CAST(s."txn_amount" AS DOUBLE PRECISION) AS "__almanac_c3", CAST(s."merchant_id" AS BIGINT) AS "__almanac_c4", ROW_NUMBER() OVER () AS "__almanac_order"
  FROM "analytics"."transactions" AS s
  WHERE s."event_timestamp" IS NOT NULL
) AS s
WHERE s."__almanac_c1" >= TIMESTAMPTZ '2026-06-01 00:00:00.000000+00' AND s."__almanac_c1" <= TIMESTAMPTZ '2026-07-01 00:00:00.000000+00'
ORDER BY s."__almanac_order"
