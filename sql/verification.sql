-- Verification queries for TICKET-001 (daily quota) and TICKET-002 (no full key anywhere).
-- Run against the service's database:   mysql -u root wikimedia_prod < sql/verification.sql
-- Each query says what it proves; an "Expect:" line names columns of the query below it and the
-- value each must hold in every row it prints (tests/database/test_verification_sql.py holds
-- the file to these lines on a sample database that served requests, with and without
-- sql/roles.sql).

-- 1. api_keys holds no plain-text key column: only the hash and the 6-character prefix.
--    Expect: plain_key_columns = 0, hash_and_prefix_columns = 3
SELECT COALESCE(SUM(column_name = 'api_key'), 0) AS plain_key_columns,
       COALESCE(SUM(column_name IN ('key_hash', 'key_prefix')), 0) AS hash_and_prefix_columns
  FROM information_schema.COLUMNS
 WHERE table_schema = DATABASE()
   AND table_name IN ('api_keys', 'audit_logs')
   AND column_name IN ('api_key', 'key_hash', 'key_prefix');

--    The same columns one by one: api_keys.key_hash, api_keys.key_prefix, audit_logs.key_prefix.
SELECT table_name, column_name, column_type
  FROM information_schema.COLUMNS
 WHERE table_schema = DATABASE()
   AND table_name IN ('api_keys', 'audit_logs')
   AND column_name IN ('api_key', 'key_hash', 'key_prefix')
 ORDER BY table_name, column_name;

-- 2. Every stored hash is a SHA-256 hex digest and every prefix is at most 6 characters.
--    Expect: bad_hashes = 0, long_prefixes = 0
SELECT COALESCE(SUM(key_hash NOT REGEXP '^[0-9a-f]{64}$'), 0) AS bad_hashes,
       COALESCE(SUM(CHAR_LENGTH(key_prefix) > 6), 0) AS long_prefixes,
       COUNT(*) AS keys_total
  FROM api_keys;

-- 3. No audit row holds more than a 6-character prefix, and no old error text still holds a
--    legacy-style key (key_ followed by 3+ letters or digits: a masked one is key_AB...).
--    Expect: audit_rows_with_long_prefix = 0, error_texts_with_a_key = 0
SELECT COALESCE(SUM(CHAR_LENGTH(key_prefix) > 6), 0) AS audit_rows_with_long_prefix,
       COALESCE(SUM(error_message REGEXP 'key_[[:alnum:]]{3}'), 0) AS error_texts_with_a_key
  FROM audit_logs;

-- 4. The sample keys appear nowhere in plain text (the two known legacy keys).
--    Expect: audit_rows_with_sample_keys = 0, key_rows_with_plain_keys = 0
SELECT (SELECT COUNT(*) FROM audit_logs
         WHERE key_prefix IN ('key_ABC123', 'key_DEF456')
            OR error_message LIKE '%key\_ABC123%' OR error_message LIKE '%key\_DEF456%')
         AS audit_rows_with_sample_keys,
       (SELECT COUNT(*) FROM api_keys WHERE key_prefix IN ('key_ABC123', 'key_DEF456'))
         AS key_rows_with_plain_keys;

-- 5. The view runs with DEFINER security: an account with SELECT on the view alone can read it.
--    (What masked_key holds is checked on the view's output, in 6.)
--    Expect: table_name = masked_audit_logs, security_type = DEFINER
SELECT table_name, security_type, check_option
  FROM information_schema.VIEWS
 WHERE table_schema = DATABASE() AND table_name = 'masked_audit_logs';

-- 6. The view's output, the 20 rows recorded last (by id): every masked_key is NULL (a request
--    without a valid key) or exactly 6 characters followed by '...'; then the count of rows
--    that are not.
SELECT id, masked_key, endpoint, method, response_code, response_time_ms, `timestamp`, error_code
  FROM masked_audit_logs
 ORDER BY id DESC
 LIMIT 20;

--    Expect: badly_masked = 0
SELECT COUNT(*) AS masked_rows,
       COALESCE(SUM(masked_key IS NOT NULL AND masked_key NOT REGEXP '^.{6}[.]{3}$'), 0)
         AS badly_masked
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

-- 8. Audit outcomes per UTC day, status and error code: one row per combination that occurred
--    (refusals such as 401 and 429 are recorded like successes).
SELECT DATE(`timestamp`) AS utc_day, response_code, error_code, COUNT(*) AS calls
  FROM audit_logs
 GROUP BY DATE(`timestamp`), response_code, error_code
 ORDER BY utc_day DESC, response_code;

-- 9. The roles' grants (sql/roles.sql), if applied. wme_auditor's one table grant is SELECT on
--    masked_audit_logs:
--    Expect: auditor_grants_beyond_the_view = 0
SELECT COUNT(*) AS auditor_grants_beyond_the_view
  FROM information_schema.TABLE_PRIVILEGES
 WHERE table_schema = DATABASE() AND grantee LIKE '%wme\_auditor%'
   AND NOT (table_name = 'masked_audit_logs' AND privilege_type = 'SELECT');

--    Then every table-level and column-level grant of wme_auditor and wme_service (wme_service
--    may SELECT only id and timestamp of audit_logs). Both empty before roles.sql is run.
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
