-- 0002: TICKET-001 and TICKET-002 at the data level, from either legacy shape.
-- * api_keys keeps only a keyed hash (HMAC-SHA-256 under KEY_HASH_SECRET, computed in Python by the
--   `legacy_keys` step) and a 6-character display prefix; the plain key is dropped.
-- * Permission levels become per-key scopes, and keys past their expiry that the legacy service
--   still honoured get a grace period (docs/operations.md, "Upgrade from the legacy service").
-- * last_reset becomes a DATE (the UTC day calls_made belongs to). As shipped the legacy schema had
--   no such column; some copies gained a DATETIME one by hand. Either way the column ends as a NULL
--   DATE and every counter starts afresh on the client's next request.
-- * audit_logs keeps the key's id and prefix only; full keys are cut out of old error texts.
--
-- Resumable: MySQL commits each DDL statement at once, so a run that dies half-way leaves some
-- statements applied. Every statement is therefore guarded (`-- when:` lines, checked against
-- information_schema by service/migrations.py) or harmless to repeat, and the next run simply
-- continues. Runs with the session time zone at +00:00 (the runner sets it), so the TIMESTAMP to
-- DATETIME conversion below yields UTC.

-- when: column api_keys.key_hash is missing
ALTER TABLE api_keys ADD COLUMN key_hash CHAR(64) NULL AFTER user_id;

-- when: column api_keys.key_prefix is missing
ALTER TABLE api_keys ADD COLUMN key_prefix VARCHAR(6) NULL AFTER key_hash;

-- when: column api_keys.scopes is missing
ALTER TABLE api_keys
  ADD COLUMN scopes SET('export', 'import', 'audit', 'admin') NOT NULL DEFAULT 'export'
  AFTER key_prefix;

-- when: column api_keys.label is missing
ALTER TABLE api_keys ADD COLUMN label VARCHAR(100) NULL;

-- A legacy key with less than 128 bits beyond its displayed prefix: flagged for rotation.
-- when: column api_keys.weak is missing
ALTER TABLE api_keys ADD COLUMN weak BOOLEAN NOT NULL DEFAULT 0 AFTER label;

-- when: column api_keys.created_at is missing
ALTER TABLE api_keys ADD COLUMN created_at DATETIME NULL;

-- when: column api_keys.revoked_at is missing
ALTER TABLE api_keys ADD COLUMN revoked_at DATETIME NULL;

-- The legacy columns were nullable; NULL meant the default, except is_valid, where a NULL never
-- passed the legacy `is_valid = 1` check: such a key stays disabled.
UPDATE api_keys SET rate_limit = 100 WHERE rate_limit IS NULL;

-- when: column api_keys.rate_limit is nullable
ALTER TABLE api_keys MODIFY rate_limit INT NOT NULL DEFAULT 100;

UPDATE api_keys SET calls_made = 0 WHERE calls_made IS NULL;

-- when: column api_keys.calls_made is nullable
ALTER TABLE api_keys MODIFY calls_made INT NOT NULL DEFAULT 0;

UPDATE api_keys SET is_valid = 0 WHERE is_valid IS NULL;

-- when: column api_keys.is_valid is nullable
ALTER TABLE api_keys MODIFY is_valid BOOLEAN NOT NULL DEFAULT 1;

UPDATE users SET created_at = UTC_TIMESTAMP() WHERE created_at IS NULL;

-- when: column users.created_at is nullable
ALTER TABLE users MODIFY created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP;

UPDATE users SET is_active = 1 WHERE is_active IS NULL;

-- when: column users.is_active is nullable
ALTER TABLE users MODIFY is_active BOOLEAN NOT NULL DEFAULT 1;

UPDATE users SET permission_level = 'read' WHERE permission_level IS NULL;

-- when: column users.permission_level is nullable
ALTER TABLE users MODIFY permission_level ENUM('read', 'write', 'admin') NOT NULL DEFAULT 'read';

