-- Sample users, keys and audit rows (the legacy sample, in the new shape). Loaded only when asked:
-- `flask --app service load-sample-data` (articles come from sample_articles.sql). Idempotent:
-- fixed ids and INSERT IGNORE. Keys are stored as keyed hashes (`{{key_hash:...}}`, filled in with
-- KEY_HASH_SECRET by service/keys.py) with a 6-character prefix. Both sample keys are short, like
-- the legacy keys they copy, so they are flagged weak.
--   key_ABC123: export and import, 5 calls a day (the key that gets rate limited).
--   key_DEF456: export and audit, 10000 calls a day (enough for a monitor run every minute).

INSERT IGNORE INTO users (id, username, email, permission_level) VALUES
  (1, 'data_importer', 'importer@example.com', 'write'),
  (2, 'api_consumer', 'consumer@example.com', 'read');

INSERT IGNORE INTO api_keys
  (id, user_id, key_hash, key_prefix, scopes, label, weak, rate_limit, calls_made, is_valid,
   expires_at, last_reset, created_at)
VALUES
  (1, 1, {{key_hash:key_ABC123}}, 'key_AB', 'export,import', 'sample: rate limited', 1,
   5, 0, 1, NULL, NULL, UTC_TIMESTAMP()),
  (2, 2, {{key_hash:key_DEF456}}, 'key_DE', 'export,audit', 'sample: monitor and audit', 1,
   10000, 0, 1, NULL, NULL, UTC_TIMESTAMP());

INSERT IGNORE INTO audit_logs
  (id, key_id, key_prefix, method, endpoint, response_code, response_time_ms, `timestamp`,
   request_id, error_code)
VALUES
  (1, 1, 'key_AB', 'GET', '/api/export', 200, 42, '2023-10-05 14:22:01.000', NULL, NULL),
  (2, 1, 'key_AB', 'GET', '/api/export', 429, 3, '2023-10-05 14:22:05.000', NULL, 'quota_exceeded'),
  (3, 2, 'key_DE', 'GET', '/api/audit', 200, 18, '2023-10-05 14:23:10.000', NULL, NULL);
