-- 0004: the GDPR-safe view. /api/audit and the auditor account read only this view.
-- SQL SECURITY DEFINER: an account granted SELECT on the view alone can read it; the definer is the
-- account that runs migrations. CREATE OR REPLACE works on MySQL 8.0 and MariaDB 10.11 alike.
-- key_id is an internal number, not a secret: /api/audit uses it to show a client its own rows.

CREATE OR REPLACE SQL SECURITY DEFINER VIEW masked_audit_logs AS
SELECT
  id,
  key_id,
  CONCAT(LEFT(key_prefix, 6), '...') AS masked_key,
  endpoint,
  method,
  response_code,
  response_time_ms,
  `timestamp`,
  request_id,
  error_code
FROM audit_logs;