-- Hash, prefix, weak flag, scopes and expiry grace of every legacy key, in one transaction
-- (service/legacy_upgrade.py). Recomputed from the plain key on a resumed run.
-- when: column api_keys.api_key exists
-- run: legacy_keys

-- when: column audit_logs.key_id is missing
ALTER TABLE audit_logs ADD COLUMN key_id INT NULL AFTER id;

-- when: column audit_logs.key_prefix is missing
ALTER TABLE audit_logs ADD COLUMN key_prefix VARCHAR(6) NULL AFTER key_id;

-- when: column audit_logs.method is missing
ALTER TABLE audit_logs ADD COLUMN method VARCHAR(10) NULL AFTER key_prefix;

-- when: column audit_logs.request_id is missing
ALTER TABLE audit_logs ADD COLUMN request_id VARCHAR(64) NULL;

-- when: column audit_logs.error_code is missing
ALTER TABLE audit_logs ADD COLUMN error_code VARCHAR(32) NULL;

-- audit_logs.api_key is dropped before api_keys.api_key, so both exist here.
-- when: column audit_logs.api_key exists
UPDATE audit_logs a
  LEFT JOIN api_keys k ON k.api_key = a.api_key
  SET a.key_id = k.id,
      a.key_prefix = LEFT(a.api_key, 6);

-- The row's own key, then every other known key, then anything still shaped like a legacy key.
-- when: column audit_logs.api_key exists
UPDATE audit_logs
  SET error_message = REPLACE(error_message, api_key, CONCAT(LEFT(api_key, 6), '...'))
  WHERE error_message IS NOT NULL;

-- when: column api_keys.api_key exists
UPDATE audit_logs a
  JOIN api_keys k ON INSTR(a.error_message, k.api_key) > 0
  SET a.error_message = REPLACE(a.error_message, k.api_key, CONCAT(LEFT(k.api_key, 6), '...'));

UPDATE audit_logs
  SET error_message = '[redacted: the text held a credential]'
  WHERE error_message REGEXP 'key_[[:alnum:]]{3}';

-- when: column audit_logs.api_key exists
ALTER TABLE audit_logs DROP COLUMN api_key;

UPDATE audit_logs SET `timestamp` = UTC_TIMESTAMP() WHERE `timestamp` IS NULL;

-- when: column audit_logs.timestamp is not datetime
ALTER TABLE audit_logs MODIFY `timestamp` DATETIME(3) NOT NULL;

-- when: index audit_logs.idx_audit_logs_timestamp is missing
ALTER TABLE audit_logs ADD INDEX idx_audit_logs_timestamp (`timestamp`, id);

-- when: index audit_logs.idx_audit_logs_key is missing
ALTER TABLE audit_logs ADD INDEX idx_audit_logs_key (key_id, id);

-- Every counter starts afresh: the stuck ones of TICKET-001 included. Only while last_reset is
-- not yet the DATE of the new quota rule (so never again once it is).
-- when: column api_keys.last_reset is not date
UPDATE api_keys SET calls_made = 0;

-- when: column api_keys.last_reset exists
-- when: column api_keys.last_reset is not date
ALTER TABLE api_keys DROP COLUMN last_reset;

-- when: column api_keys.last_reset is missing
ALTER TABLE api_keys ADD COLUMN last_reset DATE NULL DEFAULT NULL AFTER expires_at;

-- when: column api_keys.api_key exists
ALTER TABLE api_keys DROP COLUMN api_key;

-- when: column api_keys.key_hash is nullable
ALTER TABLE api_keys MODIFY key_hash CHAR(64) NOT NULL;

-- when: column api_keys.key_prefix is nullable
ALTER TABLE api_keys MODIFY key_prefix VARCHAR(6) NOT NULL;

-- when: index api_keys.uq_api_keys_key_hash is missing
ALTER TABLE api_keys ADD UNIQUE INDEX uq_api_keys_key_hash (key_hash);

-- when: index api_keys.idx_api_keys_user is missing
ALTER TABLE api_keys ADD INDEX idx_api_keys_user (user_id);
