SELECT CAST(s."merchant_id" AS BIGINT) AS "__almanac_c0", CAST(s."shop" AS VARCHAR) AS "__almanac_c1", CAST(s."event_timestamp" AS TIMESTAMP_TZ) AS "__almanac_c2", CAST(s."fraud_rate" AS DOUBLE) AS "__almanac_c3", CAST(s."opened" AS TIMESTAMP_TZ) AS "__almanac_c4", CAST(s."active" AS BOOLEAN) AS "__almanac_c5"
FROM (
SELECT * FROM merchant_shop_stats WHERE region = 'eu'
) AS s
WHERE s."event_timestamp" IS NOT NULL AND s."event_timestamp" <= '2026-07-01 00:00:00.000000 +00:00'::TIMESTAMP_TZ
