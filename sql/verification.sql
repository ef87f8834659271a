-- Verification queries for TICKET-001 (daily quota) and TICKET-002 (no full key anywhere).
-- Run against the service's database:   mysql -u root wikimedia_prod < sql/verification.sql
-- Each query says what it proves. Every query runs without error on a fresh sample database
-- (tests/database/test_verification_sql.py runs this file), with or without sql/roles.sql.

-- 1. api_keys holds no plain-text key column: only the hash and the 6-character prefix.
--    Expect no row named api_key, and key_hash/key_prefix present.
SELECT table_name, column_name, column_type
  FROM information_schema.COLUMNS
 WHERE table_schema = DATABASE()
   AND table_name IN ('api_keys', 'audit_logs')
   AND column_name IN ('api_key', 'key_hash', 'key_prefix')
 ORDER BY table_name, column_name;

-- 2. Every stored hash is a SHA-256 hex digest and every prefix is at most 6 characters.
--    Expect bad_hashes = 0 and long_prefixes = 0.
SELECT SUM(key_hash NOT REGEXP '^[0-9a-f]{64}$') AS bad_hashes,
       SUM(CHAR_LENGTH(key_prefix) > 6) AS long_prefixes,
       COUNT(*) AS keys_total
  FROM api_keys;

-- 3. No audit row holds more than a 6-character prefix, and no old error text still holds a
--    legacy-style key (key_ followed by 3+ letters or digits: a masked one is key_AB...).
--    Expect 0 and 0.
SELECT SUM(CHAR_LENGTH(key_prefix) > 6) AS audit_rows_with_long_prefix,
       SUM(error_message REGEXP 'key_[[:alnum:]]{3}') AS error_texts_with_a_key
  FROM audit_logs;

-- 4. The sample keys appear nowhere in plain text (the two known legacy keys).
--    Expect 0 in every column.
SELECT (SELECT COUNT(*) FROM audit_logs
         WHERE key_prefix IN ('key_ABC123', 'key_DEF456')
            OR error_message LIKE '%key\_ABC123%' OR error_message LIKE '%key\_DEF456%')
         AS audit_rows_with_sample_keys,
       (SELECT COUNT(*) FROM api_keys WHERE key_prefix IN ('key_ABC123', 'key_DEF456'))
         AS key_rows_with_plain_keys;

-- 5. The view's definition: DEFINER security (an account with SELECT on the view alone can read
--    it), and masked_key is the first 6 characters followed by '...'.
SELECT table_name, security_type, check_option
  FROM information_schema.VIEWS
 WHERE table_schema = DATABASE() AND table_name = 'masked_audit_logs';

-- 6. The view's output, newest first: every masked_key is NULL (a request without a valid key)
--    or exactly 6 characters + '...'.
SELECT id, masked_key, endpoint, method, response_code, response_time_ms, `timestamp`, error_code
  FROM masked_audit_logs
 ORDER BY id DESC
 LIMIT 20;

SELECT COUNT(*) AS masked_rows,
       SUM(masked_key IS NOT NULL AND masked_key NOT REGEXP '^.{6}[.]{3}$') AS badly_masked
  FROM masked_audit_logs;

-- 7. Each key's count and the UTC day it belongs to (TICKET-001). A count whose day is before
--    UTC today is spent history: the key's next request starts the new day at 1. used_today is
--    what /api/usage reports.
SELECT id, key_prefix, rate_limit, calls_made, last_reset,
       CASE WHEN last_reset IS NULL OR last_reset < UTC_DATE() THEN 0 ELSE calls_made END
         AS used_today,
       UTC_DATE() AS utc_today, expires_at, is_valid
  FROM api_keys
 ORDER BY id;

-- 8. Audit outcomes per day and status: every outcome is recorded (200, 401, 403, 429, ...).
SELECT DATE(`timestamp`) AS utc_day, response_code, error_code, COUNT(*) AS calls
  FROM audit_logs
 GROUP BY DATE(`timestamp`), response_code, error_code
 ORDER BY utc_day DESC, response_code;

-- 9. The roles' grants (sql/roles.sql), if applied: wme_auditor may only SELECT the view;
--    wme_service may SELECT only id and timestamp of audit_logs. Empty before roles.sql is run.
SELECT grantee, table_name, privilege_type
  FROM information_schema.TABLE_PRIVILEGES
 WHERE table_schema = DATABASE() AND grantee LIKE '%wme\_%'
 ORDER BY grantee, table_name, privilege_type;

SELECT grantee, table_name, column_name, privilege_type
  FROM information_schema.COLUMN_PRIVILEGES
 WHERE table_schema = DATABASE() AND grantee LIKE '%wme\_%'
 ORDER BY grantee, table_name, column_name, privilege_type;

-- 10. Applied migrations (the schema version /ready compares against).
SELECT version, name, applied_at FROM schema_migrations ORDER BY version;
