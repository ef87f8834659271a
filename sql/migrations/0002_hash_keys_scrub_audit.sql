-- 0002: TICKET-001 and TICKET-002 at the data level.
-- * api_keys keeps only a SHA-256 hash and a 6-character display prefix; the plain key is dropped.
-- * Permission levels become per-key scopes (read: export; write: export, import; admin: all).
-- * last_reset becomes a DATE (the UTC day calls_made belongs to). It is set to NULL so that every
--   counter left stuck by the legacy reset bug starts afresh on the client's next request.
-- * audit_logs keeps the key's id and prefix only; full keys are cut out of old error texts.
-- Runs with the session time zone at +00:00 (the migration runner sets it), so the TIMESTAMP to
-- DATETIME conversion below yields UTC.

ALTER TABLE api_keys
  ADD COLUMN key_hash CHAR(64) NULL AFTER user_id,
  ADD COLUMN key_prefix VARCHAR(6) NULL AFTER key_hash,
  ADD COLUMN scopes SET('export', 'import', 'audit', 'admin') NOT NULL DEFAULT 'export' AFTER key_prefix,
  ADD COLUMN label VARCHAR(100) NULL,
  ADD COLUMN created_at DATETIME NULL,
  ADD COLUMN revoked_at DATETIME NULL;

UPDATE api_keys k
  LEFT JOIN users u ON u.id = k.user_id
  SET k.key_hash = SHA2(k.api_key, 256),
      k.key_prefix = LEFT(k.api_key, 6),
      k.scopes = CASE u.permission_level
                   WHEN 'admin' THEN 'export,import,audit,admin'
                   WHEN 'write' THEN 'export,import'
                   ELSE 'export'
                 END;

ALTER TABLE audit_logs
  ADD COLUMN key_id INT NULL AFTER id,
  ADD COLUMN key_prefix VARCHAR(6) NULL AFTER key_id,
  ADD COLUMN method VARCHAR(10) NULL AFTER key_prefix,
  ADD COLUMN request_id VARCHAR(64) NULL,
  ADD COLUMN error_code VARCHAR(32) NULL;

UPDATE audit_logs a
  LEFT JOIN api_keys k ON k.api_key = a.api_key
  SET a.key_id = k.id,
      a.key_prefix = LEFT(a.api_key, 6);

-- The row's own key, then every other known key, then anything still shaped like a legacy key.
UPDATE audit_logs
  SET error_message = REPLACE(error_message, api_key, CONCAT(LEFT(api_key, 6), '...'))
  WHERE error_message IS NOT NULL;

UPDATE audit_logs a
  JOIN api_keys k ON INSTR(a.error_message, k.api_key) > 0
  SET a.error_message = REPLACE(a.error_message, k.api_key, CONCAT(LEFT(k.api_key, 6), '...'));

UPDATE audit_logs
  SET error_message = '[redacted: the text held a credential]'
  WHERE error_message REGEXP 'key_[[:alnum:]]{3}';

ALTER TABLE audit_logs
  DROP COLUMN api_key,
  MODIFY `timestamp` DATETIME(3) NOT NULL,
  ADD INDEX idx_audit_logs_timestamp (`timestamp`, id),
  ADD INDEX idx_audit_logs_key (key_id, id);

ALTER TABLE api_keys MODIFY last_reset DATETIME NULL DEFAULT NULL;

UPDATE api_keys SET last_reset = NULL, calls_made = 0;

ALTER TABLE api_keys
  DROP COLUMN api_key,
  MODIFY last_reset DATE NULL DEFAULT NULL,
  MODIFY key_hash CHAR(64) NOT NULL,
  MODIFY key_prefix VARCHAR(6) NOT NULL,
  ADD UNIQUE INDEX uq_api_keys_key_hash (key_hash),
  ADD INDEX idx_api_keys_user (user_id);
